"""Collect the store's garbage: the entries that no lock file refers to.

The store keeps every result ever made, so that reverting a change costs nothing; ``gemflow cache
gc`` gives up that promise for what no lock file (in the folders it is given) refers to any more.
What a lock file refers to, and so what is kept:

- each step's key, the keys of its takes (its re-rolls, and what ``--force`` replaced) and its key
  before any re-roll;
- ``refusal/<key>`` for a key kept (an expected refusal, which the lock file records too);
- ``call/...``, a single answer of a step that makes several calls (a probe), when one of the steps
  it was made or used for is kept. Calls stored before gemflow recorded their steps cannot be tied
  to a step: they are kept unless ``everything``;
- ``thumb/<digest>`` (a picture's thumbnail) for a digest that a kept lock entry records: an
  output, an attachment, an input or a take;
- any entry gemflow does not know.

What goes: the results of earlier versions of steps (before a prompt changed, say), of steps and
workflows since removed, and the refusals and calls of steps whose last run failed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gemflow.cache.local import Store
from gemflow.cache.lockfile import LockFile, lock_files, workflow_for
from gemflow.engine.refusals import PREFIX as REFUSAL
from gemflow.errors import EXIT_USAGE, GemflowError

CALL = "call/"
THUMB = "thumb/"
_SKIPPED = {"node_modules", "__pycache__"}  # never hold a workflow's lock file
_HEX = set("0123456789abcdef")


class GcError(GemflowError):
    """gc cannot know what is needed: nothing is removed."""

    exit_code = EXIT_USAGE


@dataclass
class Plan:
    locks: list[Path]
    entries: int  # in the store
    remove: list[str] = field(default_factory=list)
    bytes: int = 0
    untied: int = 0  # calls kept because no step is recorded for them (``everything`` removes them)


def find_locks(places: Sequence[Path]) -> list[Path]:
    """The lock files in ``places``: each folder searched recursively for ``x.lock`` (and
    ``x.emulator.lock``) beside ``x.yaml`` (or ``x.yml``); a workflow file stands for its lock
    files."""
    found: set[Path] = set()
    for place in places:
        if place.is_file():
            for lock in lock_files(place):
                if lock.is_file() and _has_workflow(lock):
                    found.add(lock.absolute())
            continue
        if not place.is_dir():
            raise GcError(f"{place}: no such folder")
        for folder, dirs, files in os.walk(place):
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".")
                and d not in _SKIPPED
                and not os.path.exists(os.path.join(folder, d, "cache.db"))  # a store
            )
            for name in files:
                lock = Path(folder, name)
                if name.endswith(".lock") and _has_workflow(lock):
                    found.add(lock.absolute())
    return sorted(found)


def plan(store: Store, locks: Sequence[Path], *, everything: bool = False) -> Plan:
    """What gc would remove from ``store`` given ``locks``. Raises ``GcError`` when there is no
    lock file, or one cannot be read (what it needs is then unknown)."""
    if not locks:
        raise GcError(
            "no lock file found: nothing removed (gc keeps what lock files refer to; run it "
            "in the folder of your workflows, or name their folders)"
        )
    keys, digests = referenced(_read(locks))
    entries = store.keys()
    result = Plan(list(locks), len(entries))
    for key in entries:
        if key.startswith(CALL):
            steps = (store.meta(key) or {}).get("steps")
            if steps is None:
                needed = not everything
                result.untied += needed
            else:
                needed = any(step in keys for step in steps)
        elif key.startswith(REFUSAL):
            needed = key.removeprefix(REFUSAL) in keys
        elif key.startswith(THUMB):
            needed = _thumb_needed(key.removeprefix(THUMB), digests)
        elif key.startswith("sha256:"):
            needed = key in keys
        else:
            needed = True  # not ours to judge
        if not needed:
            result.remove.append(key)
            result.bytes += store.size(key)
    return result


def collect(store: Store, chosen: Plan) -> None:
    for key in chosen.remove:
        store.delete(key)


def referenced(locks: Iterable[LockFile]) -> tuple[set[str], set[str]]:
    """The store keys and the content digests (hex) that ``locks`` refer to."""
    keys: set[str] = set()
    digests: set[str] = set()
    for lock in locks:
        for entry in lock.entries.values():
            keys.update(k for k in (entry.key, entry.base) if k)
            keys.update(str(take.get("key")) for take in entry.takes)
            found = [entry.digest, *entry.attachments.values()]
            found += [str(item.get("digest", "")) for item in entry.inputs]
            found += [str(take.get("digest", "")) for take in entry.takes]
            digests.update(d.removeprefix("sha256:") for d in found if d)
    return keys, digests


def _read(paths: Sequence[Path]) -> list[LockFile]:
    locks = []
    for path in paths:
        lock = LockFile.load(path)
        if lock.problem:
            raise GcError(f"{lock.problem}: nothing removed (gc cannot tell what it needs)")
        locks.append(lock)
    return locks


def _thumb_needed(rest: str, digests: set[str]) -> bool:
    """Whether ``thumb/<rest>`` is of a picture a lock file records; a name that does not start
    with a digest is kept (not ours to judge)."""
    text = rest.removeprefix("sha256:")
    hexa = ""
    for char in text:
        if char not in _HEX:
            break
        hexa += char
    if len(hexa) < 12:
        return True
    if len(hexa) >= 64:
        return hexa[:64] in digests
    return any(d.startswith(hexa) for d in digests)


def _has_workflow(lock: Path) -> bool:
    return workflow_for(lock).is_file()
