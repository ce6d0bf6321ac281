"""The offline HTML report: one self-contained file showing every step of a workflow, what made it,
what it cost and how it stands now.

Built from the same data as the other reporters: a ``RunSummary`` (of the run just made, or of a
dry run, which decides each step's status and reason without sending anything), the lock file of
that run's service, and the store (model replies, thumbnails). ``collect`` gathers it, ``render``
writes the HTML; see docs/report.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from gemflow.cache.lockfile import LockFile
from gemflow.cache.store import ResultStore
from gemflow.engine.events import RunSummary
from gemflow.engine.outputs import EMULATED, is_emulated, load_lock, lock_path
from gemflow.errors import ConfigError
from gemflow.fileio import write_atomic
from gemflow.providers.base import Provider
from gemflow.providers.connection import Connection
from gemflow.workflow import Workflow

__all__ = ["default_path", "plan", "recorded_service", "write_report"]


def default_path(workflow: Workflow) -> Path:
    """``wf.report.html`` beside ``wf.yaml``."""
    return workflow.path.with_suffix(".report.html")


def write_report(
    workflow: Workflow,
    store: ResultStore,
    summary: RunSummary,
    path: Path | None = None,
    *,
    since: str | None = None,
    store_note: str | None = None,
) -> Path:
    """Write the report of ``summary`` (a run or a dry run of ``workflow`` on ``store``) to
    ``path`` (default: ``default_path``); ``since``: a git revision to show what changed since."""
    from gemflow.report.html.collect import collect
    from gemflow.report.html.render import render
    from gemflow.report.html.since import compare, lock_at

    path = path or default_path(workflow)
    lock = load_lock(workflow, summary.service)
    changes = None
    if since is not None:
        old = lock_at(since, lock.path)
        changes = compare(since, old, lock.entries, list(workflow.steps))
    page = collect(workflow, summary, lock, store, path, since=changes, store_note=store_note)
    write_atomic(path, render(page).encode("utf-8"))
    return path


def recorded_service(workflow: Workflow, *, emulator: bool = False) -> str | None:
    """The service whose results the lock file holds: the one most of its API steps record. The
    emulator's lock file (``wf.emulator.lock``) when ``emulator``, or when it is the only one."""
    main = workflow.lock_path
    emulated = emulator or (not main.is_file() and lock_path(workflow, EMULATED).is_file())
    lock = LockFile.load(lock_path(workflow, EMULATED) if emulated else main)
    steps = workflow.steps
    services = Counter(
        entry.params.get("service")
        for name, entry in lock.entries.items()
        if name in steps
        and steps[name].uses_api
        and is_emulated(entry.params.get("service")) == emulated
    )
    if not services:
        return EMULATED if emulated else None
    return services.most_common(1)[0][0]


def plan(workflow: Workflow, store: ResultStore, service: str | None) -> RunSummary:
    """A dry run of ``workflow`` judged against ``service``'s results: each step's status and
    reason, and the estimate of what would run. Nothing is sent, no key is needed."""
    from gemflow.engine.runner import RunOptions, run_workflow

    def never(api: str) -> Provider:
        raise ConfigError("a report sends nothing")  # a dry run makes no provider

    connection = Connection(service, never)
    return run_workflow(workflow, store, RunOptions(dry_run=True), connection=connection)
