"""A run that had nothing to do leaves a stamp; the same command, while nothing it depends on has
changed, replays that run's report from the stamp without loading the workflow, the lock file or
the store: what ``make`` does with mtimes, done with gemflow's own evidence.

A stamp is written only after a run in which every selected step was up to date (no step ran,
was restored, failed or waits for a batch job; no notice but the workflow's own warnings), and
only for a plain run: no ``--force``, ``--reroll``, ``--report``, batch mode or team cache. It
holds what that run reported and, to prove it still holds:

- the command's context (``Context``): the workflow's path, the current folder, the targets and
  every option that can change what a run decides or reports (the endpoint, the cache folder,
  a dry run...), which names the stamp file;
- the plan's key and the disk's answers to the loader (``gemflow.workflow.plan``): the workflow
  file's bytes, gemflow's own files, the included prompt files, folders and links;
- the (size, mtime, inode, ctime) of every file the run's decisions read: each output and
  attachment, each input file, the lock file; and of the store's ``changes`` file, rewritten
  whenever a result is removed or replaced (a result removed must not be reported as stored),
  with its database's inode (a store made anew). Adding results changes no decision of a run
  that found all of its own.

Any difference, and the run is done as usual (which may write a new stamp). A stamp is JSON, so a
planted one can at worst report a false "up to date", as a hand-edited lock file could; it can
never run code or pay for anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gemflow.engine.events import (
    Event,
    Notice,
    RunFinished,
    RunStarted,
    RunSummary,
    Status,
    StepFinished,
    StepReport,
)
from gemflow.engine.reasons import Reason
from gemflow.errors import GemflowError
from gemflow.workflow import Workflow
from gemflow.workflow.disk import read_regular_file, signature, still_true

STAMP_FORMAT = 1
MAX_STAMP_BYTES = 1 << 30
KEEP_STAMPS = 32  # per cache folder, the most recent: one per command line people repeat


@dataclass(frozen=True)
class Context:
    """What a command asks for, as far as it can change what a run decides or reports."""

    workflow: str  # absolute
    targets: tuple[str, ...]
    dry_run: bool
    jobs: int
    options: tuple[tuple[str, Any], ...]  # the rest, named: endpoint, cache, retries...

    def digest(self) -> str:
        about = {"format": STAMP_FORMAT, "cwd": os.getcwd(), **asdict(self)}
        return hashlib.sha256(json.dumps(about, sort_keys=True).encode()).hexdigest()


class Recorder:
    """A reporter that keeps what a run said, to stamp it if the run turns out to be a no-op."""

    def __init__(self) -> None:
        self.started: RunStarted | None = None
        self.notices: list[str] = []
        self.reports: list[StepReport] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.started = event
        elif isinstance(event, Notice):
            self.notices.append(event.message)
        elif isinstance(event, StepFinished):
            self.reports.append(event.report)


def stamp_path(folder: Path, context: Context) -> Path:
    return folder / f"{context.digest()[:32]}.stamp"


def write_stamp(path: Path, workflow: Workflow, summary: RunSummary, recorder: Recorder) -> bool:
    """Stamp a run of ``workflow`` that had nothing to do, with what its decisions read; returns
    whether it did (a run that did anything, or said anything but the workflow's warnings, is not
    stamped; nor one with a team cache, or a cache that cannot be written)."""
    started = recorder.started
    warnings = [str(warning) for warning in workflow.warnings]
    if (
        started is None
        or workflow.source is None
        or workflow.settings.get("remote") not in (None, "none")
        or not summary.ok
        or any(report.reason.code != "up-to-date" for report in summary.steps)
        or recorder.notices != warnings
    ):
        return False
    try:
        files, identities = _evidence(workflow, summary, store_folder=path.parent.parent)
        seen = {str(file): list(signature(os.stat(file))) for file in files}
        same = {str(file): list(_identity(os.stat(file))) for file in identities}
    except (GemflowError, OSError):  # an output that is not there, a read-only cache...
        return False
    stamp = {
        "format": STAMP_FORMAT,
        "plan": {"key": workflow.source[0], "seen": workflow.source[1]},
        "files": seen,
        "identities": same,
        "started": {
            "workflow": started.workflow,
            "steps": list(started.steps),
            "api_steps": started.api_steps,
            "jobs": started.jobs,
            "service": started.service,
        },
        "summary": {"workflow": summary.workflow, "service": summary.service},
        "warnings": warnings,
        "reports": [_report_json(report) for report in recorder.reports],
    }
    from gemflow.fileio import write_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(stamp, separators=(",", ":")).encode())
    except OSError:
        return False  # a full cache: the next run is done as usual
    _prune(path.parent)
    return True


def _prune(folder: Path) -> None:
    """Keep the ``KEEP_STAMPS`` most recent stamps in ``folder``: one is written for each command
    line (targets, options) that found nothing to do, and most are never typed again."""
    try:
        stamps = sorted(folder.glob("*.stamp"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in stamps[KEEP_STAMPS:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # another run pruned them first


def _evidence(
    workflow: Workflow, summary: RunSummary, *, store_folder: Path
) -> tuple[list[Path], list[Path]]:
    """The files a run's decisions read, watched whole; and those watched by identity only."""
    from gemflow.cache.lockfile import LockFile
    from gemflow.engine.outputs import lock_path

    lock = lock_path(workflow, summary.service)
    entries = LockFile.load(lock).entries
    changes, database = store_files(store_folder)
    files = [lock, changes]
    for report in summary.steps:
        step = workflow.steps[report.id]
        files.append(step.output)
        attached = entries[report.id].attachments if report.id in entries else {}
        files.extend(step.output.parent / name for name in attached)
        files.extend(ref.path for ref in step.refs if ref.path is not None)
    return files, [database]


