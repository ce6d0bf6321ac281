"""The runner: walks the DAG, decides each step from its key, runs what must run, emits events.

Decisions are made on the main thread as soon as a step's inputs are known (so a step's key always
includes the digests of its upstream outputs); only the work itself (an API call, a Pillow
operation) goes to the thread pool. The runner never prints.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemflow.cache.calls import StoreCallCache
from gemflow.cache.local import Store
from gemflow.cache.lockfile import LockEntry, LockFile
from gemflow.engine.decide import Decision, decide, recorded_params
from gemflow.engine.events import (
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
from gemflow.engine.graph import build_graph, ordered, select
from gemflow.engine.keys import digest, key_material, step_key
from gemflow.errors import ConfigError, GemflowError, InputError, StepError
from gemflow.fileio import DigestMemo, write_atomic
from gemflow.kinds.base import Estimate, InputImage, RunContext, StepOutput
from gemflow.providers.resilient import attempts_of
from gemflow.workflow import Step, Workflow

ProviderFactory = Callable[[], Any]


@dataclass(frozen=True)
class RunOptions:
    targets: tuple[str, ...] = ()
    force: frozenset[str] = frozenset()
    force_all: bool = False
    jobs: int = 8
    dry_run: bool = False
    fail_fast: bool = False  # after the first failure, start no new step that would run
    service: str | None = None  # the key's "service" when not Google's default endpoint


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
    reason: str
    inputs: list[str]  # digests in order
    forced: bool
    started: float = field(default_factory=time.monotonic)
    reused: bool = False  # another gemflow process made this result while we waited for the key


class Runner:
    def __init__(
        self,
        workflow: Workflow,
        store: Store,
        options: RunOptions,
        *,
        provider_factory: ProviderFactory | None = None,
        emit: Callable[[Event], None] = lambda event: None,
    ) -> None:
        self.workflow = workflow
        self.store = store
        self.options = options
        self.emit = emit
        self.graph = build_graph(workflow)
        self.lock = LockFile.load(workflow.lock_path)
        self.memo = DigestMemo(store.load_memo())
        self.summary = RunSummary(
            workflow=str(workflow.path), dry_run=options.dry_run, service=options.service
        )
        self._provider_factory = provider_factory
        self._provider: Any = None
        self._provider_lock = threading.Lock()
        self._done: dict[str, _Done] = {}
        self._failed: set[str] = set()
        self._touched: set[str] = set()  # steps whose lock entries this run wrote
        self.abandoned = False  # interrupted twice: running steps were left behind
        self._stopped_by: str | None = None  # --fail-fast: the step whose failure stops the run

    # -- public -----------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        order = ordered(self.graph, select(self.graph, self.options.targets))
        steps = self.workflow.steps
        self.emit(
            RunStarted(
                workflow=self.workflow.display_name,
                steps=tuple(order),
                api_steps=sum(steps[s].uses_api for s in order),
                dry_run=self.options.dry_run,
                jobs=self.options.jobs,
                service=self.options.service,
            )
        )
        for warning in self.workflow.warnings:
            self.emit(Notice(str(warning)))
        if self.lock.problem:
            self.emit(Notice(self.lock.problem))
        try:
            self._walk(order)
        except KeyboardInterrupt:
            self.summary.interrupted = True
            raise
        finally:
            self._finish()
        return self.summary

    # -- scheduling -------------------------------------------------------------------------------

    def _walk(self, order: list[str]) -> None:
        selected = set(order)
        waiting = {sid: {r.step for r in self.workflow.steps[sid].refs if r.step} for sid in order}
        dependents: dict[str, list[str]] = {sid: [] for sid in order}
        for sid, deps in waiting.items():
            for dep in deps:
                dependents[dep].append(sid)
        ready = deque(sid for sid in order if not waiting[sid])
        running: dict[Future[StepOutput], _Job] = {}

        def finished(sid: str) -> None:
            for child in dependents[sid]:
                waiting[child].discard(sid)
                if not waiting[child] and child in selected:
                    ready.append(child)

        jobs = max(1, self.options.jobs)
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="step")
        try:
            while ready or running:
                while ready and len(running) < jobs:  # the rest wait here, not in the pool queue
                    sid = ready.popleft()
                    job = self._start(self.workflow.steps[sid])
                    if job is None:
                        finished(sid)
                    else:
                        running[pool.submit(self._execute, job)] = job
                if running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = running.pop(future)
                        self._collect(job, future)
                        finished(job.step.id)
        except KeyboardInterrupt:
            self._drain(running)
            raise
        finally:
            pool.shutdown(wait=not self.abandoned, cancel_futures=True)

    def _drain(self, running: dict[Future[StepOutput], _Job]) -> None:
        """Interrupted: start nothing new, but keep what is already being paid for.

        Steps not yet started are cancelled. Calls in flight are waited for, so their results are
        stored; a second interrupt abandons them (their files are written atomically, or not at all).
        """
        started = {f: job for f, job in running.items() if not f.cancel()}
        if not started:
            return
        names = ", ".join(job.step.id for job in started.values())
        self.emit(
            Notice(
                f"interrupted: waiting for {len(started)} running step(s) to finish "
                f"({names}); interrupt again to abandon them",
                level="info",
            )
        )
        try:
            for future in as_completed(started):
                self._collect(started[future], future)
        except KeyboardInterrupt:
            self.abandoned = True

    # -- one step ---------------------------------------------------------------------------------

    def _start(self, step: Step) -> _Job | None:
        """Decide ``step``. Returns a job when it must run for real; else records it as finished."""
        failed = [r.step for r in step.refs if r.step in self._failed]
        if failed:
            self._failed.add(step.id)
            return self._report(step, Status.BLOCKED, f"input step {failed[0]} failed")
        unknown = [r.step for r in step.refs if r.step and self._done[r.step].digest is None]
        if unknown:  # only in a dry run: an upstream step would run, so this key is not known yet
            return self._planned(step, f"input step {unknown[0]} will run", None)
        inputs = self._input_digests(step)
        if inputs is None:
            return None
        material = key_material(step, inputs, self.options.service)
        key = step_key(material)
        forced = self.options.force_all or step.id in self.options.force
        decision = decide(
            step,
            key,
            material,
            store=self.store,
            memo=self.memo,
            forced=forced,
            lock_entry=self.lock.entries.get(step.id),
        )
        if self.options.dry_run:
            return self._planned(step, decision.reason, key, decision)
        try:
            if decision.status is Status.CACHED:
                if decision.adopt:
                    self._adopt(step, key)
                return self._finish_step(
                    step,
                    key,
                    material,
                    inputs,
                    Status.CACHED,
                    decision.reason,
                    decision.digest,
                    meta=decision.meta,
                )
            if decision.status is Status.RESTORE and self._restore(step, key):
                return self._finish_step(
                    step,
                    key,
                    material,
                    inputs,
                    Status.RESTORE,
                    decision.reason,
                    decision.digest,
                    meta=decision.meta,
                )
        except OSError as exc:  # the output's folder is a file, the disk is full, ...
            self._failed.add(step.id)
            error = f"cannot write {step.output_rel} ({_os_error(exc)})"
            return self._report(step, Status.FAILED, decision.reason, error=error)
        reason = decision.reason if decision.status is Status.RUN else "stored result was corrupt"
        if self._stopped_by is not None:
            self._failed.add(step.id)
            return self._report(
                step,
                Status.BLOCKED,
                f"not started: {self._stopped_by} failed and --fail-fast is set",
            )
        self.emit(StepStarted(step.id, step.kind.name, reason, step.uses_api))
        return _Job(step, key, material, reason, inputs, forced)

    def _input_digests(self, step: Step) -> list[str] | None:
        digests = []
        for ref in step.refs:
            if ref.step is not None:
                digests.append(self._done[ref.step].digest)
                continue
            try:
                value = self.memo.digest(ref.path)
                problem = "no such file" if value is None else None
            except OSError as exc:
                value, problem = None, exc.strerror or str(exc)
            if value is None:
                self._failed.add(step.id)
                self._report(
                    step, Status.FAILED, "input file unreadable", error=f"{ref.text}: {problem}"
                )
                return None
            digests.append(value)
        return digests

    def _planned(self, step: Step, reason: str, key: str | None, decision: Decision | None = None):
        """A dry run's verdict on ``step``: the status it would get, and the cost if it runs."""
        status = decision.status if decision else Status.RUN
        estimate = step.kind.estimate(step) if status is Status.RUN else Estimate()
        self._done[step.id] = _Done(key, decision.digest if decision else None)
        self._report(step, status, reason, api_calls=estimate.api_calls, usd=estimate.usd, key=key)

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
        with self.store.lock(job.key):
            if not job.forced and (reused := self._reuse(job)) is not None:
                return reused
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
        step = job.step
        images = []
        for ref, expected in zip(step.refs, job.inputs, strict=True):
            data = self.store.blob(self._done[ref.step].key) if ref.step else ref.path.read_bytes()
            if data is None or digest(data) != expected:
                raise InputError(f"input {ref.text} changed while the run was going on")
            images.append(InputImage(ref.text, data))
        ctx = RunContext(
            self._get_provider,
            notify=lambda message: self.emit(Notice(f"{step.id}: {message}", level="info")),
            calls=StoreCallCache(self.store, self.options.service, refresh=job.forced),
        )
        result = step.kind.run(step, images, ctx)
        result.api_calls += ctx.api_calls
        result.usd += ctx.usd
        meta = {**result.meta, "step": step.id, "kind": step.kind.name, "summary": result.summary}
        result.meta = self.store.put(job.key, result.data, meta, result.attachments)
        self._write(step, result.data, result.attachments)
        return result

    def _collect(self, job: _Job, future: Future[StepOutput]) -> None:
        step = job.step
        seconds = time.monotonic() - job.started
        try:
            result = future.result()
        except ConfigError:
            raise  # no key, say: every API step would fail the same way, so stop the run
        except (GemflowError, OSError) as exc:
            self._failed.add(step.id)
            if self.options.fail_fast and self._stopped_by is None:
                self._stopped_by = step.id
            calls = attempts_of(exc) if step.uses_api and isinstance(exc, StepError) else 0
            message = str(exc) if isinstance(exc, GemflowError) else _os_error(exc)
            self._report(
                step, Status.FAILED, job.reason, error=message, seconds=seconds, api_calls=calls
            )
            return
        if job.reused:
            reason = "made meanwhile by another gemflow run"
            self._finish_step(
                step,
                job.key,
                job.material,
                job.inputs,
                Status.RESTORE,
                reason,
                result.meta["digest"],
                seconds=seconds,
                meta=result.meta,
            )
            return
        usage = result.meta.get("usage") or {}
        self._finish_step(
            step,
            job.key,
            job.material,
            job.inputs,
            Status.RUN,
            job.reason,
            result.meta["digest"],
            meta=result.meta,
            api_calls=result.api_calls,
            tokens=usage,
            seconds=seconds,
            usd=result.usd,
            model_version=result.meta.get("model_version"),
            result=result.summary,
        )

    # -- bookkeeping ------------------------------------------------------------------------------

    def _finish_step(
        self,
        step: Step,
        key: str,
        material: dict[str, Any],
        inputs: list[str],
        status: Status,
        reason: str,
        output_digest: str | None,
        *,
        model_version: str | None = None,
        tokens: dict[str, int] | None = None,
        meta: dict[str, Any] | None = None,
        **report: Any,
    ) -> None:
        self._done[step.id] = _Done(key, output_digest)
        if meta is None:
            meta = self.store.meta(key) or {}
        if model_version is None:
            model_version, tokens = meta.get("model_version"), meta.get("usage") or {}
        report.setdefault("result", meta.get("summary"))
        self._touched.add(step.id)
        self.lock.entries[step.id] = LockEntry(
            key=key,
            kind=step.kind.name,
            params=recorded_params(material),
            inputs=[{"ref": r.text, "digest": d} for r, d in zip(step.refs, inputs, strict=True)],
            output=step.output_rel,
            digest=output_digest or "",
            model_version=model_version,
            tokens=dict(tokens or {}),
            attachments=dict(meta.get("attachments") or {}),
        )
        fresh_tokens = tokens if status is Status.RUN else {}
        self._report(step, status, reason, key=key, tokens=dict(fresh_tokens or {}), **report)

    def _report(self, step: Step, status: Status, reason: str, **fields: Any) -> None:
        report = StepReport(
            id=step.id,
            kind=step.kind.name,
            status=status,
            reason=reason,
            output=step.output_rel,
            **fields,
        )
        self.summary.steps.append(report)
        self.emit(StepFinished(report))

    def _save_lock(self) -> None:
        """Write this run's entries over the lock file as it is now on disk, so that two runs on
        one workflow (different targets, say) do not undo each other's entries."""
        latest = LockFile.load(self.lock.path) if self.lock.changed_on_disk() else self.lock
        entries = {sid: e for sid, e in latest.entries.items() if sid in self.workflow.steps}
        entries.update({sid: self.lock.entries[sid] for sid in self._touched})
        latest.entries = entries
        latest.save()

    def _get_provider(self) -> Any:
        with self._provider_lock:
            if self._provider is None:
                if self._provider_factory is None:
                    raise StepError("this run has no API provider")
                self._provider = self._provider_factory()
            return self._provider

    def _finish(self) -> None:
        if self._provider is not None:
            self._provider.close()
        for key in self.store.corrupt:
            self.emit(Notice(f"dropped a corrupt cache entry ({key})"))
        if not self.options.dry_run:
            self._save_lock()
        if self.memo.changed:
            self.store.save_memo(self.memo.entries)
        self.emit(RunFinished(self.summary))


def _os_error(exc: OSError) -> str:
    """One line for a file-system error: what went wrong, and with which file."""
    where = f": {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def run_workflow(
    workflow: Workflow,
    store: Store,
    options: RunOptions,
    *,
    provider_factory: ProviderFactory | None = None,
    emit: Callable[[Event], None] | Iterable[Callable[[Event], None]] = (),
) -> RunSummary:
    """Run (or with ``options.dry_run``, plan) ``workflow``; every event goes to each of ``emit``."""
    listeners = [emit] if callable(emit) else list(emit)
    lock = threading.Lock()  # steps may notify from worker threads

    def broadcast(event: Event) -> None:
        with lock:
            for listener in listeners:
                listener(event)

    runner = Runner(workflow, store, options, provider_factory=provider_factory, emit=broadcast)
    return runner.run()
