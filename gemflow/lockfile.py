"""The lock file: what each step's current output is, kept in git beside the workflow.

``quickstart.lock`` for ``quickstart.yaml``. JSON with sorted keys, one small entry per step and no
timestamps, so it changes only when a result changes and ``git diff`` shows which images a change
re-made. With the outputs committed too, a fresh clone with an empty cache runs with 0 API calls.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["model_version"] is None:
            del data["model_version"]
        for optional in ("tokens", "attachments"):
            if not data[optional]:
                del data[optional]
        return data


class LockFile:
    def __init__(self, path: Path, entries: dict[str, LockEntry], problem: str | None = None):
        self.path = path
        self.entries = entries
        self.problem = problem  # why an existing lock file could not be read, if it could not
        self._saved = self.render()

    @classmethod
    def load(cls, path: Path) -> LockFile:
        """Read ``path``; a missing file is an empty lock, an unreadable one is reported and ignored."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != LOCK_VERSION:
                raise ValueError(f"unsupported lock version {data.get('version')!r}")
            entries = {sid: LockEntry.from_json(e) for sid, e in data["steps"].items()}
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return cls(path, {}, problem=f"{path.name} is unreadable and was ignored ({exc})")
        return cls(path, entries)

    def render(self) -> str:
        steps = {sid: self.entries[sid].to_json() for sid in sorted(self.entries)}
        return (
            json.dumps({"version": LOCK_VERSION, "steps": steps}, indent=2, sort_keys=True) + "\n"
        )

    def save(self) -> bool:
        """Write the file if its content changed; returns whether it did."""
        text = self.render()
        if text == self._saved:
            return False
        write_atomic(self.path, text.encode())
        self._saved = text
        return True
