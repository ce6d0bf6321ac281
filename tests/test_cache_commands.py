"""`gemflow cache info` and `gemflow cache verify`."""

from __future__ import annotations

from pathlib import Path

import diskcache
from click.testing import CliRunner

from gemflow.cache.local import Store
from gemflow.cli import cli


def filled(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    with Store(directory) as store:
        store.put("sha256:a", b"one", {})
        store.put("sha256:b", b"two", {}, {"b/x.png": b"three"})
        store.put("call/sha256:c", b"", {"response": {}})
    return directory


def test_info_counts_results_and_calls(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cache", "info", "--cache-dir", str(filled(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "2 step results, 1 single calls" in result.stdout


def test_verify_of_a_sound_store_exits_0(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cache", "verify", "--cache-dir", str(filled(tmp_path))])
    assert result.exit_code == 0
    assert "3 entries checked, 0 corrupt" in result.stdout


def test_verify_finds_and_drops_a_corrupt_attachment(tmp_path: Path) -> None:
    directory = filled(tmp_path)
    with diskcache.Cache(str(directory)) as raw:
        raw.set("blob:sha256:b:b/x.png", b"tampered")
    result = CliRunner().invoke(cli, ["cache", "verify", "--cache-dir", str(directory)])
    assert result.exit_code == 1
    assert "corrupt, dropped: sha256:b" in result.stderr
    with Store(directory) as store:
        assert store.meta("sha256:b") is None
        assert store.blob("sha256:a") == b"one"


def test_a_missing_cache_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cache", "info", "--cache-dir", str(tmp_path / "none")])
    assert result.exit_code == 3
    assert "no cache at" in result.stderr
