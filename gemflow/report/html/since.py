"""What changed since a git revision: the lock file as it was committed then, against the lock file
now, step by step; prompts word by word.

The lock file is the record of which prompt made which picture, and it is committed, so
``git show REV:./wf.lock`` is what the workflow made at REV.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from gemflow.cache.lockfile import LockEntry
from gemflow.errors import EXIT_USAGE, GemflowError

TEXT_FIELDS = ("prompt", "system")  # shown word by word; other parameters as old -> new
_WORD = re.compile(r"\s+|[^\s]+")

Segment = tuple[str, str]  # ("=", text), ("-", text removed) or ("+", text added)


class SinceError(GemflowError):
    """The revision or the lock file at it cannot be read."""

    exit_code = EXIT_USAGE


@dataclass
class Change:
    """What changed in one step, or in several instances of one matrix step alike."""

    steps: list[str]  # instance names (one, or every instance that changed the same way)
    new: bool = False  # not in the lock file at the revision
    texts: dict[str, list[Segment]] = field(default_factory=dict)  # prompt/system -> word diff
    params: list[tuple[str, Any, Any]] = field(default_factory=list)  # (name, old, new)


@dataclass
class Since:
    revision: str
    changes: list[Change]
    removed: list[str]  # steps the lock file had at the revision and has no more


def lock_at(revision: str, lock_path: Path) -> dict[str, LockEntry]:
    """The lock file's entries as committed at ``revision`` (none if it did not exist then)."""
    folder = lock_path.parent
    if _git(folder, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}") is None:
        raise SinceError(f"--since {revision}: not a commit of the git repository at {folder}")
    text = _git(folder, "show", f"{revision}:./{lock_path.name}")
    if text is None:
        return {}
    try:
        return {sid: LockEntry.from_json(e) for sid, e in json.loads(text)["steps"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SinceError(f"{lock_path.name} at {revision} is unreadable ({exc})") from exc


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise SinceError(f"--since needs git, which cannot be run ({exc.strerror})") from exc
    return done.stdout if done.returncode == 0 else None


def compare(
    revision: str, old: dict[str, LockEntry], now: dict[str, LockEntry], order: list[str]
) -> Since:
    """The changes from ``old`` to ``now`` of the steps in ``order`` (the workflow's, instances
    included); instances of one step that changed alike are one change."""
    found: dict[tuple[str, str], Change] = {}
    for name in order:
        entry = now.get(name)
        if entry is None:
            continue
        before = old.get(name)
        change = _change(name, before, entry)
        if change is None:
            continue
        same = (name.partition("[")[0], _signature(change))
        if same in found:
            found[same].steps.append(name)
        else:
            found[same] = change
    removed = [name for name in old if name not in now and name not in order]
    return Since(revision, list(found.values()), removed)


def _change(name: str, old: LockEntry | None, new: LockEntry) -> Change | None:
    if old is None:
        return Change([name], new=True)
    change = Change([name])
    for key in sorted(set(old.params) | set(new.params)):
        before, after = old.params.get(key), new.params.get(key)
        if before == after:
            continue
        if key in TEXT_FIELDS and isinstance(before, str | None) and isinstance(after, str | None):
            change.texts[key] = word_diff(before or "", after or "")
        else:
            change.params.append((key, before, after))
    return change if change.texts or change.params else None


def _signature(change: Change) -> str:
    return json.dumps([change.new, change.texts, change.params], default=str)


def word_diff(old: str, new: str) -> list[Segment]:
    """``old`` to ``new`` word by word (spaces and line breaks kept), neighbours merged."""
    a, b = _WORD.findall(old), _WORD.findall(new)
    segments: list[Segment] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            _add(segments, "=", "".join(a[i1:i2]))
            continue
        _add(segments, "-", "".join(a[i1:i2]))
        _add(segments, "+", "".join(b[j1:j2]))
    return segments


def _add(segments: list[Segment], op: str, text: str) -> None:
    if not text:
        return
    if segments and segments[-1][0] == op:
        segments[-1] = (op, segments[-1][1] + text)
    else:
        segments.append((op, text))
