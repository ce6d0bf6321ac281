"""The store and the file memo survive damage: corrupt metadata or memo are misses, not crashes; an
edit in place that keeps size and mtime is still seen; waiting for another process's key ends when
the run is interrupted."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import diskcache
import pytest
from conftest import Project

from gemflow.cache.local import Store
from gemflow.errors import Interrupted
from gemflow.fileio import DigestMemo

ONE = """\
version: 1
steps:
  a: {kind: generate, model: gemini-3.1-flash-image, prompt: An apple.}
"""


def test_corrupt_metadata_is_a_miss_and_verify_reports_it(project: Project) -> None:
    project.write(ONE)
    doc = project.run_json()
    key = doc["steps"][0]["key"]
    with diskcache.Cache(str(project.root / "cache")) as raw:
        raw.set(f"meta:{key}", "{not json")
    verify = project.cli("cache", "verify", "--cache-dir", str(project.root / "cache"), expect=1)
    assert f"corrupt, dropped: {key}" in verify.output
    (project.root / "out" / "a.png").unlink()
    with diskcache.Cache(str(project.root / "cache")) as raw:
        raw.set(f"meta:{key}", "[1, 2]")  # valid JSON, not a record
    again = project.run_json()
    assert again["steps"][0]["status"] == "run"  # made again, not served, no crash
    assert len(project.calls()) == 2


def test_a_corrupt_memo_is_ignored(project: Project) -> None:
    project.write(ONE)
    project.run()
    with diskcache.Cache(str(project.root / "cache")) as raw:
        raw.set("memo:file-digests", ["not", "a", "memo"])
    assert project.run_json()["steps"][0]["status"] == "cached"


def test_an_edit_in_place_keeping_size_and_mtime_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(b"AAAA")
    memo = DigestMemo()
    before = memo.digest(path)
    stat = path.stat()
    time.sleep(0.01)
    path.write_bytes(b"BBBB")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, as touch -r does
    assert path.stat().st_ino == stat.st_ino
    assert memo.digest(path) != before


def test_waiting_for_another_process_key_ends_on_interrupt(tmp_path: Path) -> None:
    stop = threading.Event()
    with Store(tmp_path / "cache") as holder, Store(tmp_path / "cache") as waiter, holder.lock("k"):
        threading.Timer(0.2, stop.set).start()
        started = time.monotonic()
        with pytest.raises(Interrupted), waiter.lock("k", cancelled=stop.is_set):
            pass
        assert time.monotonic() - started < 2
