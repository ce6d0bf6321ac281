"""What each step cost, saved or would cost, in USD by gemflow's model table.

A step that ran costs what the run counted (``StepReport.usd``); one a dry run would run costs the
dry run's estimate; a cache hit saved what its result would cost to make again: its recorded tokens
priced by the table (``gemflow.views.provenance.usd``, as ``gemflow show`` prices it), or, for a
kind whose tokens mix models (a probe), the kind's estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from gemflow.cache.lockfile import LockEntry
from gemflow.engine.events import Status, StepReport
from gemflow.views.provenance import usd
from gemflow.workflow import Step

SPENT, SAVED, TO_RUN = "spent", "saved", "to run"


@dataclass(frozen=True)
class Cost:
    usd: float
    how: str  # SPENT, SAVED or TO_RUN
    estimated: bool = False  # from the table's estimate, not from the tokens used

    def words(self) -> str:
        return f"{self.how} {'~' if self.estimated else ''}${self.usd:.3f}"


def price(step: Step, entry: LockEntry) -> tuple[float, bool] | None:
    """What the result ``entry`` records costs to make again, and whether that is an estimate;
    None for a step that sends nothing or a model the table does not know."""
    if not step.uses_api:
        return None
    exact = usd(entry)
    if exact is not None:
        return exact, False
    guess = step.kind.estimate(step).usd
    return (guess, True) if guess else None


def cost(
    step: Step, report: StepReport | None, entry: LockEntry | None, *, dry_run: bool
) -> Cost | None:
    """The money line of one step, from its report in this run (or dry run) and its lock entry."""
    if report is None or not step.uses_api:
        return None
    if report.status is Status.RUN and dry_run:
        return Cost(report.usd, TO_RUN, estimated=True)
    if report.status is Status.PENDING and report.usd:  # in a batch job, which bills it
        return Cost(report.usd, TO_RUN, estimated=True)
    if report.status in (Status.RUN, Status.FAILED) and report.api_calls:
        return Cost(report.usd, SPENT)
    if report.status in (Status.CACHED, Status.RESTORE) and entry is not None:
        priced = price(step, entry)
        return None if priced is None else Cost(priced[0], SAVED, priced[1])
    return None
