"""The lock file: what each step's current output is, kept in git beside the workflow.

``quickstart.lock`` for ``quickstart.yaml``. JSON with sorted keys, one small entry per step and no
timestamps, so it changes only when a result changes and ``git diff`` shows which images a change
re-made. With the outputs committed too, a fresh clone with an empty cache runs with 0 API calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemflow.fileio import write_atomic

LOCK_VERSION = 1


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
        return cls(
            key=str(data["key"]),
            kind=str(data["kind"]),
            params=dict(data.get("params") or {}),
            inputs=[dict(i) for i in data.get("inputs") or []],
            output=str(data["output"]),
            digest=str(data["digest"]),
            model_version=data.get("model_version"),
            tokens=dict(data.get("tokens") or {}),
            attachments=dict(data.get("attachments") or {}),
            reroll=int(data.get("reroll") or 0),
            base=str(data.get("base") or ""),
            takes=[dict(t) for t in data.get("takes") or []],
            refused=str(data.get("refused") or ""),
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
        """Read ``path``; a missing file is an empty lock, an unreadable one is reported and ignored."""
        try:
            signature = _signature(path)
            data = json.loads(path.read_bytes())
            if data.get("version") != LOCK_VERSION:
                raise ValueError(f"unsupported lock version {data.get('version')!r}")
            entries = {sid: LockEntry.from_json(e) for sid, e in data["steps"].items()}
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return cls(path, {}, problem=f"{path.name} is unreadable and was ignored ({exc})")
        return cls(path, entries, signature=signature)

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


def _signature(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, stat.st_ino
