"""Whose file is this? Before a run writes over an output that is already on disk and is not the
one it made last time, it finds out whose it is:

- another workflow's (a lock file beside this one records the same path): the step fails, saying
  so, instead of the two workflows replacing each other's picture on every run;
- the real service's, when this run is on the emulator: the step fails unless forced, so a try on
  the emulator never replaces a picture that was paid for;
- anyone else's (a hand edit, a file that was there first): it is kept as ``<name>.orig<ext>``,
  and the run says so.

What is not a file at all (a FIFO, a folder, a socket, a device) is never written over: the step
fails before it runs, saying what is in the way. Replacing a FIFO would cut off whoever reads it.
"""

from __future__ import annotations

import functools
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

from gemflow.cache.lockfile import EMULATOR_LOCK, LockEntry, LockFile
from gemflow.fileio import DigestMemo
from gemflow.workflow import Step, Workflow

EMULATED = "emulator"  # a service id that starts with this is the emulator's


def is_emulated(service: str | None) -> bool:
    return (service or "").startswith(EMULATED)


def lock_path(workflow: Workflow, service: str | None) -> Path:
    """The lock file a run on ``service`` keeps: the emulator's entries never replace the real
    ones (``wf.emulator.lock`` beside ``wf.lock``)."""
    main = workflow.lock_path
    return main.with_suffix(EMULATOR_LOCK) if is_emulated(service) else main


def load_lock(workflow: Workflow, service: str | None) -> LockFile:
    """The run's lock file. An emulator lock not written yet starts from the main lock's entries
    that the emulator made, and its local steps' (older gemflow kept them all there)."""
    lock = LockFile.load(lock_path(workflow, service))
    if is_emulated(service) and lock.signature is None and not lock.entries:
        steps = workflow.steps
        main = LockFile.load(workflow.lock_path)
        lock.entries = {
            sid: e
            for sid, e in main.entries.items()
            if e.params.get("service") == service or (sid in steps and not steps[sid].uses_api)
        }
    return lock


@dataclass(frozen=True)
class Verdict:
    error: str | None = None  # the step must not write its output
    kept: Path | None = None  # the file that was there, moved aside


class OutputGuard:
    def __init__(self, workflow: Workflow, memo: DigestMemo, service: str | None) -> None:
        self.workflow = workflow
        self.memo = memo
        self.service = service

    def in_the_way(self, step: Step, entry: LockEntry | None) -> str | None:
        """Why ``step`` cannot write its output: something that is not a file is where its
        output, or an attachment the lock records, goes. Reads nothing, moves nothing."""
        folder, shown = step.output.parent, posixpath.dirname(step.output_rel)
        places = [(step.output, step.output_rel)]
        for name in entry.attachments if entry is not None else ():
            places.append((folder / name, posixpath.join(shown, name)))
        for path, rel in places:
            what = not_a_file(path)
            if what is not None:
                return (
                    f"{rel} is {what}, not a file: gemflow does not write over it; move it "
                    "away, or give the step another output"
                )
        return None

    def check(self, step: Step, entry: LockEntry | None, *, forced: bool) -> Verdict:
        """May ``step`` write its output? Moves a stranger's file aside first."""
        try:
            on_disk = self.memo.digest(step.output)
        except OSError:
            return Verdict()  # not a file since in_the_way looked: writing it fails, saying why
        if on_disk is None or (entry is not None and on_disk == entry.digest):
            return Verdict()
        owner = self.others.get(step.output_rel)
        if owner is not None and owner[1] == on_disk:
            return Verdict(
                f"{step.output_rel} is also the output of step '{owner[0]}' of another workflow "
                f"here ({owner[2]}): give one of them an 'output' of its own"
            )
        real = self.real.get(step.id) if step.uses_api else None
        if real is not None and real.digest == on_disk and not forced:
            maker = real.params.get("service") or "Google's API"
            return Verdict(
                f"{step.output_rel} was made by {maker} ({self.workflow.lock_path.name}): the "
                "emulator does not replace it; pass --force to, or give the step another output"
            )
        kept = _aside(step.output)
        os.replace(step.output, kept)
        self.memo.forget(step.output)
        return Verdict(kept=kept)

    @functools.cached_property
    def real(self) -> dict[str, LockEntry]:
        """The main lock's entries, when this run is on the emulator."""
        if not is_emulated(self.service):
            return {}
        return LockFile.load(self.workflow.lock_path).entries

    @functools.cached_property
    def others(self) -> dict[str, tuple[str, str, str]]:
        """Outputs other workflows in this folder record: path -> (step, digest, lock file)."""
        found: dict[str, tuple[str, str, str]] = {}
        own = {self.workflow.lock_path, self.workflow.lock_path.with_suffix(EMULATOR_LOCK)}
        for path in sorted(self.workflow.root.glob("*.lock")):
            if path in own or path.name.endswith(EMULATOR_LOCK):
                continue
            for sid, entry in LockFile.load(path).entries.items():
                found.setdefault(entry.output, (sid, entry.digest, path.name))
        return found


def not_a_file(path: Path) -> str | None:
    """What is at ``path`` when it is there and is not a regular file: "a FIFO", "a folder"..."""
    try:
        mode = path.stat().st_mode
    except OSError:  # missing, or out of reach (writing it then says why)
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _aside(path: Path) -> Path:
    """``out/a.orig.png``, or ``out/a.orig-2.png`` if that is taken."""
    for n in range(1, 1000):
        tag = ".orig" if n == 1 else f".orig-{n}"
        candidate = path.with_name(f"{path.stem}{tag}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(path)
