"""The runner: decides each step from its key, runs what must run, emits events.

The scheduler says which steps may start; decisions are made on the main thread as soon as a
step's inputs are known (so a step's key always includes the digests of its upstream outputs); only
the work itself (API calls, a Pillow operation) goes to the executor. The runner never prints.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gemflow.cache.calls import StoreCallCache
from gemflow.cache.lockfile import LockEntry, LockFile, exclusive
from gemflow.cache.store import ResultStore
from gemflow.cache.store import blob as stored_bytes
from gemflow.cache.tiered import lock_keys
from gemflow.engine.batch import BATCH_PRICE, BatchSettings, Detached
from gemflow.engine.decide import Decision, decide, recorded_params
from gemflow.engine.events import (
    BatchJobReport,
    BatchJobUpdated,
    Event,
    Notice,
    RunFinished,
    RunStarted,
    RunSummary,
    Status,
    StepFinished,
    StepReport,
    StepStarted,
)
from gemflow.engine.executor import ThreadExecutor
from gemflow.engine.graph import build_graph, ordered, select
from gemflow.engine.keys import digest, key_material, step_key
from gemflow.engine.ledger import Ledger, Record
from gemflow.engine.outputs import OutputGuard, Verdict, load_lock
from gemflow.engine.reasons import Reason, describe, reason
from gemflow.engine.refusals import Refusal, expects_refusal, recall, remember
from gemflow.engine.scheduler import Scheduler
from gemflow.engine.takes import archived_key
from gemflow.errors import (
    ConfigError,
    DiskFull,
    GemflowError,
    InputError,
    Interrupted,
    NoImageError,
    Problem,
    ReadOnlyCache,
    StepError,
    WorkflowError,
    is_no_space,
)
from gemflow.fileio import DigestMemo, write_atomic
from gemflow.interrupts import deferred
from gemflow.kinds.base import InputImage, RunContext, StepOutput
from gemflow.providers.base import SendSettings
from gemflow.providers.connection import Connection
from gemflow.workflow import Step, Workflow

ABANDON_GRACE = 1.0  # seconds a second Ctrl-C still gives answers in hand to be stored


@dataclass(frozen=True)
class RunOptions:
    targets: tuple[str, ...] = ()
    force: frozenset[str] = frozenset()
    force_all: bool = False
    jobs: int = 8
    dry_run: bool = False
    fail_fast: bool = False  # after the first failure, start no new step that would run
    reroll: frozenset[str] = frozenset()  # steps to draw once more (their earlier takes are kept)
    retry_refused: bool = False  # ask again where the model refused last time
    batch: BatchSettings | None = None  # send API steps' requests through the Batch API


@dataclass
class _Done:
    """A finished step's result, as its dependents need it."""

    key: str | None
    digest: str | None  # None: not known (a dry run's step that would run)


@dataclass
class _Job:
    step: Step
    key: str
    material: dict[str, Any]
    reason: Reason
    inputs: list[str]  # digests in order
    forced: bool
    ctx: RunContext
    started: float = field(default_factory=time.monotonic)
    refusal: Refusal | None = None  # the model refused: its answer, kept
    reused: bool = False  # another gemflow process made this result while we waited for the key