def replay(
    path: Path,
    workflow: Path,
    *,
    allow_outside: bool,
    dry_run: bool,
    emit: Callable[[Event], None],
) -> RunSummary | None:
    """The stamped run's report, emitted again, if the stamp at ``path`` still holds for the
    ``workflow`` file as it is now; else None (and nothing emitted)."""
    from gemflow.workflow.plan import current_key

    try:
        stamp = json.loads(read_regular_file(path, MAX_STAMP_BYTES)[0])
        if stamp["format"] != STAMP_FORMAT:
            return None
        if stamp["plan"]["key"] != current_key(workflow, allow_outside):
            return None
        for file, recorded in stamp["files"].items():
            if list(signature(os.stat(file))) != recorded:
                return None
        for file, recorded in stamp["identities"].items():
            if list(_identity(os.stat(file))) != recorded:
                return None
        if not still_true(stamp["plan"]["seen"]):
            return None
        started = stamp["started"]
        reports = [_report(row) for row in stamp["reports"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    emit(RunStarted(dry_run=dry_run, **{**started, "steps": tuple(started["steps"])}))
    for warning in stamp["warnings"]:
        emit(Notice(warning))
    summary = RunSummary(dry_run=dry_run, **stamp["summary"])
    for report in reports:
        summary.steps.append(report)
        emit(StepFinished(report))
    emit(RunFinished(summary))
    return summary


def store_files(folder: Path) -> tuple[Path, Path]:
    """The files that change when the store at ``folder`` loses or replaces a result: its
    ``changes`` file (``gemflow.cache.local``; written here the first time a stamp needs it) and
    its database (watched by inode only: every open of the store rewrites it)."""
    from gemflow.cache.local import CHANGES

    changes = folder / CHANGES
    if not changes.exists():
        from gemflow.fileio import write_atomic

        write_atomic(changes, os.urandom(8).hex().encode())
    return changes, folder / "cache.db"


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _report_json(report: StepReport) -> dict[str, Any]:
    return {
        "id": report.id,
        "kind": report.kind,
        "status": str(report.status),
        "why": {"code": report.reason.code, "values": dict(report.reason.values)},
        "output": report.output,
        "api_calls": report.api_calls,
        "tokens": report.tokens,
        "usd": report.usd,
        "seconds": report.seconds,
        "error": report.error,
        "key": report.key,
        "result": report.result,
    }


def _report(row: dict[str, Any]) -> StepReport:
    why = row.pop("why")
    return StepReport(
        status=Status(row.pop("status")), reason=Reason(why["code"], why["values"]), **row
    )
