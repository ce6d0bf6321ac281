"""``--batch``: the calls of the API steps that must run go to the Batch API at half the price,
one job per model and round (chunked); local steps still run on threads.

A round takes every API step that is ready, asks each kind for its calls (``ApiKind.exchange``),
answers what the per-call cache knows, submits the rest, polls until the jobs end, and hands
the answers back; a kind that needs more (a probe's readings) asks in the next round. Every
outcome goes through the same paths as an interactive call: answers are counted and cached by
the step's ``RunContext`` (at half price), refusals and errors fail the step as they would
interactively. A per-item error with a retryable code, or a key missing from the output, is asked
again (up to ``retries`` times); a job that fails, expires or passes its deadline is cancelled
and its requests are sent interactively, said clearly.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gemflow.engine.ledger import Ledger, Record, display_name
from gemflow.errors import ApiError, GemflowError
from gemflow.kinds.base import ApiKind, Call, StepOutput
from gemflow.providers.base import ApiResponse
from gemflow.providers.connection import Connection

BATCH_PRICE = 0.5  # the Batch API bills half of the interactive price
ROUND_CHECK = 0.1  # seconds: how often a wait looks whether queued steps can start a round


@dataclass(frozen=True)
class BatchSettings:
    poll_seconds: float = 30.0  # how often to ask how the jobs are doing (Google's docs: 30 s)
    deadline_seconds: float = (
        24 * 3600.0
    )  # then cancel and send interactively (jobs expire at 48 h)
    chunk: int = 2000  # requests per job at most
    retries: int = 3  # per request, after a retryable per-item error or a missing answer
    detach: bool = False  # submit, record, and return: a later run collects the answers


class Detached(GemflowError):
    """The step's requests are in a batch job that a later run collects."""


class Hooks(Protocol):
    """What the runner does for the executor: a step's inputs, keeping its output."""

    def images(self, job: Any) -> list[Any]: ...

    def keep(self, job: Any, outcome: Callable[[], StepOutput]) -> StepOutput: ...

    def reuse(self, job: Any) -> StepOutput | None: ...


class _More(Exception):
    """The exchange asks for more calls: another round."""

    def __init__(self, calls: list[Call]) -> None:
        self.calls = calls


@dataclass(eq=False)
class _Pending:
    job: Any  # the runner's job: step, key, ctx
    future: Future[StepOutput]
    exchange: Any = None
    calls: list[Call] = field(default_factory=list)
    answers: list[ApiResponse | None] = field(default_factory=list)
    tries: dict[int, int] = field(default_factory=dict)

    def ask(self, calls: list[Call]) -> None:
        self.calls, self.answers, self.tries = calls, [None] * len(calls), {}

    def key(self, index: int) -> str:
        """The batch item's key: the step's key for its one call, else one per call."""
        call = self.calls[index]
        if call.sample is None and len(self.calls) == 1:
            return str(self.job.key)
        text = f"{self.job.key}|{call.sample}|{sorted(call.request.describe().items())}"
        return "call:" + hashlib.sha256(text.encode()).hexdigest()


