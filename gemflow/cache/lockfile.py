"""The lock file: what each step's current output is, kept in git beside the workflow.

``quickstart.lock`` for ``quickstart.yaml``. JSON with sorted keys, one small entry per step and no
timestamps, so it changes only when a result changes and ``git diff`` shows which images a change
re-made. With the outputs committed too, a fresh clone with an empty cache runs with 0 API calls.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemflow.errors import ConfigError
from gemflow.fileio import write_atomic

LOCK_VERSION = 1
EMULATOR_LOCK = ".emulator.lock"  # x.emulator.lock beside x.lock: what runs on the emulator made


def lock_files(workflow: Path) -> tuple[Path, Path]:
    """The lock files a workflow file ``x.yaml`` can have: ``x.lock``, and ``x.emulator.lock``
    for its runs on the emulator."""
    return workflow.with_suffix(".lock"), workflow.with_suffix(EMULATOR_LOCK)


def workflow_for(lock: Path) -> Path:
    """The workflow a lock file belongs to: ``x.yaml`` (or ``x.yml``) beside ``x.lock`` or
    ``x.emulator.lock``."""
    stem = lock.name.removesuffix(EMULATOR_LOCK).removesuffix(".lock")
    yaml, yml = lock.parent / f"{stem}.yaml", lock.parent / f"{stem}.yml"
    return yml if yml.is_file() and not yaml.is_file() else yaml


@dataclass(frozen=True)
class LockEntry:
    key: str
    kind: str
    params: dict[str, Any]  # the recipe that went into the key (with "format")
    inputs: list[dict[str, str]]  # [{"ref": as written, "digest": ...}] in order
    output: str  # relative to the workflow's folder
    digest: str  # of the output file's bytes
    model_version: str | None = None
    tokens: dict[str, int] = field(default_factory=dict)
    attachments: dict[str, str] = field(default_factory=dict)  # name beside the output -> digest
    # Steps that draw anew (generate, edit): which re-roll made the output, and every result kept
    # for the step as it is now (``base``: its key before any re-roll), oldest first.
    reroll: int = 0
    base: str = ""
    takes: list[dict[str, Any]] = field(default_factory=list)  # {"reroll", "key", "digest"}
    refused: str = ""  # a step that expects a refusal: the reason it was refused (no output)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockEntry:
        """The entry ``data`` (parsed JSON, which the entry then owns) describes; ``TypeError``,
        ``KeyError`` or ``ValueError`` when it is not one."""
        get = data.get
        params, inputs, tokens = get("params") or {}, get("inputs") or [], get("tokens") or {}
        attachments, takes = get("attachments") or {}, get("takes") or []
        if not (
            type(params) is dict
            and type(inputs) is list
            and type(tokens) is dict
            and type(attachments) is dict
            and type(takes) is list
        ):
            raise TypeError("not a lock entry")
        for item in (*inputs, *takes):
            if type(item) is not dict:
                raise TypeError("not a lock entry")
        return cls(
            key=str(data["key"]),
            kind=str(data["kind"]),
            params=params,
            inputs=inputs,
            output=str(data["output"]),
            digest=str(data["digest"]),
            model_version=get("model_version"),
            tokens=tokens,
            attachments=attachments,
            reroll=int(get("reroll") or 0),
            base=str(get("base") or ""),
            takes=takes,
            refused=str(get("refused") or ""),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "kind": self.kind,
            "params": self.params,
            "inputs": self.inputs,
            "output": self.output,
            "digest": self.digest,
        }
        if self.model_version is not None:
            data["model_version"] = self.model_version
        if self.tokens:
            data["tokens"] = self.tokens
        if self.attachments:
            data["attachments"] = self.attachments
        if self.reroll:
            data["reroll"] = self.reroll
        if self.refused:
            data["refused"] = self.refused
        if len(self.takes) > 1:  # one take is just the output: nothing to go back to
            data["base"] = self.base
            data["takes"] = self.takes
        return data


class LockFile:
    """The lock file's entries. ``save`` writes only when an entry changed."""

    def __init__(
        self,
        path: Path,
        entries: dict[str, LockEntry],
        problem: str | None = None,
        signature: tuple[int, int, int] | None = None,
    ) -> None:
        self.path = path
        self.entries = entries
        self.problem = problem  # why an existing lock file could not be read, if it could not
        self.signature = signature  # (size, mtime_ns, inode) of the file as read, if it existed
        self._saved = dict(entries)

    @classmethod
    def load(cls, path: Path) -> LockFile:
        """Read ``path``: a missing file is an empty lock; entries that cannot be read (a merge
        conflict around some lines, say) are skipped and ``problem`` says which. A lock file of a
        newer gemflow is refused (``ConfigError``): rewriting it would lose what it records."""
        try:
            signature = _signature(path)
            if not stat.S_ISREG(os.stat(path).st_mode):
                raise ConfigError(f"{path.name} is not a regular file: move it away to run")
            text = _read(path)
        except FileNotFoundError:
            return cls(path, {})
        except OSError as exc:
            return cls(path, {}, problem=f"{path.name} is unreadable and was ignored ({exc})")
        try:
            data = json.loads(text)
            version, raw = data.get("version"), data["steps"]
            if not isinstance(raw, dict):
                raise TypeError("'steps' is not a mapping")
        except (ValueError, KeyError, TypeError, AttributeError):
            version, raw = _version_of(text), None
        if isinstance(version, int) and version > LOCK_VERSION:
            raise ConfigError(
                f"{path.name} was written by a newer gemflow (lock version {version}; this one "
                f"writes {LOCK_VERSION}): upgrade gemflow. The file was left as it is"
            )
        if raw is None:  # not JSON as a whole: read what can be read, line by line
            entries, skipped = _entries_by_line(text)
            if not entries and not skipped:
                reason = "not JSON, and no entry could be read"
                return cls(
                    path, {}, problem=f"{path.name} is unreadable and was ignored ({reason})"
                )
        else:
            entries, skipped = _entries(raw.items())
        problem = None
        if skipped:
            shown = ", ".join(skipped[:5]) + (" …" if len(skipped) > 5 else "")
            problem = (
                f"{path.name}: skipped {len(skipped)} unreadable entr"
                f"{'y' if len(skipped) == 1 else 'ies'} ({shown}); the rest was read"
            )
        return cls(path, entries, problem=problem, signature=signature)

    def changed_on_disk(self) -> bool:
        """Whether someone (another gemflow run, git) rewrote the file since it was read."""
        try:
            return _signature(self.path) != self.signature
        except FileNotFoundError:
            return self.signature is not None

    def render(self) -> str:
        """JSON with one line per step, sorted, so a diff or a merge sees one step at a time."""
        lines = [
            f"    {json.dumps(sid)}: {json.dumps(self.entries[sid].to_json(), sort_keys=True)}"
            for sid in sorted(self.entries)
        ]
        steps = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
        return f'{{\n  "steps": {steps},\n  "version": {LOCK_VERSION}\n}}\n'

    def save(self) -> bool:
        """Write the file if an entry changed; returns whether it did."""
        if self.entries == self._saved and self.path.exists():
            return False
        write_atomic(self.path, self.render().encode(), durable=True)
        self._saved = dict(self.entries)
        self.signature = _signature(self.path)
        return True


