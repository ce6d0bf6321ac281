"""Files: atomic writes, and digests that are re-computed only when a file's stat changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gemflow.engine.keys import digest
from gemflow.fileio import DigestMemo, write_atomic


def test_write_atomic_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_atomic(tmp_path / "sub" / "a.png", b"data")
    assert (tmp_path / "sub" / "a.png").read_bytes() == b"data"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"old")

    def boom(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_memo_hashes_content(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert DigestMemo().digest(path) == digest(b"abc")


def test_memo_does_not_reread_an_unchanged_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    memo = DigestMemo()
    memo.digest(path)
    monkeypatch.setattr("gemflow.fileio.hash_file", lambda p: pytest.fail("re-read"))
    assert memo.digest(path) == digest(b"abc")


def test_memo_rehashes_when_the_stat_changes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    memo = DigestMemo()
    memo.digest(path)
    path.write_bytes(b"abd")
    os.utime(path, ns=(1, 1))
    assert memo.digest(path) == digest(b"abd")


def test_memo_of_a_missing_file_is_none(tmp_path: Path) -> None:
    assert DigestMemo().digest(tmp_path / "absent") is None
