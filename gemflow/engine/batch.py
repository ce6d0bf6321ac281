"""``--batch``: the calls of the API steps that must run go to the Batch API at half the price;
local steps still run on threads.

A round takes every API step that is ready, asks each kind for its calls (``ApiKind.exchange``),
answers what the per-call cache knows, and places the rest, per model:

- a request that an open job already holds (recorded in the ledger, by this run or an earlier
  one) waits for that job: it is never submitted twice, however the requests are cut into jobs;
  runs place their requests one at a time (``Ledger.placing``);
- a step that another run is making (it holds the step's key lock) or has made meanwhile is not
  submitted: its result is taken once that run lets go of the key (``Hooks.made_elsewhere``), and
  a run that is about to send a step asks the ledger first (``Ledger.holder``);
- the others go into new jobs, cut to size: at most ``Limits.requests`` requests, ``bytes`` of
  JSONL and ``tokens`` (estimated from the model table) each;
- with ``mode="auto"`` (``--batch=auto``), a model's group of fewer than ``min_group`` requests
  is sent at once instead, interactively: a small tail, or a chain of edits that has one request
  a round; with ``mode="collect"`` (a run without ``--batch`` while jobs are pending) nothing new
  is submitted, and jobs still running are left for a later run.

Answers are handed to each step as its job's output file is read, so a job's pictures are stored
(and let go) one step at a time; a kind that needs more (a probe's readings) asks in the round's
next pass. Every outcome goes through the same paths as an interactive call: answers are counted
and cached by the step's ``RunContext`` (at half price), refusals and errors fail the step as they
would interactively. A per-item error with a retryable code, or a key missing from the output, is
asked again (up to ``retries`` times); a job that fails, expires or passes its deadline is
cancelled and its requests are sent interactively, said clearly.

Rounds overlap: while a round only waits for its jobs, the steps that its interactive answers
unblocked start another, so a chain goes on beside a job that takes hours. A round starts only
when the runner has collected every finished step and no round is busy placing or handing over
answers, so the steps one job unblocks go in one round, not one per answer.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from gemflow.engine.events import BatchJobReport
from gemflow.engine.ledger import Ledger, Record, display_name
from gemflow.errors import ApiError, GemflowError, StepError
from gemflow.kinds.base import ApiKind, Call, StepOutput
from gemflow.models import estimated_tokens
from gemflow.providers.base import ApiResponse, service_name
from gemflow.providers.connection import Connection

BATCH_PRICE = 0.5  # the Batch API bills half of the interactive price
ROUND_CHECK = 0.1  # seconds: how often a wait looks whether queued steps can start a round
POLL_FAILURES = 5  # transient errors in a row asking how jobs are doing, before giving up
MODES = ("all", "auto", "collect")
SUCCEEDED = "JOB_STATE_SUCCEEDED"

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """How big one job may be; and, with ``--batch=auto``, how many requests to one model a
    round must have to be batched."""

    requests: int = 2000
    bytes: int = 500_000_000  # of the JSONL input file (the service takes up to 2 GB)
    tokens: int = 5_000_000  # estimated, input and output (the table's counts)
    min_group: int = 20


@dataclass(frozen=True)
class BatchSettings:
    """How a run uses the Batch API. The limits left None come from the workflow's ``defaults``
    (``batch_min``, ``batch_max_requests``, ``batch_max_mb``, ``batch_max_tokens``), else
    ``Limits``."""

    poll_seconds: float = 30.0  # how often to ask how the jobs are doing (Google's docs: 30 s)
    deadline_seconds: float = 24 * 3600.0  # then cancel and send interactively (expiry: 48 h)
    retries: int = 3  # per request, after a retryable per-item error or a missing answer
    detach: bool = False  # submit, record, and return: a later run collects the answers
    mode: str = "all"  # "all", "auto" or "collect": see the module's docstring
    min_group: int | None = None
    max_requests: int | None = None
    max_bytes: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"batch mode {self.mode!r}: one of {', '.join(MODES)}")

    def limits(self, defaults: Mapping[str, Any] | None = None) -> Limits:
        """The limits of a run of a workflow whose ``defaults`` (its run settings) are these."""
        defaults = defaults or {}
        built_in = Limits()
        mb = defaults.get("batch_max_mb")
        return Limits(
            requests=_first(
                self.max_requests, defaults.get("batch_max_requests"), built_in.requests
            ),
            bytes=_first(self.max_bytes, None if mb is None else int(mb * 1e6), built_in.bytes),
            tokens=_first(self.max_tokens, defaults.get("batch_max_tokens"), built_in.tokens),
            min_group=_first(self.min_group, defaults.get("batch_min"), built_in.min_group),
        )


def _first(*values: Any) -> int:
    return int(next(v for v in values if v is not None))


def chunked(
    items: Iterable[T], limits: Limits, size: Callable[[T], tuple[int, int]]
) -> Iterator[list[T]]:
    """``items``, in order, cut into jobs within ``limits``: requests, bytes and tokens, as
    ``size`` says (bytes, tokens) of each. An item too big for any job goes alone."""
    chunk: list[T] = []
    used_bytes = used_tokens = 0
    for item in items:
        more_bytes, more_tokens = size(item)
        if chunk and (
            len(chunk) >= limits.requests
            or used_bytes + more_bytes > limits.bytes
            or used_tokens + more_tokens > limits.tokens
        ):
            yield chunk
            chunk, used_bytes, used_tokens = [], 0, 0
        chunk.append(item)
        used_bytes += more_bytes
        used_tokens += more_tokens
    if chunk:
        yield chunk


class Detached(GemflowError):
    """The step's requests are in a batch job that a later run collects."""

    def __init__(self, job: str) -> None:
        super().__init__(f"waiting for batch job {job}")
        self.job = job


