"""What the runner tells the world. It never prints: reporters receive these events."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from gemflow.engine.reasons import Reason, describe
from gemflow.providers.base import JOB_ENDED, service_name


class Status(StrEnum):
    CACHED = "cached"  # up to date: the output on disk is the stored result for the current key
    RESTORE = (
        "restore"  # a stored result exists for the key; the output file was missing or differed
    )
    RUN = "run"  # nothing stored for the key: the step runs (an API step calls the API)
    BLOCKED = "blocked"  # an input step failed, so this step could not run
    FAILED = "failed"  # the step ran and failed
    PENDING = "pending"  # its requests are in a batch job that a later run collects (--detach)


@dataclass
class StepReport:
    id: str
    kind: str
    status: Status
    reason: Reason  # why: a code and values; ``describe`` words it
    output: str
    api_calls: int = 0
    tokens: dict[str, int] = field(default_factory=dict)
    usd: float = 0.0  # spent (a run) or estimated (a dry run)
    seconds: float = 0.0
    error: str | None = None
    key: str | None = None
    result: dict | None = None  # a kind's own summary, e.g. a probe's verdict

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": str(self.status),
            "reason": describe(self.reason),
            "why": self.reason.to_json(),
            "api_calls": self.api_calls,
            "output": self.output,
            "tokens": self.tokens,
            "usd": round(self.usd, 6),
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "key": self.key,
            "result": self.result,
        }


@dataclass
class BatchJobReport:
    """A Batch API job of the run (``--batch``), or one a dry run found recorded and pending."""

    display_name: str  # gemflow-<model>-<hash of its requests' keys>: unique, set before creation
    model: str
    requests: int
    state: str  # JOB_STATE_... as last seen; "RECORDED": written down, not yet created or named
    name: str | None = None  # batches/..., once created
    steps: list[str] = field(default_factory=list)  # the step ids whose requests it holds
    submitted: float | None = None  # seconds since the epoch

    @property
    def pending(self) -> bool:
        return self.state not in JOB_ENDED

    def to_json(self) -> dict:
        submitted = None
        if self.submitted is not None:
            submitted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.submitted))
        return {
            "name": self.name,
            "display_name": self.display_name,
            "model": self.model,
            "requests": self.requests,
            "state": self.state,
            "pending": self.pending,
            "steps": self.steps,
            "submitted": submitted,
        }


@dataclass
class RunSummary:
    workflow: str
    dry_run: bool
    service: str | None = None  # None: Google's API; "emulator" (nothing billed); or a base URL
    steps: list[StepReport] = field(default_factory=list)
    interrupted: bool = False
    batch_jobs: dict[str, BatchJobReport] = field(default_factory=dict)  # by display name

    @property
    def pending_jobs(self) -> list[BatchJobReport]:
        return [job for job in self.batch_jobs.values() if job.pending]

    @property
    def ok(self) -> bool:
        return not self.interrupted and not any(
            s.status in (Status.FAILED, Status.BLOCKED) for s in self.steps
        )

    @property
    def api_calls(self) -> int:
        return sum(s.api_calls for s in self.steps)

    @property
    def usd(self) -> float:
        return sum(s.usd for s in self.steps)

    def tokens(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for step in self.steps:
            for name, count in step.tokens.items():
                total[name] = total.get(name, 0) + count
        return total

    def counts(self) -> dict[str, int]:
        counts = {str(status): 0 for status in Status}
        for step in self.steps:
            counts[str(step.status)] += 1
        return counts

    def to_json(self) -> dict:
        return {
            "workflow": self.workflow,
            "dry_run": self.dry_run,
            "service": service_name(self.service),
            "ok": self.ok,
            "interrupted": self.interrupted,
            "steps": [s.to_json() for s in self.steps],
            "batch_jobs": [job.to_json() for job in self.batch_jobs.values()],
            "totals": {
                "api_calls": self.api_calls,
                "tokens": self.tokens(),
                "usd": round(self.usd, 6),
                "steps": self.counts(),
                "batch_jobs_pending": len(self.pending_jobs),
            },
        }


@dataclass(frozen=True)
class RunStarted:
    workflow: str
    steps: tuple[str, ...]  # selected, in order
    api_steps: int
    dry_run: bool
    jobs: int
    service: str | None = None  # None: Google's API; "emulator"; or a base URL


@dataclass(frozen=True)
class StepStarted:
    id: str
    kind: str
    reason: Reason
    uses_api: bool


@dataclass(frozen=True)
class StepFinished:
    report: StepReport


@dataclass(frozen=True)
class Notice:
    """Something worth saying that is not a step's result: a warning, a corrupt cache entry."""

    message: str
    level: str = "warning"


@dataclass(frozen=True)
class BatchJobUpdated:
    """A batch job was submitted, resumed, adopted, changed state or ended (``--batch``); or a
    dry run found it recorded, with steps of the run waiting on it."""

    job: BatchJobReport


@dataclass(frozen=True)
class RunFinished:
    summary: RunSummary


Event = RunStarted | StepStarted | StepFinished | Notice | BatchJobUpdated | RunFinished
