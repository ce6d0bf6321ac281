"""How steps run: the thread-pool executor, at most ``jobs`` at once.

The runner submits work it has decided must run and collects what finished; it never waits on a
pool queue, so steps start in the order the scheduler hands them out. Another executor (a batch
executor, say) keeps the same shape: submit, wait for some, interrupt, shut down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from typing import Generic, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


class ThreadExecutor(Generic[Job, Result]):
    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)
        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="step")
        self._running: dict[Future[Result], Job] = {}

    def __bool__(self) -> bool:
        """Whether anything is running."""
        return bool(self._running)

    def has_room(self) -> bool:
        return len(self._running) < self.jobs

    def submit(self, job: Job, work: Callable[[Job], Result]) -> None:
        self._running[self._pool.submit(work, job)] = job

    def wait(self) -> list[tuple[Job, Future[Result]]]:
        """Wait until at least one job finishes; return every finished one."""
        done, _ = wait(self._running, return_when=FIRST_COMPLETED)
        return [(self._running.pop(future), future) for future in done]

    def interrupt(self) -> list[Job]:
        """Cancel what has not started; return the jobs still running (their work is paid for)."""
        for future in list(self._running):
            if future.cancel():
                del self._running[future]
        return list(self._running.values())

    def finishing(self, timeout: float | None = None) -> Iterator[tuple[Job, Future[Result]]]:
        """Each running job as it finishes (``TimeoutError`` after ``timeout`` seconds)."""
        for future in as_completed(list(self._running), timeout=timeout):
            yield self._running.pop(future), future

    def shutdown(self, *, abandon: bool = False) -> None:
        """Stop the pool; ``abandon``: do not wait for running work."""
        self._pool.shutdown(wait=not abandon, cancel_futures=True)