class BatchExecutor:
    """Executor-shaped (see ``ThreadExecutor``): API steps go in batch rounds, the rest on threads."""

    def __init__(
        self,
        hooks: Hooks,
        connection: Connection,
        ledger: Ledger,
        settings: BatchSettings,
        *,
        jobs: int,
        notify: Callable[[str], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.hooks = hooks
        self.connection = connection
        self.ledger = ledger
        self.settings = settings
        self.notify = notify
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="step")
        self._queue: list[_Pending] = []
        self._running: dict[Future[StepOutput], Any] = {}
        self._round: threading.Thread | None = None
        self._stop = threading.Event()

    # -- the executor's shape ---------------------------------------------------------------------

    def __bool__(self) -> bool:
        return bool(self._running)

    def has_room(self) -> bool:
        return True  # a round takes every ready step; the pool queues local ones

    def submit(self, job: Any, work: Callable[[Any], StepOutput]) -> None:
        if isinstance(job.step.kind, ApiKind):
            future: Future[StepOutput] = Future()
            self._queue.append(_Pending(job, future))
        else:
            future = self._pool.submit(work, job)
        self._running[future] = job

    def wait(self) -> list[tuple[Any, Future[StepOutput]]]:
        """Wait until a step finishes. Steps queued while a round runs go in the next round,
        started as soon as the current one has ended."""
        while True:
            if self._queue and (self._round is None or not self._round.is_alive()):
                batch, self._queue = self._queue, []
                self._round = threading.Thread(target=self._run_round, args=(batch,), daemon=True)
                self._round.start()
            done, _ = wait(list(self._running), timeout=ROUND_CHECK, return_when=FIRST_COMPLETED)
            if done:
                return [(self._running.pop(future), future) for future in done]

    def interrupt(self) -> list[Any]:
        """Local steps: as the thread executor. Batch jobs go on at Google's; the ledger keeps
        them, and the next run collects their answers."""
        self._stop.set()
        for future in list(self._running):
            if future.cancel() or future.done():
                del self._running[future]
            elif self._running[future].step.uses_api:
                future.set_exception(KeyboardInterrupt())
                del self._running[future]
        return list(self._running.values())

    def finishing(self, timeout: float | None = None) -> Iterator[tuple[Any, Future[StepOutput]]]:
        for future in as_completed(list(self._running), timeout=timeout):
            yield self._running.pop(future), future

    def shutdown(self, *, abandon: bool = False) -> None:
        self._stop.set()
        self._pool.shutdown(wait=not abandon, cancel_futures=True)

    # -- a round ------------------------------------------------------------------------------------

    def _run_round(self, batch: list[_Pending]) -> None:
        try:
            live = [p for p in batch if self._start(p)]
            while live and not self._stop.is_set():
                self._more: list[_Pending] = []  # those that ask for more calls
                asked = []
                for p in live:
                    missing = self._unanswered(p)
                    asked += [(p, i) for i in missing]
                    if not missing:
                        self._complete(p)
                if asked:
                    self._answer(asked)
                live = self._more
        except BaseException as exc:  # a future must never be left waiting
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)

    def _start(self, p: _Pending) -> bool:
        """Begin ``p``'s exchange; False when it needs no round (reused, failed, done)."""
        try:
            reused = self.hooks.reuse(p.job)
            if reused is not None:
                p.future.set_result(reused)
                return False
            step = p.job.step
            p.exchange = step.kind.exchange(step, self.hooks.images(p.job))
            p.ask(next(p.exchange))
        except StopIteration as done:
            output: StepOutput = done.value
            return self._settle(p, lambda: output)
        except BaseException as exc:
            p.future.set_exception(exc)
            return False
        return True

    def _unanswered(self, p: _Pending) -> list[int]:
        """The calls of ``p`` the per-call cache cannot answer."""
        missing = []
        for index, call in enumerate(p.calls):
            p.answers[index] = p.job.ctx.recall(call)
            if p.answers[index] is None:
                missing.append(index)
        return missing

    def _complete(self, p: _Pending) -> None:
        """``p`` has every answer: hand them over now, so a job's pictures are stored (and let
        go) one step at a time, never all held at once."""
        if self._advance(p):
            self._more.append(p)

    def _advance(self, p: _Pending) -> bool:
        """Hand ``p``'s answers to its exchange; True when it asks for more."""
        if p.future.done():
            return False

        def produce() -> StepOutput:
            try:
                calls = p.exchange.send(p.answers)
            except StopIteration as done:
                output: StepOutput = done.value
                return output
            raise _More(calls)

        try:
            return self._settle(p, produce)
        except _More as more:
            p.ask(more.calls)
            return True

    def _settle(self, p: _Pending, outcome: Callable[[], StepOutput]) -> bool:
        try:
            p.future.set_result(self.hooks.keep(p.job, outcome))
        except _More:
            raise
        except BaseException as exc:
            p.future.set_exception(exc)
        return False

    # -- jobs ---------------------------------------------------------------------------------------

    def _answer(self, asked: list[tuple[_Pending, int]]) -> None:
        """Answer ``asked`` through batch jobs, asking again what comes back retryable."""
        while asked and not self._stop.is_set():
            by_model: dict[str, list[tuple[_Pending, int]]] = {}
            for p, index in asked:
                by_model.setdefault(p.calls[index].request.model, []).append((p, index))
            again: list[tuple[_Pending, int]] = []
            for model, items in by_model.items():
                for start in range(0, len(items), self.settings.chunk):
                    again += self._one_job(model, items[start : start + self.settings.chunk])
            asked = [(p, i) for p, i in again if not p.future.done()]

    def _one_job(self, model: str, items: list[tuple[_Pending, int]]) -> list[tuple[_Pending, int]]:
        """Run one job of ``items``; returns those to ask again."""
        by_key = {p.key(i): (p, i) for p, i in items}
        batches = self.connection.batches(model)
        name = display_name(model, by_key)
        record = self.ledger.get(name)
        job = None
        if record is not None and record.job is not None:
            job = batches.get(record.job)
            self.notify(f"batch job {job.name} resumed ({len(by_key)} requests)")
        elif record is not None and (found := batches.find(name)) is not None:
            job = batches.get(found.name)  # a listed job carries no output: ask for all of it
            self.notify(f"batch job {job.name} adopted ({len(by_key)} requests)")
        if job is None:
            record = Record(name, model, sorted(by_key))
            self.ledger.put(record)  # before create: a run that dies now adopts the job later
            job = batches.submit(
                model, ((k, p.calls[i].request) for k, (p, i) in by_key.items()), name
            )
            self.notify(f"batch job {job.name}: {len(by_key)} requests to {model}")
        record = record or Record(name, model, sorted(by_key))
        record.job, record.state = job.name, job.state
        self.ledger.put(record)
        if self.settings.detach:
            for p, _ in items:
                if not p.future.done():
                    p.future.set_exception(Detached(f"waiting for batch job {job.name}"))
            return []
        job = self._until_ended(batches, job, record.created)
        if job.state != "JOB_STATE_SUCCEEDED":
            why = job.error or job.state.removeprefix("JOB_STATE_").lower()
            self.notify(f"batch job {job.name} {why}: its {len(by_key)} requests go interactive")
            self._interactive(items)
            self.ledger.remove(name)
            return []
        again = self._ingest(batches, job, by_key)
        self.ledger.remove(name)
        return again

    def _until_ended(self, batches: Any, job: Any, created: float) -> Any:
        while not job.ended and not self._stop.is_set():
            if time.time() - created > self.settings.deadline_seconds:
                self.notify(f"batch job {job.name} passed its deadline: cancelled")
                batches.cancel(job.name)
                return batches.get(job.name)
            self._sleep(self.settings.poll_seconds)
            job = batches.get(job.name)
        return job

    def _ingest(
        self, batches: Any, job: Any, by_key: dict[str, tuple[_Pending, int]]
    ) -> list[tuple[_Pending, int]]:
        again: list[tuple[_Pending, int]] = []
        seen = set()
        with tempfile.TemporaryDirectory(prefix="gemflow-batch-") as folder:
            for key, answer in batches.results(job, Path(folder)):
                if key not in by_key:
                    continue
                seen.add(key)
                p, index = by_key[key]
                if isinstance(answer, ApiResponse):
                    p.job.ctx.take(p.calls[index], answer, sent=1, price=BATCH_PRICE)
                    p.answers[index] = answer
                    if all(a is not None for a in p.answers):
                        self._complete(p)
                elif answer.retryable and p.tries.get(index, 0) < self.settings.retries:
                    p.tries[index] = p.tries.get(index, 0) + 1
                    p.job.ctx.api_calls += 1
                    again.append((p, index))
                elif not p.future.done():
                    p.job.ctx.api_calls += 1
                    status = (
                        "INVALID_ARGUMENT" if answer.code == 3 else f"batch error {answer.code}"
                    )
                    p.future.set_exception(ApiError(answer.message, status=status))
        for key in by_key.keys() - seen:  # asked, not answered: ask again
            p, index = by_key[key]
            if p.tries.get(index, 0) < self.settings.retries:
                p.tries[index] = p.tries.get(index, 0) + 1
                again.append((p, index))
            elif not p.future.done():
                p.future.set_exception(
                    ApiError(f"batch job {job.name} never answered this request")
                )
        return again

    def _interactive(self, items: list[tuple[_Pending, int]]) -> None:
        for p, index in items:
            if p.future.done():
                continue
            try:
                p.answers[index] = p.job.ctx.send(p.calls[index])
            except BaseException as exc:
                p.future.set_exception(exc)
                continue
            if all(a is not None for a in p.answers):
                self._complete(p)
