"""What may run next: the selected steps whose input steps have all finished, in workflow order.

The scheduler knows the graph and nothing of how a step runs; the runner decides each step it
hands out, and an executor (``gemflow.engine.executor``) runs the ones that must run.
"""

from __future__ import annotations

from collections import deque

from gemflow.workflow import Workflow


class Scheduler:
    def __init__(self, workflow: Workflow, order: list[str]) -> None:
        """``order``: the selected steps, each after the steps it needs (``graph.ordered``)."""
        steps = workflow.steps
        self._waiting = {sid: {r.step for r in steps[sid].refs if r.step} for sid in order}
        self._dependents: dict[str, list[str]] = {sid: [] for sid in order}
        for sid, needs in self._waiting.items():
            for need in needs:
                self._dependents[need].append(sid)
        self._ready = deque(sid for sid in order if not self._waiting[sid])

    def __bool__(self) -> bool:
        """Whether a step is ready to start now."""
        return bool(self._ready)

    def next(self) -> str:
        """The next ready step (call only when the scheduler is true)."""
        return self._ready.popleft()

    def finished(self, sid: str) -> None:
        """``sid`` is done, one way or another: the steps that waited only for it become ready."""
        for child in self._dependents[sid]:
            waiting = self._waiting[child]
            waiting.discard(sid)
            if not waiting:
                self._ready.append(child)