class Runner:
    def __init__(
        self,
        workflow: Workflow,
        store: ResultStore,
        options: RunOptions,
        connection: Connection,
        *,
        emit: Callable[[Event], None] = lambda event: None,
    ) -> None:
        self.workflow = workflow
        self.store = store
        self.options = options
        self.connection = connection
        self.service = connection.service  # who answers: part of every API step's key
        self.emit = emit
        self.graph = build_graph(workflow)
        self.lock = load_lock(workflow, self.service)
        # the results the lock file names, looked up all at once (remotely too), not step by step
        store.prefetch(lock_keys(self.lock, takes=False))
        self.memo = DigestMemo(store.load_memo())
        self.guard = OutputGuard(workflow, self.memo, self.service)
        self.summary = RunSummary(
            workflow=str(workflow.path), dry_run=options.dry_run, service=self.service
        )
        self._targets = self._named(options.targets, "target")
        self._forced = set(self._named(options.force, "--force"))
        self._rerolls = set(self._named(options.reroll, "--reroll"))
        self._done: dict[str, _Done] = {}
        self._takes_of: dict[str, tuple[str, int, list[dict[str, Any]]]] = {}
        self._failed: set[str] = set()
        self._pending: set[str] = set()  # in a batch job a later run collects (--detach)
        folder = getattr(store, "directory", None)
        self.ledger = Ledger(folder / "batches" if folder is not None else None)  # batch jobs
        self._held: dict[str, Record] | None = None  # a dry run's: step key -> its open job
        # A dry run with --batch=auto prices its steps once it knows the groups (held till then):
        # the API steps whose price depends on their round's group, with their calls.
        auto = options.dry_run and options.batch is not None and options.batch.mode == "auto"
        self._by_group: dict[str, int] | None = {} if auto else None
        self._interrupted = threading.Event()  # set on Ctrl-C: steps waiting for a lock give up
        self._abandoned = threading.Event()  # set on a second Ctrl-C: nothing is retried
        self._disk_full = threading.Event()  # no space for results: send nothing more
        self._unsaved: dict[str, tuple[Step, StepOutput, dict[str, Any]]] = {}
        self._touched: set[str] = set()  # steps whose lock entries this run wrote
        self.abandoned = False  # interrupted twice: running steps were left behind
        self._stopped_by: str | None = None  # --fail-fast: the step whose failure stops the run
        # a cache that cannot be written (gemflow.cache.local): results are served, none is kept
        self.read_only = bool(getattr(store, "read_only", False))

    # -- public -----------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        order = ordered(self.graph, select(self.graph, self._targets))
        steps = self.workflow.steps
        self.emit(
            RunStarted(
                workflow=self.workflow.display_name,
                steps=tuple(order),
                api_steps=sum(steps[s].uses_api for s in order),
                dry_run=self.options.dry_run,
                jobs=self.options.jobs,
                service=self.service,
            )
        )
        for warning in self.workflow.warnings:
            self.emit(Notice(str(warning)))
        if self.lock.problem:
            self.emit(Notice(self.lock.problem))
        if self.read_only:
            self.emit(
                Notice(
                    f"the cache at {self._cache_dir()} is read-only: cached results are served, "
                    "nothing new can be kept",
                    level="info",
                )
            )
        try:
            self._walk(order)
        except KeyboardInterrupt:
            self.summary.interrupted = True
            if self.abandoned:
                raise Abandoned from None
            raise
        finally:
            self._finish()
        return self.summary

    def _cache_dir(self) -> str:
        """The local cache's folder (a tiered store's own tier), for messages."""
        local = getattr(self.store, "local", self.store)
        return str(getattr(local, "directory", "") or "")

    def _named(self, names: Iterable[str], what: str) -> list[str]:
        """The steps ``names`` select (a matrix step's id selects all its instances)."""
        found: list[str] = []
        problems = []
        for name in names:
            chosen = self.workflow.select(name)
            group = name.partition("[")[0]
            if not chosen and "[" in name and group in self.workflow.groups:
                message = f"{what}: '{name}' selects no instance of '{group}'"
            elif not chosen:
                from gemflow.workflow.load import suggest

                hint = suggest(name, self.workflow.groups)
                message = f"{what}: no step '{name}'{hint}"
            elif what == "--reroll" and not all(self.workflow.steps[s].kind.varies for s in chosen):
                kind = next(self.workflow.steps[s].kind for s in chosen)
                message = f"--reroll: '{name}' is a {kind.name} step, which makes the same result every time"
            else:
                found.extend(s for s in chosen if s not in found)
                continue
            problems.append(Problem(self.workflow.display_name, None, None, message))
        if problems:
            raise WorkflowError(problems)
        return found

    # -- scheduling -------------------------------------------------------------------------------

    def _walk(self, order: list[str]) -> None:
        scheduler = Scheduler(self.workflow, order)
        executor = self._executor()
        try:
            while scheduler or executor:
                while scheduler and executor.has_room():  # the rest wait here, not in a queue
                    sid = scheduler.next()
                    job = self._start(self.workflow.steps[sid])
                    if job is None:
                        scheduler.finished(sid)
                    else:
                        executor.submit(job, self._execute)
                if executor:
                    for job, future in executor.wait():
                        self._collect(job, future)
                        scheduler.finished(job.step.id)
        except KeyboardInterrupt:
            self._drain(executor)
            raise
        finally:
            executor.shutdown(abandon=self.abandoned)

    def _executor(self) -> Any:
        """Threads; with ``--batch``, batch jobs for the API steps. Without it, while jobs that
        an earlier run submitted are open, their steps are collected from them (those still
        running stay pending), and the rest run on threads as usual: nothing is paid twice."""
        settings = self.options.batch
        if settings is None:
            if not self.ledger.records():
                return ThreadExecutor[_Job, StepOutput](self.options.jobs)
            settings = BatchSettings(mode="collect", detach=True)
        from gemflow.engine.batch import BatchExecutor

        return BatchExecutor(
            self,
            self.connection,
            self.ledger,
            settings,
            limits=settings.limits(self.workflow.settings),
            jobs=self.options.jobs,
            notify=lambda message: self.emit(Notice(message, level="info")),
            tell=self._told,
        )

    def _told(self, job: BatchJobReport) -> None:
        """A batch job's news: kept in the summary (``--json``), and passed on."""
        self.summary.batch_jobs[job.display_name] = job
        self.emit(BatchJobUpdated(job))

    def _drain(self, executor: Any) -> None:
        """Interrupted: start nothing new, but keep what is already being paid for.

        Steps not yet started are cancelled. Calls in flight are waited for, so their results are
        stored; a second interrupt abandons them (their files are written atomically, or not at all).
        """
        self._interrupted.set()
        started = executor.interrupt()
        if not started:
            return
        names = ", ".join(job.step.id for job in started)
        self.emit(
            Notice(
                f"interrupted: waiting for {len(started)} running step(s) to finish "
                f"({names}); interrupt again to abandon them",
                level="info",
            )
        )
        try:
            for job, future in executor.finishing():
                self._collect(job, future)
        except KeyboardInterrupt:
            self.abandoned = True
            self._abandoned.set()
            self._keep_arrived(executor)

    def _keep_arrived(self, executor: Any) -> None:
        """Abandoned: answers already in hand are stored within a moment; a request still waiting
        for its answer is given up (nothing is retried) and the run ends now."""
        try:
            for job, future in executor.finishing(timeout=ABANDON_GRACE):
                self._collect(job, future)
        except (TimeoutError, KeyboardInterrupt):
            pass

    # -- one step ---------------------------------------------------------------------------------

    def _start(self, step: Step) -> _Job | None:
        """Decide ``step``. Returns a job when it must run for real; else records it as finished."""
        waiting = [r.step for r in step.refs if r.step in self._pending]
        if waiting:
            self._pending.add(step.id)
            cost = self._estimate(step) if self.options.dry_run else {}
            self._report(step, Status.PENDING, reason("input-in-batch", step=waiting[0]), **cost)
            return None
        failed = [r.step for r in step.refs if r.step in self._failed]
        if failed:
            self._failed.add(step.id)
            self._report(step, Status.BLOCKED, reason("input-failed", step=failed[0]))
            return None
        unknown = [r.step for r in step.refs if r.step and self._done[r.step].digest is None]
        if unknown:  # only in a dry run: an upstream step would run, so this key is not known yet
            self._planned(step, reason("input-will-run", step=unknown[0]), None)
            return None
        inputs = self._input_digests(step)
        if inputs is None:
            return None
        entry = self.lock.entries.get(step.id)
        material = key_material(step, inputs, self.service)
        key = step_key(material)
        base, reroll, takes = self._takes(step, key, entry)
        if reroll:
            material = key_material(step, inputs, self.service, reroll)
            key = step_key(material)
        forced = self.options.force_all or step.id in self._forced
        problem = None if expects_refusal(step) else self.guard.in_the_way(step, entry)
        if problem is not None:  # a FIFO where the output goes, say: checked before reading it
            self._failed.add(step.id)
            self._report(step, Status.FAILED, reason("output-taken"), error=problem)
            return None
        try:
            decision = decide(
                step,
                key,
                material,
                store=self.store,
                memo=self.memo,
                forced=forced,
                lock_entry=entry,
            )
        except OSError as exc:  # the output (or an attachment) is there but cannot be read
            self._failed.add(step.id)
            error = f"cannot read {step.output_rel} ({_os_error(exc)})"
            self._report(step, Status.FAILED, reason("output-unreadable"), error=error)
            return None
        if reroll and entry is not None and reroll > entry.reroll and decision.status is Status.RUN:
            decision = Decision(Status.RUN, reason("rerolled", take=len(takes) + 1))
        self._takes_of[step.id] = (base, reroll, takes)
        if decision.status is Status.RUN and step.uses_api and not forced:
            refusal = None if self.options.retry_refused else recall(self.store, key, entry)
            if refusal is not None:
                self._refused(step, key, material, inputs, refusal, reason("refused-before"))
                return None
        if self.options.dry_run:
            record = self._held_by(key) if decision.status is Status.RUN else None
            if record is not None and step.uses_api:
                self._in_job(step, key, record)
            else:
                self._planned(step, decision.reason, key, decision)
            return None
        if decision.status is Status.RUN:
            self._refuse_if_read_only(step, decision.reason)  # before moving any file aside
        if decision.status is not Status.CACHED and not self._may_write(step, entry, forced):
            return None
        try:
            if decision.status is Status.CACHED:
                if decision.adopt and not self.read_only:  # else up to date all the same
                    self._adopt(step, key)
                self._finish_step(
                    step,
                    key,
                    material,
                    inputs,
                    Status.CACHED,
                    decision.reason,
                    decision.digest,
                    meta=decision.meta,
                )
                return None
            if decision.status is Status.RESTORE and self._restore(step, key):
                self._finish_step(
                    step,
                    key,
                    material,
                    inputs,
                    Status.RESTORE,
                    decision.reason,
                    decision.digest,
                    meta=decision.meta,
                )
                return None
        except OSError as exc:  # the output's folder is a file, the disk is full, ...
            self._failed.add(step.id)
            error = f"cannot write {step.output_rel} ({_os_error(exc)})"
            self._report(step, Status.FAILED, decision.reason, error=error)
            return None
        why = decision.reason if decision.status is Status.RUN else reason("corrupt")
        self._refuse_if_read_only(step, why)
        if self._disk_full.is_set():
            self._failed.add(step.id)
            self._report(step, Status.BLOCKED, reason("disk-full"))
            return None
        if self._stopped_by is not None:
            self._failed.add(step.id)
            self._report(step, Status.BLOCKED, reason("fail-fast", step=self._stopped_by))
            return None
        self.emit(StepStarted(step.id, step.kind.name, why, step.uses_api))
        ctx = RunContext(
            self.connection,
            settings=SendSettings.of(step.params),
            calls=StoreCallCache(self.store, self.service, refresh=forced, step=key),
            notify=lambda message: self.emit(Notice(f"{step.id}: {message}", level="info")),
            cancelled=self._abandoned.is_set,
        )
        return _Job(step, key, material, why, inputs, forced, ctx)

    def _refuse_if_read_only(self, step: Step, why: Reason) -> None:
        """``step`` must run: with a cache that cannot keep its result, stop before sending
        anything. Every step that must run would fail the same way (as without an API key)."""
        if self.read_only:
            raise ReadOnlyCache(
                f"step '{step.id}' must run ({describe(why)}), but the cache at "
                f"{self._cache_dir()} is read-only, so its result could not be kept: nothing "
                "was sent. Make the folder writable, or pass --cache-dir"
            )

    def _takes(
        self, step: Step, base: str, entry: LockEntry | None
    ) -> tuple[str, int, list[dict[str, Any]]]:
        """(base key, re-roll counter, takes kept) for a step that draws anew, given its key
        before any re-roll; a re-roll asked for on this run draws past the highest take, so it
        always costs one new call."""
        if not step.kind.varies:
            return "", 0, []
        takes: list[dict[str, Any]] = []
        reroll = 0
        if entry is not None and (entry.base or entry.key) == base:  # the step as it is now
            reroll = entry.reroll
            takes = [dict(t) for t in entry.takes] or [
                {"reroll": entry.reroll, "key": entry.key, "digest": entry.digest}
            ]
        if step.id in self._rerolls:
            reroll = max([reroll, *(int(t["reroll"]) for t in takes)]) + 1
        return base, reroll, takes

    def _may_write(self, step: Step, entry: LockEntry | None, forced: bool) -> bool:
        """Whether ``step`` may write its output: see ``gemflow.engine.outputs``."""
        if expects_refusal(step):
            return True  # such a step writes nothing
        try:
            verdict = self.guard.check(step, entry, forced=forced)
        except OSError as exc:
            verdict = Verdict(f"cannot move {step.output_rel} aside ({_os_error(exc)})")
        if verdict.kept is not None:
            kept = verdict.kept.relative_to(self.workflow.root).as_posix()
            self.emit(Notice(f"{step.id}: {step.output_rel} was changed by hand: kept as {kept}"))
        if verdict.error is None:
            return True
        self._failed.add(step.id)
        self._report(step, Status.FAILED, reason("output-taken"), error=verdict.error)
        return False

    def _input_digests(self, step: Step) -> list[str] | None:
        digests = []
        for ref in step.refs:
            if ref.step is not None:
                known = self._done[ref.step].digest
                assert known is not None  # an input step that would run is handled before
                digests.append(known)
                continue
            assert ref.path is not None  # a reference is a step or a file
            try:
                value = self.memo.digest(ref.path)
                problem = "no such file" if value is None else None
            except OSError as exc:
                value, problem = None, exc.strerror or str(exc)
            if value is None:
                self._failed.add(step.id)
                self._report(
                    step,
                    Status.FAILED,
                    reason("input-unreadable"),
                    error=f"{ref.text}: {problem}",
                )
                return None
            digests.append(value)
        return digests

    def _planned(
        self, step: Step, why: Reason, key: str | None, decision: Decision | None = None
    ) -> None:
        """A dry run's verdict on ``step``: the status it would get, and the cost if it runs."""
        status = decision.status if decision else Status.RUN
        self._done[step.id] = _Done(key, decision.digest if decision else None)
        cost = self._estimate(step) if status is Status.RUN else {}
        self._report(step, status, why, key=key, **cost)

    def _estimate(self, step: Step, *, batched: bool = False) -> dict[str, Any]:
        """What ``step`` would cost a run: API calls and USD (at the batch price with --batch,
        or when ``batched``: its requests are in a job already, which bills them when it ends)."""
        estimate = step.kind.estimate(step)
        half = (batched or self.options.batch is not None) and step.uses_api
        if half and not batched and self._by_group is not None:  # --batch=auto: see _priced
            self._by_group[step.id] = estimate.api_calls
            half = False
        usd = estimate.usd * (BATCH_PRICE if half else 1.0)
        return {"api_calls": 0 if batched else estimate.api_calls, "usd": usd}

    def _priced(self) -> None:
        """A dry run with ``--batch=auto``: the API steps of a model's group of ``--batch-min``
        requests or more in a round go at the batch price (rounds taken as going in step: a
        step is in the round after the last API step that must run above it), then every
        held-back step report is told."""
        assert self._by_group is not None
        steps = self.workflow.steps
        running = {r.id for r in self.summary.steps if r.status in (Status.RUN, Status.PENDING)}
        rounds: dict[str, int] = {}
        group_of: dict[str, tuple[int, str]] = {}  # (round, model) of each step priced by group
        groups: dict[tuple[int, str], int] = {}  # requests in each group
        for report in self.summary.steps:
            if report.id not in running:
                continue
            above = [r.step for r in steps[report.id].refs if r.step in rounds]
            rounds[report.id] = max((rounds[s] + steps[s].uses_api for s in above), default=0)
            if report.id in self._by_group:
                group = (rounds[report.id], str(steps[report.id].params.get("model", "")))
                group_of[report.id] = group
                groups[group] = groups.get(group, 0) + self._by_group[report.id]
        assert self.options.batch is not None
        smallest = self.options.batch.limits(self.workflow.settings).min_group
        for index, report in enumerate(self.summary.steps):
            if report.id in group_of and groups[group_of[report.id]] >= smallest:
                report = replace(report, usd=report.usd * BATCH_PRICE)
                self.summary.steps[index] = report
            self.emit(StepFinished(report))

    def _held_by(self, key: str) -> Record | None:
        """The open batch job (recorded in the ledger) that holds the requests of the step
        whose key is ``key``."""
        if self._held is None:
            self._held = self.ledger.holding_steps()
        return self._held.get(key)

    def _in_job(self, step: Step, key: str, record: Record) -> None:
        """A dry run's step whose requests an open job holds: pending, as its dependents."""
        self._pending.add(step.id)
        self._done[step.id] = _Done(key, None)
        why = reason("in-batch", job=record.job or record.display_name)
        self._report(step, Status.PENDING, why, key=key, **self._estimate(step, batched=True))
        if record.display_name not in self.summary.batch_jobs:
            self._told(record.report())

    def _adopt(self, step: Step, key: str) -> None:
        entry = self.lock.entries[step.id]
        meta = {"model_version": entry.model_version, "usage": entry.tokens, "adopted": True}
        attachments = {name: (step.output.parent / name).read_bytes() for name in entry.attachments}
        self.store.put(key, step.output.read_bytes(), meta, attachments)

    def _restore(self, step: Step, key: str) -> bool:
        files = self.store.files(key)
        if files is None:
            message = f"cache entry for step '{step.id}' was corrupt: dropped, running again"
            self.emit(Notice(message))
            return False
        self._write(step, *files)
        return True

    def _write(self, step: Step, data: bytes, attachments: dict[str, bytes]) -> None:
        """Write the output and its attachments, each atomically, and remember their digests."""
        files = {step.output: data}
        for name, blob in attachments.items():
            if ".." in Path(name).parts or Path(name).is_absolute():
                raise StepError(f"attachment name {name!r} leaves the output's folder")
            files[step.output.parent / name] = blob
        for path, blob in files.items():
            write_atomic(path, blob)
            self.memo.remember(path, digest(blob))

    def _execute(self, job: _Job) -> StepOutput:
        """On a worker thread: run the step, holding its key's lock so that two gemflow processes
        never pay for one result: the second waits, then takes the first one's result."""
        with self.key_lock(job):
            if not job.forced and (reused := self._reuse(job)) is not None:
                return reused
            if job.step.uses_api and not job.forced:  # another run's batch job may hold it now
                held = self.ledger.holder(job.key, cancelled=self._interrupted.is_set)
                if held is not None:
                    if held.display_name not in self.summary.batch_jobs:
                        self._told(held.report())
                    raise Detached(held.job or held.display_name)
            return self._make(job)

    def _reuse(self, job: _Job) -> StepOutput | None:
        files = self.store.files(job.key)
        if files is None:
            return None
        data, attachments = files
        self._write(job.step, data, attachments)
        job.reused = True
        return StepOutput(data, meta=self.store.meta(job.key) or {}, attachments=attachments)

    def _make(self, job: _Job) -> StepOutput:
        """Gather the input bytes, run the kind, store and write the result."""
        images = self.images(job)
        return self.keep(job, lambda: job.step.kind.run(job.step, images, job.ctx))

    # The batch executor's hooks (gemflow.engine.batch): a job's inputs, keeping what it made.

    def images(self, job: _Job) -> list[InputImage]:
        """The step's inputs, checked against the digests its key was made from."""
        images = []
        for ref, expected in zip(job.step.refs, job.inputs, strict=True):
            data = self._input_bytes(ref.step, ref.path)
            if data is None or digest(data) != expected:
                raise InputError(f"input {ref.text} changed while the run was going on")
            images.append(InputImage(ref.text, data))
        return images

    def reuse(self, job: _Job) -> StepOutput | None:
        return None if job.forced else self._reuse(job)

    def taken(self, job: _Job) -> bool:
        """Whether another run is making ``job``'s result (holds its key's lock), or has made
        it: asked before its requests go into a batch job."""
        if job.forced:
            return False
        try:
            with self.store.lock(job.key, cancelled=lambda: True):  # only if free at once
                return getattr(self.store, "local", self.store).meta(job.key) is not None
        except Interrupted:
            return True

    def made_elsewhere(self, job: _Job) -> StepOutput | None:
        """Once the run that holds ``job``'s key lets go of it: the result it made, if any."""
        with self.key_lock(job):
            return self._reuse(job)

    def key_lock(self, job: _Job) -> contextlib.AbstractContextManager[None]:
        """``job``'s key lock, across processes: held while its result is made."""
        return self.store.lock(job.key, cancelled=self._interrupted.is_set)

    def keep(self, job: _Job, outcome: Callable[[], StepOutput]) -> StepOutput:
        """Run ``outcome`` (the kind's work), then store and write its result; a refusal is
        remembered as an answer."""
        step, ctx = job.step, job.ctx
        meta: dict[str, Any] = {"usage": ctx.tokens, "model_version": ctx.model_version}
        try:
            result = outcome()
        except NoImageError as refused:
            job.refusal = remember(self.store, job.key, refused, {**meta, "step": step.id})
            raise
        if job.forced and step.kind.varies:
            self._archive(step, job.key, digest(result.data))
        if step.uses_api:
            meta["attempts"] = ctx.api_calls
        if job.forced:
            meta["forced"] = True  # a shared store keeps it here even if its remote has another
        meta.update(result.meta, step=step.id, kind=step.kind.name, summary=result.summary)
        try:
            result.meta = self.store.put(job.key, result.data, meta, result.attachments)
            if result.meta["digest"] != digest(result.data) and (won := self.store.files(job.key)):
                # a shared store (gemflow.cache.tiered) held another run's result for this key
                # first: that one is the result, here as on every other machine
                result.data, result.attachments = won
                result.summary = result.meta.get("summary", result.summary)
            self._write(step, result.data, result.attachments)
        except (DiskFull, OSError) as exc:
            if not isinstance(exc, DiskFull) and not is_no_space(exc):
                raise
            self._unsaved[job.key] = (step, result, meta)  # paid for: never thrown away
            self._disk_full.set()
            raise DiskFull(
                f"{exc}: the run stopped; this answer is kept in memory until the run ends"
            ) from None
        return result

    def _archive(self, step: Step, key: str, made: str) -> None:
        """A forced step replaces its stored result: keep the old one as a take of its own."""
        old, meta = self.store.files(key), self.store.meta(key)
        if old is None or meta is None or meta["digest"] == made:
            return
        kept = archived_key(key, meta["digest"])
        self.store.put(kept, old[0], meta, old[1])
        for take in self._takes_of.get(step.id, ("", 0, []))[2]:
            if take["key"] == key and take["digest"] == meta["digest"]:
                take["key"] = kept

    def _input_bytes(self, step_id: str | None, path: Path | None) -> bytes | None:
        if step_id is not None:
            key = self._done[step_id].key
            return None if key is None else stored_bytes(self.store, key)
        assert path is not None  # a reference is a step or a file
        return path.read_bytes()

    def _collect(self, job: _Job, future: Future[StepOutput]) -> None:
        step, ctx = job.step, job.ctx
        seconds = time.monotonic() - job.started
        try:
            result = future.result()
        except ConfigError:
            raise  # no key, say: every API step would fail the same way, so stop the run
        except Detached as detached:
            self._pending.add(step.id)
            self._report(step, Status.PENDING, reason("in-batch", job=detached.job))
            return
        except (GemflowError, OSError) as exc:
            if job.refusal is not None:
                spent = {
                    "api_calls": ctx.api_calls,
                    "usd": ctx.usd,
                    "tokens": dict(ctx.tokens),
                    "seconds": seconds,
                }
                self._refused(
                    step, job.key, job.material, job.inputs, job.refusal, job.reason, **spent
                )
                return
            self._failed.add(step.id)
            if self.options.fail_fast and self._stopped_by is None:
                self._stopped_by = step.id
            message = str(exc) if isinstance(exc, GemflowError) else _os_error(exc)
            self._report(
                step,
                Status.FAILED,
                job.reason,
                error=message,
                seconds=seconds,
                api_calls=ctx.api_calls,
                tokens=dict(ctx.tokens),
                usd=ctx.usd,
            )
            return
        if job.reused:
            self._finish_step(
                step,
                job.key,
                job.material,
                job.inputs,
                Status.RESTORE,
                reason("made-meanwhile"),
                result.meta["digest"],
                seconds=seconds,
                meta=result.meta,
            )
            return
        self._finish_step(
            step,
            job.key,
            job.material,
            job.inputs,
            Status.RUN,
            job.reason,
            result.meta["digest"],
            meta=result.meta,
            api_calls=ctx.api_calls,
            tokens=result.meta.get("usage") or {},
            seconds=seconds,
            usd=ctx.usd,
            model_version=result.meta.get("model_version"),
            result=result.summary,
        )

    def _refused(
        self,
        step: Step,
        key: str,
        material: dict[str, Any],
        inputs: list[str],
        refusal: Refusal,
        why: Reason,
        **report: Any,
    ) -> None:
        """The model refused ``step``, now or before: a success if the step expects it."""
        fresh = "api_calls" in report
        if expects_refusal(step):
            status = Status.RUN if fresh else Status.CACHED
            expected = reason("refused-as-expected", refusal=refusal.reason)
            self._finish_step(
                step,
                key,
                material,
                inputs,
                status,
                expected,
                None,
                meta={"summary": {"refused": refusal.reason}, "usage": report.pop("tokens", {})},
                refused=refusal.reason,
                **report,
            )
            return
        self._failed.add(step.id)
        if fresh and self.options.fail_fast and self._stopped_by is None:
            self._stopped_by = step.id
        self._report(step, Status.FAILED, why, error=refusal.message(), key=key, **report)

    # -- bookkeeping ------------------------------------------------------------------------------

    def _finish_step(
        self,
        step: Step,
        key: str,
        material: dict[str, Any],
        inputs: list[str],
        status: Status,
        why: Reason,
        output_digest: str | None,
        *,
        model_version: str | None = None,
        tokens: dict[str, int] | None = None,
        meta: dict[str, Any] | None = None,
        refused: str = "",
        **report: Any,
    ) -> None:
        self._done[step.id] = _Done(key, output_digest)
        if meta is None:
            meta = self.store.meta(key) or {}
        if model_version is None:
            model_version, tokens = meta.get("model_version"), meta.get("usage") or {}
        report.setdefault("result", meta.get("summary"))
        self._touched.add(step.id)
        base, reroll, takes = self._takes_of.pop(step.id, ("", 0, []))
        take = {"reroll": reroll, "key": key, "digest": output_digest or ""}
        if step.kind.varies and take not in takes:
            takes = [*takes, take]
        several = len(takes) > 1
        entry = LockEntry(
            key=key,
            kind=step.kind.name,
            params=recorded_params(material),
            inputs=[{"ref": r.text, "digest": d} for r, d in zip(step.refs, inputs, strict=True)],
            output=step.output_rel,
            digest=output_digest or "",
            model_version=model_version,
            tokens=dict(tokens or {}),
            attachments=dict(meta.get("attachments") or {}),
            reroll=reroll,
            base=base if several else "",
            takes=takes if several else [],
            refused=refused,
        )
        if self.lock.entries.get(step.id) != entry:  # else the one read stays: one copy in memory
            self.lock.entries[step.id] = entry
        if expects_refusal(step) and not refused:
            self._failed.add(step.id)
            report["error"] = f"expected a refusal, but the model drew an image ({step.output_rel})"
            status = Status.FAILED
        fresh_tokens = tokens if status in (Status.RUN, Status.FAILED) else {}
        self._report(step, status, why, key=key, tokens=dict(fresh_tokens or {}), **report)

    def _report(self, step: Step, status: Status, why: Reason, **fields: Any) -> None:
        report = StepReport(
            id=step.id,
            kind=step.kind.name,
            status=status,
            reason=why,
            output=step.output_rel,
            **fields,
        )
        self.summary.steps.append(report)
        if self._by_group is None:
            self.emit(StepFinished(report))

    def _save_lock(self) -> None:
        """Write this run's entries over the lock file as it is now on disk, so that two runs on
        one workflow (different targets, say) do not undo each other's entries."""
        with exclusive(self.lock.path.parent):
            latest = LockFile.load(self.lock.path) if self.lock.changed_on_disk() else self.lock
            entries = {sid: e for sid, e in latest.entries.items() if sid in self.workflow.steps}
            entries.update({sid: self.lock.entries[sid] for sid in self._touched})
            latest.entries = entries
            latest.save()

    def _save_unsaved(self) -> None:
        """Write the answers a full disk kept in memory, if there is room now; else say so."""
        for key, (step, result, meta) in list(self._unsaved.items()):
            try:
                self.store.put(key, result.data, meta, result.attachments)
                self._write(step, result.data, result.attachments)
            except (DiskFull, OSError):
                continue
            del self._unsaved[key]
        if self._unsaved:
            names = ", ".join(step.id for step, _, _ in self._unsaved.values())
            self.emit(
                Notice(
                    f"the disk is full: {len(self._unsaved)} answer(s) paid for could not be "
                    f"kept ({names}); free some space and run again"
                )
            )
        elif self._disk_full.is_set():
            self.emit(Notice("the disk filled up during the run: every answer received was kept"))

    def _finish(self) -> None:
        """Keep what the run made: answers held in memory, the lock file, the memo. A signal
        that arrives meanwhile waits until they are saved, then interrupts as usual."""
        if self._by_group is not None:
            self._priced()
        try:
            with deferred():
                self._save_all()
        except KeyboardInterrupt:
            self.summary.interrupted = True
            raise

    def _save_all(self) -> None:
        self._save_unsaved()
        for key in self.store.corrupt:
            if self.read_only:
                self.emit(
                    Notice(f"a corrupt cache entry was not used ({key}): the cache is read-only")
                )
            else:
                self.emit(Notice(f"dropped a corrupt cache entry ({key})"))
        for message in getattr(self.store, "notices", ()):  # a remote tier's (cache/tiered.py)
            self.emit(Notice(message))
        try:
            if not self.options.dry_run:
                self._save_lock()
            if self.memo.changed:
                self.store.save_memo(self.memo.entries)
        except (DiskFull, OSError) as exc:
            if not isinstance(exc, DiskFull) and not is_no_space(exc):
                raise
            self.emit(Notice(f"the lock file or the memo was not updated: {exc}"))
        self.emit(RunFinished(self.summary))


class Abandoned(KeyboardInterrupt):
    """Interrupted twice: requests still waiting for answers were given up; the process should
    exit now rather than wait for them."""


def _os_error(exc: OSError) -> str:
    """One line for a file-system error: what went wrong, and with which file."""
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def run_workflow(
    workflow: Workflow,
    store: ResultStore,
    options: RunOptions,
    *,
    connection: Connection | None = None,
    emit: Callable[[Event], None] | Iterable[Callable[[Event], None]] = (),
) -> RunSummary:
    """Run (or with ``options.dry_run``, plan) ``workflow``; every event goes to each of ``emit``.

    ``connection`` is where API calls go and whose answers they are (its ``service`` is in every
    API step's key); by default Google's API with the key from the environment, looked up only
    when a request is about to be sent. A connection passed in is the caller's to close.
    """
    listeners = [emit] if callable(emit) else list(emit)
    lock = threading.Lock()  # steps may notify from worker threads

    def broadcast(event: Event) -> None:
        with lock:
            for listener in listeners:
                listener(event)

    with contextlib.ExitStack() as owned:
        if connection is None:
            connection = owned.enter_context(Connection.google())
        return Runner(workflow, store, options, connection, emit=broadcast).run()
