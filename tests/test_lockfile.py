"""The lock file: sorted, stable, without timestamps; an unreadable one is ignored with a reason."""

from __future__ import annotations

import json
from pathlib import Path

from gemflow.cache.lockfile import LockEntry, LockFile


def entry(key: str = "sha256:1") -> LockEntry:
    return LockEntry(
        key=key,
        kind="generate",
        params={"prompt": "p"},
        inputs=[],
        output="out/a.png",
        digest="sha256:2",
        model_version="m",
        tokens={"total": 3},
    )


def test_entries_are_sorted_and_round_trip(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / "wf.lock")
    lock.entries["b"] = entry()
    lock.entries["a"] = entry("sha256:9")
    assert lock.save()
    data = json.loads((tmp_path / "wf.lock").read_text())
    assert list(data["steps"]) == ["a", "b"]
    assert LockFile.load(tmp_path / "wf.lock").entries["b"] == entry()


def test_saving_unchanged_content_does_not_write(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / "wf.lock")
    lock.entries["a"] = entry()
    lock.save()
    again = LockFile.load(tmp_path / "wf.lock")
    assert again.save() is False


def test_an_unreadable_lock_is_ignored_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "wf.lock").write_text("{not json")
    lock = LockFile.load(tmp_path / "wf.lock")
    assert lock.entries == {}
    assert lock.problem.startswith("wf.lock is unreadable and was ignored")
