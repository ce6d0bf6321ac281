"""Takes: every result kept for a step that draws anew (its variants' re-rolls and what ``--force``
replaced), listed from the lock file, and the choice of which one is the step's output.

A take is a result in the store. The lock entry says which re-roll made the output and keeps the
list of takes for the step as it is now, so ``gemflow pick`` needs no API call, and reverting the
lock file in git brings the earlier picture back for free.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gemflow.cache.lockfile import LockEntry, LockFile
from gemflow.cache.store import ResultStore
from gemflow.errors import GemflowError
from gemflow.fileio import write_atomic
from gemflow.workflow import Workflow

ARCHIVED = "~"  # a take that --force replaced is kept under "<key>~<digest prefix>"


def archived_key(key: str, digest: str) -> str:
    """Where a result that ``--force`` replaced is kept."""
    return f"{key}{ARCHIVED}{digest.removeprefix('sha256:')[:16]}"


class TakeError(GemflowError):
    """A take that does not exist, or a step without takes."""


@dataclass(frozen=True)
class Take:
    number: int  # from 1, oldest first
    reroll: int
    key: str
    digest: str
    current: bool  # the step's output now
    stored: bool  # the picture is in the store (else only the lock file remembers it)


def takes(entry: LockEntry, store: ResultStore) -> list[Take]:
    """The takes of the step whose lock entry is ``entry``, oldest first."""
    kept = entry.takes or [{"reroll": entry.reroll, "key": entry.key, "digest": entry.digest}]
    return [
        Take(
            number=n,
            reroll=int(t["reroll"]),
            key=str(t["key"]),
            digest=str(t["digest"]),
            current=t["key"] == entry.key,
            stored=store.meta(str(t["key"])) is not None,
        )
        for n, t in enumerate(kept, start=1)
    ]


def entry_for(lock: LockFile, step: str) -> LockEntry:
    if step not in lock.entries:
        raise TakeError(f"step '{step}' has not run yet: nothing to list (run it first)")
    return lock.entries[step]


def pick(workflow: Workflow, lock: LockFile, store: ResultStore, step: str, number: int) -> Take:
    """Make take ``number`` the step's output: its files are written and the lock file saved, so
    the next run keeps it (and remakes only the steps that use it)."""
    entry = entry_for(lock, step)
    found = takes(entry, store)
    if not 1 <= number <= len(found):
        raise TakeError(f"step '{step}' has takes 1 to {len(found)}, not {number}")
    chosen = found[number - 1]
    if not chosen.stored:
        raise TakeError(f"take {number} of '{step}' is no longer in the cache")
    kept = [dict(t) for t in (entry.takes or [])]
    if ARCHIVED in chosen.key:  # --force replaced it: put it back under its own key
        kept = _swap_back(store, chosen, kept)
    key = chosen.key.split(ARCHIVED)[0]
    files = store.files(key)
    if files is None:
        raise TakeError(f"take {number} of '{step}' is no longer in the cache")
    output = workflow.steps[step].output
    write_atomic(output, files[0])
    for name, data in files[1].items():
        write_atomic(output.parent / name, data)
    lock.entries[step] = dataclasses.replace(
        entry, reroll=chosen.reroll, key=key, digest=chosen.digest, takes=kept
    )
    lock.save()
    return chosen


def _swap_back(store: ResultStore, chosen: Take, kept: list[dict]) -> list[dict]:
    """Store the archived take ``chosen`` under its key again, archiving what is there now."""
    key = chosen.key.split(ARCHIVED)[0]
    archived = store.files(chosen.key)
    archived_meta = store.meta(chosen.key)
    if archived is None or archived_meta is None:
        raise TakeError(f"take {chosen.number} is no longer in the cache")
    now, now_meta = store.files(key), store.meta(key)
    if now is not None and now_meta is not None:
        moved = archived_key(key, now_meta["digest"])
        store.put(moved, now[0], now_meta, now[1])
        for take in kept:
            if take["key"] == key:
                take["key"] = moved
    store.put(key, archived[0], archived_meta, archived[1])
    for take in kept:
        if take["key"] == chosen.key:
            take["key"] = key
    return kept