class Hooks(Protocol):
    """What the runner does for the executor: a step's inputs, keeping its output."""

    def images(self, job: Any) -> list[Any]: ...

    def keep(self, job: Any, outcome: Callable[[], StepOutput]) -> StepOutput: ...

    def reuse(self, job: Any) -> StepOutput | None: ...

    def taken(self, job: Any) -> bool: ...

    def made_elsewhere(self, job: Any) -> StepOutput | None: ...

    def key_lock(self, job: Any) -> contextlib.AbstractContextManager[None]: ...


class _More(Exception):
    """The exchange asks for more calls: another pass."""

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls


# What a settled step's future becomes in the executor's books: the result itself is the
# runner's to collect (and let go of), so that no picture stays in memory until the round ends.
_SETTLED: Future[Any] = Future()
_SETTLED.set_result(None)

Item = tuple["_Pending", int]  # a step and the index of one of its calls
Targets = dict[str, list[Item]]  # a request's key -> the calls that ask it (equal steps: several)


@dataclass(eq=False)
class _Pending:
    job: Any  # the runner's job: step, key, ctx
    future: Future[StepOutput]
    exchange: Any = None
    calls: list[Call] = field(default_factory=list)
    answers: list[ApiResponse | None] = field(default_factory=list)
    tries: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    passes: int = 0  # how many times its exchange has asked for calls
    keys: list[str] = field(default_factory=list)  # of its calls, as batch items
    described: list[str] = field(default_factory=list)  # its calls' requests, to check replays
    models: list[str] = field(default_factory=list)  # of its calls
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)  # (line bytes, tokens)
    shelved: bool = False  # its requests let go of, until an answer or a job needs them

    @property
    def done(self) -> bool:
        return self.future.done()

    def ask(self, calls: list[Call]) -> None:
        self.calls, self.answers, self.tries, self.sizes = calls, [None] * len(calls), {}, {}
        self.passes += 1
        self.keys = [self._key(index) for index in range(len(calls))]
        self.models = [call.request.model for call in calls]
        self.described = [_described(call) for call in calls]

    def key(self, index: int) -> str:
        return self.keys[index]

    def _key(self, index: int) -> str:
        """The batch item's key: the step's key for its one call, else one per call."""
        call = self.calls[index]
        if call.sample is None and len(self.calls) == 1:
            return str(self.job.key)
        text = f"{self.job.key}|{call.sample}|{sorted(call.request.describe().items())}"
        return "call:" + hashlib.sha256(text.encode()).hexdigest()

    def release(self) -> None:
        """Settled: let go of its requests (with their input images) and answers."""
        self.exchange, self.calls, self.answers, self.future = None, [], [], _SETTLED

    def shelve(self) -> None:
        """Let go of its requests (their input images) until an answer or a job's file needs
        them: they are made again then (``BatchExecutor._holding``). Only on its exchange's
        first pass: a later one is reached by replaying answers the cache may not hold."""
        if self.passes == 1 and not self.done:
            self.exchange, self.calls, self.shelved = None, [], True