@contextlib.contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` across processes while a lock file in it is read,
    merged and written (two runs finishing together must not lose each other's entries)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


_ENTRY_LINE = re.compile(r'\s*("(?:[^"\\]|\\.)*")\s*:\s*(\{.*\})\s*,?\s*\Z')
_CONFLICT = ("<<<<<<<", "=======", ">>>>>>>", "|||||||")


def _read(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def _version_of(text: str) -> int | None:
    match = re.search(r'"version"\s*:\s*([0-9]+)', text)
    return int(match.group(1)) if match else None


def _entries(items: Iterable[tuple[Any, Any]]) -> tuple[dict[str, LockEntry], list[str]]:
    entries: dict[str, LockEntry] = {}
    skipped: list[str] = []
    for sid, raw in items:
        try:
            entries[str(sid)] = LockEntry.from_json(raw)
        except (ValueError, KeyError, TypeError, AttributeError):
            skipped.append(str(sid))
    return entries, skipped


def _entries_by_line(text: str) -> tuple[dict[str, LockEntry], list[str]]:
    """Entries of a lock file that is not valid JSON, one line each as ``render`` writes them. A
    step that appears twice (both sides of a merge conflict) is skipped: neither side is sure."""
    found: list[tuple[str, Any]] = []
    for line in text.splitlines():
        if line.startswith(_CONFLICT):
            continue
        match = _ENTRY_LINE.match(line)
        if not match:
            continue
        try:
            found.append((json.loads(match.group(1)), json.loads(match.group(2))))
        except ValueError:
            continue
    seen: dict[str, int] = {}
    for sid, _ in found:
        seen[sid] = seen.get(sid, 0) + 1
    twice = sorted(sid for sid, n in seen.items() if n > 1)
    entries, skipped = _entries((sid, raw) for sid, raw in found if seen[sid] == 1)
    return entries, sorted([*skipped, *twice])


def _signature(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino
