"""A cache that cannot be written (a read-only file system, a folder without write permission)
still serves what it holds: a run with everything cached sends nothing, writes nothing to it and
succeeds; a run that would have to keep a new result stops before sending anything, saying so.

Tests often run as root, and root ignores permissions, so read-only is made three ways:

- every SQLite connection is opened ``mode=ro``: SQLite itself refuses each write, for root too,
  at the very place a read-only folder makes diskcache fail (opening its database);
- ``chmod -R a-w``, which binds only a user who is not root (skipped for root);
- a read-only bind mount (EROFS, for anyone) in a user and mount namespace of its own
  (``unshare``; skipped where making one is not allowed).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import FAKE_KEY, Project

from gemflow.cache.local import Store
from gemflow.errors import EXIT_CONFIG, CacheError

WORKFLOW = """\
version: 1
steps:
  a: {kind: generate, model: gemini-3.1-flash-image, prompt: "An apple."}
  b: {kind: generate, model: gemini-3.1-flash-image, prompt: "A pear."}
  small: {kind: resize, image: a, width: 16}
"""
ONE_MORE = '  c: {kind: generate, model: gemini-3.1-flash-image, prompt: "A plum."}\n'


@contextlib.contextmanager
def read_only_sqlite() -> Iterator[None]:
    """Every SQLite database this process opens meanwhile is opened read-only."""
    real = sqlite3.connect

    def connect(database: Any, *args: Any, uri: bool = False, **kwargs: Any) -> Any:
        if not uri:
            database, uri = f"file:{quote(os.fspath(database))}?mode=ro", True
        return real(database, *args, uri=uri, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite3, "connect", connect)
        yield


def built(project: Project) -> dict[str, Any]:
    """The workflow built once with a writable cache; what the cache and lock file hold then."""
    project.write(WORKFLOW)
    project.run()
    return snapshot(project)


def snapshot(project: Project) -> dict[str, Any]:
    with Store(project.root / "cache") as store:
        keys = store.keys()
        entries = {key: store.meta(key) for key in keys}
        memo = store.load_memo()
    lock = project.root / "wf.lock"
    return {"entries": entries, "memo": memo, "lock": (lock.read_bytes(), lock.stat().st_mtime_ns)}


def touch_outputs(project: Project) -> None:
    """New mtimes (and ctimes) for the outputs: their digests are read again, so the memo changes
    and would be saved."""
    for path in (project.root / "out").iterdir():
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))


# -- the store ---------------------------------------------------------------------------------


def test_a_read_only_store_serves_what_it_holds_and_refuses_to_keep_more(tmp_path: Path) -> None:
    with Store(tmp_path / "cache") as store:
        store.put("k", b"x" * 100_000, {"step": "a"}, {"a.txt": b"words"})  # a file-backed blob
    with read_only_sqlite(), Store(tmp_path / "cache") as store:
        assert store.read_only
        assert store.files("k") == (b"x" * 100_000, {"a.txt": b"words"})
        assert store.keys() == ["k"]
        with pytest.raises(CacheError, match=r"cannot keep .* the cache at .* is read-only"):
            store.put("j", b"y", {})
        with pytest.raises(CacheError, match="is read-only"):
            store.delete("k")
        store.save_memo({"a.png": (1, 2, 3, 4, "sha256:0")})  # a shortcut: not kept, no error
    with Store(tmp_path / "cache") as store:
        assert not store.read_only
        assert store.keys() == ["k"]
        assert store.load_memo() == {}


def test_a_cache_folder_that_cannot_be_made_is_an_empty_read_only_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(path: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr("diskcache.core.os.makedirs", refused)  # the folder is made there
    with Store(tmp_path / "cache") as store:
        assert store.read_only
        assert store.meta("k") is None and store.keys() == []
    assert not (tmp_path / "cache").exists()


# -- a run -------------------------------------------------------------------------------------


def test_a_fully_cached_run_on_a_read_only_cache_sends_nothing_and_writes_nothing(
    project: Project,
) -> None:
    before = built(project)
    calls = len(project.calls())
    touch_outputs(project)
    report = project.root / "wf.report.html"
    with read_only_sqlite():
        result = project.run("--report", str(report))  # its thumbnails cannot be kept either
    assert "Traceback" not in result.output
    assert "is read-only" in result.stderr  # said once, as information
    assert report.is_file()
    assert len(project.calls()) == calls
    assert snapshot(project) == before


def test_a_run_that_must_keep_a_result_on_a_read_only_cache_stops_before_sending(
    project: Project,
) -> None:
    before = built(project)
    calls = len(project.calls())
    project.workflow.write_text(WORKFLOW + ONE_MORE)
    with read_only_sqlite():
        result = project.run(expect=EXIT_CONFIG)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "step 'c' must run" in errors[0]
    assert f"the cache at {project.root / 'cache'} is read-only" in errors[0]
    assert "nothing was sent" in errors[0]
    assert "Traceback" not in result.output
    assert len(project.calls()) == calls
    assert snapshot(project)["entries"] == before["entries"]


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes a chmod a-w folder anyway"
)
def test_a_run_in_a_folder_without_write_permission_is_a_no_op(project: Project) -> None:
    before = built(project)
    calls = len(project.calls())
    touch_outputs(project)
    modes = {path: path.stat().st_mode for path in [project.root, *project.root.rglob("*")]}
    for path in modes:  # chmod -R a-w: the cache, the outputs, the lock file, their folders
        path.chmod(stat.S_IMODE(modes[path]) & ~0o222)
    try:
        result = project.run()
    finally:
        for path, mode in modes.items():
            path.chmod(stat.S_IMODE(mode))
    assert "Traceback" not in result.output
    assert len(project.calls()) == calls
    assert snapshot(project) == before


MOUNT_READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"'


@functools.cache
def read_only_mounts() -> bool:
    """Whether this process may make a read-only bind mount in a namespace of its own."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = ["unshare", "-rm", "sh", "-c", MOUNT_READ_ONLY + ' && ! touch "$0/x"', folder]
        try:
            return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False


def run_on_a_read_only_mount(project: Project) -> subprocess.CompletedProcess[str]:
    """``gemflow run`` with the cache folder bind-mounted read-only: every write to it is EROFS."""
    cache = str(project.root / "cache")
    argv = [sys.executable, "-m", "gemflow", "run", str(project.workflow)]
    argv += ["--base-url", project.emulator.url, "--cache-dir", cache]
    env = {**os.environ, "GEMINI_API_KEY": FAKE_KEY}
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", MOUNT_READ_ONLY + ' && exec "$@"', cache, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(not read_only_mounts(), reason="no user/mount namespaces here (unshare -rm)")
def test_a_cache_on_a_read_only_file_system_serves_a_no_op_and_refuses_new_results(
    project: Project,
) -> None:
    before = built(project)
    calls = len(project.calls())
    touch_outputs(project)
    done = run_on_a_read_only_mount(project)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert len(project.calls()) == calls
    project.workflow.write_text(WORKFLOW + ONE_MORE)
    refused = run_on_a_read_only_mount(project)
    assert refused.returncode == EXIT_CONFIG, refused.stderr
    assert "step 'c' must run" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(project.calls()) == calls
    assert snapshot(project)["entries"] == before["entries"]


LOOK_UP = """\
import sys
from pathlib import Path
from gemflow.cache.local import Store
store = Store(Path(sys.argv[1]))
print(store.read_only, sorted(store.keys()), store.files("late"))
"""
LEAVE_A_LOG = """\
import os, sys
from pathlib import Path
from gemflow.cache.local import Store
store = Store(Path(sys.argv[1]))
store._cache._sql("PRAGMA wal_autocheckpoint = 0")
store.put("late", b"z", {})
os._exit(0)  # killed: the result is in the write-ahead log only
"""


@pytest.mark.skipif(not read_only_mounts(), reason="no user/mount namespaces here (unshare -rm)")
@pytest.mark.parametrize("log", [False, True], ids=["no-log", "log-left-behind"])
def test_a_store_on_a_read_only_file_system_reads_every_result(tmp_path: Path, log: bool) -> None:
    folder = tmp_path / "cache"
    with Store(folder) as store:
        store.put("early", b"a", {})
        if not log:
            store.put("late", b"z", {})
    if log:
        subprocess.run([sys.executable, "-c", LEAVE_A_LOG, str(folder)], check=True, timeout=60)
    assert (folder / "cache.db-wal").exists() == log
    command = [sys.executable, "-c", LOOK_UP, str(folder)]
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", MOUNT_READ_ONLY + ' && exec "$@"', str(folder), *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True ['early', 'late'] (b'z', {})"