@dataclass(eq=False)
class _Open:
    """A job this round waits for, and the calls its answers go to."""

    batches: Any  # gemflow.providers.gemini_batch.GeminiBatches
    job: Any  # gemflow.providers.gemini_batch.Job, as last seen
    record: Record
    targets: Targets


class BatchExecutor:
    """Executor-shaped (see ``ThreadExecutor``): API steps go in rounds, the rest on threads."""

    def __init__(
        self,
        hooks: Hooks,
        connection: Connection,
        ledger: Ledger,
        settings: BatchSettings,
        *,
        limits: Limits,
        jobs: int,
        notify: Callable[[str], None],
        tell: Callable[[BatchJobReport], None] = lambda report: None,
    ) -> None:
        self.hooks = hooks
        self.connection = connection
        self.ledger = ledger
        self.settings = settings
        self.limits = limits
        self.notify = notify
        self.tell = tell  # a job was submitted, resumed, or changed state
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="step")
        self._calls = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="call")
        self._queue: list[_Pending] = []
        self._running: dict[Future[StepOutput], Any] = {}
        self._pending: dict[Future[StepOutput], _Pending] = {}
        self._sending: set[_Pending] = set()  # interactive calls in flight: waited for on Ctrl-C
        self._rounds: list[threading.Thread] = []
        self._busy = 0  # rounds placing requests or handing answers over (not just waiting)
        self._lock = threading.Lock()
        self._stop = threading.Event()  # stop waiting for jobs: the run is ending
        self._interrupted = threading.Event()  # and stop handing answers over (Ctrl-C)
        # A run without --batch sends interactively, through the thread pool as usual, every
        # step whose requests no open job holds.
        self._held = ledger.holding_steps() if settings.mode == "collect" else None

    # -- the executor's shape ---------------------------------------------------------------------

    def __bool__(self) -> bool:
        return bool(self._running)

    def has_room(self) -> bool:
        return True  # a round takes every ready step; the pools queue the rest

    def submit(self, job: Any, work: Callable[[Any], StepOutput]) -> None:
        held = self._held is None or job.key in self._held
        if isinstance(job.step.kind, ApiKind) and held:
            future: Future[StepOutput] = Future()
            pending = _Pending(job, future)
            self._queue.append(pending)
            self._pending[future] = pending
        else:
            future = self._pool.submit(work, job)
        self._running[future] = job

    def wait(self) -> list[tuple[Any, Future[StepOutput]]]:
        """Wait until a step finishes; return every finished one. Queued steps start a round
        once every finished step has been collected and no round is busy."""
        while True:
            done = [future for future in self._running if future.done()]
            if done:
                for future in done:
                    self._pending.pop(future, None)
                return [(self._running.pop(future), future) for future in done]
            if self._queue and self._quiet():
                batch, self._queue = self._queue, []
                with self._lock:
                    self._busy += 1
                thread = threading.Thread(target=self._run_round, args=(batch,), daemon=True)
                self._rounds = [t for t in self._rounds if t.is_alive()] + [thread]
                thread.start()
            wait(list(self._running), timeout=ROUND_CHECK, return_when=FIRST_COMPLETED)

    def interrupt(self) -> list[Any]:
        """Local steps and interactive calls in flight: as the thread executor (their answers
        are paid for). Batch jobs go on at Google's; the ledger keeps them, and the next run
        collects their answers."""
        self._interrupted.set()
        self._stop.set()
        with self._lock:
            sending = {p.future for p in self._sending}
        for future in list(self._running):
            pending = self._pending.get(future)
            if pending is None:  # a local step, or one sent as usual
                if future.cancel():
                    del self._running[future]
            elif not future.done() and future not in sending:
                self._fail(pending, KeyboardInterrupt())
                del self._running[future]
        return list(self._running.values())

    def finishing(self, timeout: float | None = None) -> Iterator[tuple[Any, Future[StepOutput]]]:
        for future in as_completed(list(self._running), timeout=timeout):
            self._pending.pop(future, None)
            yield self._running.pop(future), future

    def shutdown(self, *, abandon: bool = False) -> None:
        """Stop; unless ``abandon``, wait until every round has ended (a round that has handed
        its last answer over still clears its job from the ledger)."""
        self._stop.set()
        if not abandon:
            for thread in self._rounds:
                thread.join()
        self._calls.shutdown(wait=not abandon, cancel_futures=True)
        self._pool.shutdown(wait=not abandon, cancel_futures=True)

    def _quiet(self) -> bool:
        with self._lock:
            return self._busy == 0

    @contextlib.contextmanager
    def _idle(self) -> Iterator[None]:
        """A round that only waits for its jobs lets another start meanwhile."""
        with self._lock:
            self._busy -= 1
        try:
            yield
        finally:
            with self._lock:
                self._busy += 1

    # -- a round ----------------------------------------------------------------------------------

    def _run_round(self, batch: list[_Pending]) -> None:
        """Each pass: every live step's calls answered (from the cache, jobs, or sent), then
        handed over; those that ask for more go on to the next pass. On the first, each step
        lets go of its requests as soon as they are measured: a round of a thousand edits never
        holds a thousand input images."""
        try:
            live, first = batch, True
            while live and not self._stop.is_set():
                more: list[_Pending] = []  # those that ask for more calls
                asked: list[Item] = []
                for p in live:
                    if first and not self._start(p):
                        continue
                    missing = self._unanswered(p)
                    asked += [(p, i) for i in missing]
                    if missing:
                        self._measure(p, missing)
                        with p.lock:
                            p.shelve()
                    elif self._advance(p):
                        more.append(p)
                if asked:
                    self._answer(asked, more)
                live, first = more, False
        except BaseException as exc:  # a future must never be left waiting
            for p in batch:
                self._fail(p, exc)
        finally:
            for p in batch:  # only if the run is ending: the rest asked for nothing more
                self._fail(p, KeyboardInterrupt() if self._stop.is_set() else _lost())
            with self._lock:
                self._busy -= 1

    def _start(self, p: _Pending) -> bool:
        """Begin ``p``'s exchange; False when it needs no round (reused, failed, done)."""
        try:
            reused = self.hooks.reuse(p.job)
            if reused is not None:
                self._succeed(p, reused)
                return False
            step = p.job.step
            p.exchange = step.kind.exchange(step, self.hooks.images(p.job))
            p.ask(next(p.exchange))
        except StopIteration as done:
            output: StepOutput = done.value
            return self._kept(p, lambda: output)
        except BaseException as exc:
            self._fail(p, exc)
            return False
        return True

    def _measure(self, p: _Pending, indexes: list[int]) -> None:
        """The bytes and estimated tokens each of ``indexes`` takes in a job."""
        for index in indexes:
            request = p.calls[index].request
            size = self._line_size(request.model)
            p.sizes[index] = size(p.key(index), request), estimated_tokens(request)

    def _line_size(self, model: str) -> Callable[[str, Any], int]:
        try:
            sizer: Callable[[str, Any], int] = self.connection.batches(model).line_size
            return sizer
        except GemflowError:  # no Batch API (or no key): placing it in a job says why
            return lambda key, request: 0

    def _unanswered(self, p: _Pending) -> list[int]:
        """The calls of ``p`` the per-call cache cannot answer."""
        missing = []
        for index, call in enumerate(p.calls):
            p.answers[index] = p.job.ctx.recall(call)
            if p.answers[index] is None:
                missing.append(index)
        return missing

    def _advance(self, p: _Pending) -> bool:
        """Hand ``p``'s answers to its exchange; True when it asks for more."""
        held = self._holding(p, lambda: (p.exchange, p.answers))
        if held is None:
            return False
        exchange, answers = held

        def produce() -> StepOutput:
            try:
                calls = exchange.send(answers)
            except StopIteration as done:
                output: StepOutput = done.value
                return output
            raise _More(calls)

        return self._kept(p, produce)

    def _kept(self, p: _Pending, outcome: Callable[[], StepOutput]) -> bool:
        """Run ``outcome`` through the runner's ``keep`` (stored, written); True when the step
        asks for more calls instead."""
        try:
            output = self.hooks.keep(p.job, outcome)
        except _More as more:
            with p.lock:
                if p.done:
                    return False
                p.ask(more.calls)
            return True
        except BaseException as exc:
            self._fail(p, exc)
            return False
        self._succeed(p, output)
        return False

    def _succeed(self, p: _Pending, output: StepOutput) -> None:
        with p.lock:
            if not p.done:
                p.future.set_result(output)
                p.release()

    def _fail(self, p: _Pending, exc: BaseException) -> None:
        with p.lock:
            if not p.done:
                p.future.set_exception(exc)
                p.release()

    def _deliver(
        self, p: _Pending, index: int, answer: ApiResponse, more: list[_Pending], sent: int = -1
    ) -> None:
        """``answer`` to call ``index`` of ``p``; ``sent`` >= 0: an answer from a batch job, to
        count (``sent`` requests at half price) and cache as the step's own sending would."""

        def take() -> bool:
            if sent >= 0:
                p.job.ctx.take(p.calls[index], answer, sent=sent, price=BATCH_PRICE)
            p.answers[index] = answer
            return all(a is not None for a in p.answers)

        if self._holding(p, take) and self._advance(p):
            more.append(p)

    def _holding(self, p: _Pending, use: Callable[[], T]) -> T | None:
        """``use()`` under ``p``'s lock, its requests at hand: made again from its inputs (its
        exchange replayed to the same calls) if it let go of them. None when ``p`` has settled,
        or cannot make them again (it fails)."""
        with p.lock:
            if p.done:
                return None
            try:
                if p.shelved:
                    step = p.job.step
                    exchange = step.kind.exchange(step, self.hooks.images(p.job))
                    calls = next(exchange)
                    if [_described(call) for call in calls] != p.described:
                        raise StepError("its requests changed while it waited for a batch job")
                    p.exchange, p.calls, p.shelved = exchange, calls, False
            except BaseException as exc:
                error = exc
            else:
                return use()
        self._fail(p, error)
        return None

    # -- placing requests -------------------------------------------------------------------------

    def _answer(self, asked: list[Item], more: list[_Pending]) -> None:
        """Answer ``asked``: through open jobs, new ones, or interactively; ask again what comes
        back retryable."""
        while asked and not self._stop.is_set():
            jobs, now, elsewhere = self._place(asked)
            sending = self._send_now(now, more)
            waiting = [self._calls.submit(self._wait_elsewhere, p, items) for p, items in elsewhere]
            again = self._follow(jobs, more)
            for future in sending:
                future.result()
            for asked_again in waiting:
                again += asked_again.result()
            asked = [(p, i) for p, i in again if not p.done]

    def _wait_elsewhere(self, p: _Pending, items: list[Item]) -> list[Item]:
        """``p``'s result, made by another run that held its key: taken once that run lets go
        of it; if it made none (it failed, or was stopped), ``items`` are asked again."""
        try:
            made = self.hooks.made_elsewhere(p.job)
        except BaseException as exc:
            self._fail(p, exc)
            return []
        if made is None:
            return items
        self._succeed(p, made)
        return []

    def _place(
        self, asked: list[Item]
    ) -> tuple[list[_Open], Targets, list[tuple[_Pending, list[Item]]]]:
        """The jobs that will answer ``asked`` (open ones, then new ones), the requests to send
        now, and the steps another run is making (or has made) meanwhile; decided and submitted
        while no other run or round places requests."""
        with self.ledger.placing(cancelled=self._stop.is_set):
            jobs, fresh = self._reopen_all(asked)
            with self.ledger.recording(cancelled=self._stop.is_set):
                recorded, now, elsewhere = self._record_fresh(fresh)
            for record, targets in recorded:  # uploaded once recorded: see Ledger.recording
                opened = self._submit(record, targets)
                if opened is not None:
                    jobs.append(opened)
            return jobs, now, elsewhere

    def _reopen_all(self, asked: list[Item]) -> tuple[list[_Open], dict[str, Targets]]:
        """The open jobs that hold some of ``asked``, and the rest by model."""
        holding = self.ledger.holding()
        held: dict[str, tuple[Record, Targets]] = {}
        fresh: dict[str, Targets] = {}  # by model
        for p, index in asked:
            key = p.key(index)
            if (record := holding.get(key)) is not None:
                targets = held.setdefault(record.display_name, (record, {}))[1]
            else:
                targets = fresh.setdefault(p.models[index], {})
            targets.setdefault(key, []).append((p, index))
        jobs: list[_Open] = []
        for record, targets in held.values():
            opened = self._reopen(record, targets)
            if opened is not None:
                jobs.append(opened)
            else:
                for key, items in targets.items():
                    fresh.setdefault(record.model, {}).setdefault(key, []).extend(items)
        return jobs, fresh

    def _record_fresh(
        self, fresh: dict[str, Targets]
    ) -> tuple[list[tuple[Record, Targets]], Targets, list[tuple[_Pending, list[Item]]]]:
        """``fresh`` (by model) sorted out: new jobs, recorded; the requests to send now; and the
        steps another run is making, or made since they started (asked while recording, so that
        such a run either finds our job or is left alone)."""
        recorded: list[tuple[Record, Targets]] = []
        now: Targets = {}
        elsewhere: dict[_Pending, list[Item]] = {}
        taken_by_others = functools.cache(lambda p: self.hooks.taken(p.job))
        for model, targets in fresh.items():
            for key, items in list(targets.items()):
                left = [item for item in items if not taken_by_others(item[0])]
                for p, index in items:
                    if (p, index) not in left:
                        elsewhere.setdefault(p, []).append((p, index))
                if left:
                    targets[key] = left
                else:
                    del targets[key]
            if self.settings.mode == "collect" or (
                self.settings.mode == "auto" and len(targets) < self.limits.min_group
            ):
                now.update(targets)
            elif targets:
                recorded += self._record_all(model, targets)
        return recorded, now, list(elsewhere.items())

    def _record_all(self, model: str, targets: Targets) -> list[tuple[Record, Targets]]:
        """New jobs for ``targets``, cut to the limits (in the order of their keys: the same
        requests make the same jobs), each recorded before it is created: a run that dies
        before learning a job's name adopts the job later."""
        self.connection.batches(model)  # no Batch API (or no key): said before recording

        def size(key: str) -> tuple[int, int]:
            p, index = targets[key][0]
            return p.sizes.get(index, (0, 0))

        service = service_name(self.connection.service)
        recorded = []
        for keys in chunked(sorted(targets), self.limits, size):
            chunk = {key: targets[key] for key in keys}
            steps = {p.job.key: p.job.step.id for items in chunk.values() for p, _ in items}
            name = display_name(model, chunk)
            record = Record(name, model, sorted(chunk), steps=steps, service=service)
            self.ledger.put(record)
            recorded.append((record, chunk))
        return recorded

    def _submit(self, record: Record, targets: Targets) -> _Open | None:
        """Upload and create the recorded job for ``targets``; record its name."""
        batches = self.connection.batches(record.model)
        try:
            job = batches.submit(record.model, self._requests(targets), record.display_name)
        except GemflowError as exc:  # not created, or not known to be: the next run looks
            for items in targets.values():
                for p, _ in items:
                    self._fail(p, exc)
            return None
        record.job, record.state = job.name, job.state
        self.ledger.put(record)
        self.notify(f"batch job {job.name}: {len(targets)} requests to {record.model}")
        self.tell(record.report())
        return _Open(batches, job, record, targets)

    def _requests(self, targets: Targets) -> Iterator[tuple[str, Any]]:
        """Each request of ``targets`` with its key, made again for its line of the job's file
        if its step let go of it, and let go of again once written."""
        for key, items in targets.items():
            for p, index in items:  # an equal step's, if the first has settled meanwhile
                call = self._call(p, index)
                if call is not None:
                    yield key, call.request
                    with p.lock:
                        p.shelve()
                    break

    def _reopen(self, record: Record, targets: Targets) -> _Open | None:
        """The recorded job that holds ``targets``: resumed by its name, or adopted from the
        service's list if the run that created it died before learning its name. None when it
        was never created, or the service no longer has it: its requests are asked anew."""
        batches = self.connection.batches(record.model)
        try:
            if record.job is not None:
                job, how = batches.get(record.job), "resumed"
            elif (found := batches.find(record.display_name)) is not None:
                job, how = batches.get(found.name), "adopted"  # a listed job has no output
            else:
                self.ledger.remove(record.display_name)
                return None
        except ApiError as exc:
            if exc.code != 404:
                raise
            self.notify(f"batch job {record.job} is gone from the service: asking again")
            self.ledger.remove(record.display_name)
            return None
        record.job, record.state = job.name, job.state
        self.ledger.put(record)
        wanted = "" if len(targets) == len(record.keys) else f" of {len(record.keys)}"
        self.notify(f"batch job {job.name} {how} ({len(targets)}{wanted} requests)")
        self.tell(record.report())
        return _Open(batches, job, record, targets)

    # -- waiting for jobs -------------------------------------------------------------------------

    def _follow(self, jobs: list[_Open], more: list[_Pending]) -> list[Item]:
        """Wait until each of ``jobs`` ends and hand its answers over as it does (with
        ``detach``, only those already ended); returns the calls to ask again."""
        again: list[Item] = []
        waiting = []
        for opened in jobs:
            if opened.job.ended:
                again += self._end(opened, more)
            elif self.settings.detach:
                for items in opened.targets.values():
                    for p, _ in items:
                        self._fail(p, Detached(opened.job.name))
            else:
                waiting.append(opened)
        failures = 0
        while waiting and not self._stop.is_set():
            deadline = time.time() - self.settings.deadline_seconds
            overdue = [o for o in waiting if o.record.created < deadline]
            for opened in overdue:
                again += self._overdue(opened, more)
            waiting = [o for o in waiting if o not in overdue]
            if not waiting:
                break
            with self._idle():
                if self._stop.wait(self.settings.poll_seconds):
                    break
            still = []
            for opened in waiting:
                try:
                    job = opened.batches.get(opened.job.name)
                except ApiError as exc:
                    failures += 1
                    if not exc.retryable or failures > POLL_FAILURES:
                        raise
                    self.notify(f"batch job {opened.job.name}: {exc}; asking again")
                    still.append(opened)
                    continue
                failures = 0
                self._seen(opened, job)
                if job.ended:
                    again += self._end(opened, more)
                else:
                    still.append(opened)
            waiting = still
        return again

    def _seen(self, opened: _Open, job: Any) -> None:
        """The job as just seen: its state recorded and told when it changed."""
        changed = job.state != opened.job.state
        opened.job = job
        if changed:
            opened.record.state = job.state
            self.ledger.put(opened.record)
            self.tell(opened.record.report())

    def _overdue(self, opened: _Open, more: list[_Pending]) -> list[Item]:
        name = opened.job.name
        self.notify(f"batch job {name} passed its deadline: cancelled")
        opened.batches.cancel(name)
        self._seen(opened, opened.batches.get(name))
        return self._end(opened, more)

    def _end(self, opened: _Open, more: list[_Pending]) -> list[Item]:
        """The job ended: its answers handed over, or its requests sent interactively."""
        job = opened.job
        if job.state != SUCCEEDED:
            why = job.error or job.state.removeprefix("JOB_STATE_").lower()
            count = len(opened.targets)
            self.notify(f"batch job {job.name} {why}: its {count} requests go interactive")
            self.ledger.remove(opened.record.display_name)
            for future in self._send_now(opened.targets, more):
                future.result()
            return []
        again = self._ingest(opened, more)
        if not self._interrupted.is_set():  # else a later run reads the answers again
            self.ledger.remove(opened.record.display_name)
        return again

    def _ingest(self, opened: _Open, more: list[_Pending]) -> list[Item]:
        """Hand each answer of the job's output file over as it is read; returns the calls to
        ask again (a retryable error, no answer)."""
        again: list[Item] = []
        seen = set()
        with tempfile.TemporaryDirectory(prefix="gemflow-batch-") as folder:
            for key, answer in opened.batches.results(opened.job, Path(folder)):
                if self._interrupted.is_set():
                    return []
                items = opened.targets.get(key)
                if items is None or key in seen:
                    continue
                seen.add(key)
                if isinstance(answer, ApiResponse):
                    for n, (p, index) in enumerate(items):
                        self._deliver(p, index, answer, more, sent=int(n == 0))
                    continue
                status = "INVALID_ARGUMENT" if answer.code == 3 else f"batch error {answer.code}"
                error = ApiError(answer.message, status=status)
                again += self._again(items, error if answer.retryable else None, error, True)
        for key in opened.targets.keys() - seen:  # asked, not answered: ask again
            error = ApiError(f"batch job {opened.job.name} never answered this request")
            again += self._again(opened.targets[key], error, error, False)
        return again

    def _again(
        self, items: list[Item], retryable: Exception | None, error: Exception, sent: bool
    ) -> list[Item]:
        """The calls of ``items`` (one request) to ask again; those out of tries (or whose error
        is not ``retryable``) fail with ``error``."""
        again = []
        for n, (p, index) in enumerate(items):
            with p.lock:
                if p.done:
                    continue
                if sent and n == 0:
                    p.job.ctx.api_calls += 1
                tries = p.tries.get(index, 0)
                if retryable is not None and tries < self.settings.retries:
                    p.tries[index] = tries + 1
                    again.append((p, index))
                    continue
            self._fail(p, error)
        return again

    # -- interactive calls ------------------------------------------------------------------------

    def _send_now(self, targets: Targets, more: list[_Pending]) -> list[Future[None]]:
        """Send ``targets`` interactively, on the call threads: each step's calls in turn, an
        answer shared with equal steps."""
        by_step: dict[_Pending, list[tuple[int, list[Item]]]] = {}
        for items in targets.values():
            (p, index), others = items[0], items[1:]
            by_step.setdefault(p, []).append((index, others))
        return [self._calls.submit(self._send, p, calls, more) for p, calls in by_step.items()]

    def _send(self, p: _Pending, calls: Sequence[tuple[int, list[Item]]], more: list) -> None:
        """Send ``p``'s ``calls`` holding its key's lock, as a plain run would: a run that is
        making the same result meanwhile is waited for, and its result taken."""
        with self._lock:
            self._sending.add(p)
        try:
            asking: list[tuple[_Pending, list[tuple[int, list[Item]]]]] = []
            with self.hooks.key_lock(p.job):
                if (made := self.hooks.reuse(p.job)) is not None:
                    self._succeed(p, made)
                for index, others in calls:
                    call = self._call(p, index)
                    if call is None:  # settled meanwhile (or its inputs are gone): an equal
                        if others:  # step asks, once this key's lock is let go of
                            (q, other), rest = others[0], others[1:]
                            asking.append((q, [(other, rest)]))
                        continue
                    try:
                        answer = p.job.ctx.send(call)
                    except BaseException as exc:
                        for q, _ in [(p, index), *others]:
                            self._fail(q, exc)
                        continue
                    self._deliver(p, index, answer, more)
                    for q, other in others:
                        self._deliver(q, other, answer, more, sent=0)
            for q, their_calls in asking:
                self._send(q, their_calls, more)
        finally:
            with self._lock:
                self._sending.discard(p)

    def _call(self, p: _Pending, index: int) -> Call | None:
        """Call ``index`` of ``p``, unless ``p`` has settled."""
        return self._holding(p, lambda: p.calls[index])


def _described(call: Call) -> str:
    return json.dumps([call.sample, call.request.describe()], sort_keys=True)


def _lost() -> StepError:
    return StepError("batch mode lost track of this step (a bug: please report it)")
