"""The store keeps every result by key, verifies what it serves and survives being reopened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gemflow.cache.local import Store, default_cache_dir
from gemflow.engine.keys import digest


def test_a_result_round_trips_with_its_metadata(tmp_path: Path) -> None:
    with Store(tmp_path / "c") as store:
        meta = store.put("k1", b"png-bytes", {"model_version": "m1"})
        assert meta["digest"] == digest(b"png-bytes")
    with Store(tmp_path / "c") as store:
        assert store.blob("k1") == b"png-bytes"
        assert store.meta("k1")["model_version"] == "m1"


def test_a_missing_key_is_a_miss(tmp_path: Path) -> None:
    with Store(tmp_path / "c") as store:
        assert store.meta("nope") is None
        assert store.blob("nope") is None


def test_a_corrupt_blob_is_dropped_and_never_served(tmp_path: Path) -> None:
    data = b"x" * 100_000  # large enough for diskcache to keep it in a file of its own
    with Store(tmp_path / "c") as store:
        store.put("k1", data, {})
    blob_files = [p for p in (tmp_path / "c").rglob("*.val")]
    assert blob_files
    blob_files[0].write_bytes(b"y" * 100_000)
    with Store(tmp_path / "c") as store:
        assert store.blob("k1") is None
        assert store.corrupt == ["k1"]
        assert store.meta("k1") is None


def test_the_api_key_is_not_in_the_store_files(tmp_path: Path) -> None:
    with Store(tmp_path / "c") as store:
        store.put("k1", b"data", {"request": {"prompt": "p"}})
    for path in (tmp_path / "c").rglob("*"):
        if path.is_file():
            assert b"AIza" not in path.read_bytes()
    sqlite3.connect(tmp_path / "c" / "cache.db").close()


def test_default_cache_dir_is_the_nearest_cache_folder(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "workflows").mkdir()
    assert default_cache_dir(tmp_path / "workflows" / "wf.yaml") == tmp_path / "cache"


def test_default_cache_dir_without_one_is_beside_the_workflow(tmp_path: Path) -> None:
    assert default_cache_dir(tmp_path / "wf.yaml") == tmp_path / "cache"


def test_gemflow_cache_dir_overrides(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GEMFLOW_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir(tmp_path / "wf.yaml") == tmp_path / "elsewhere"


def test_prefetch_reads_many_records_at_once_and_never_serves_a_replaced_one(
    tmp_path: Path, monkeypatch
) -> None:
    keys = [f"k{i}" for i in range(1_200)]  # more than one query's worth
    with Store(tmp_path / "c") as store:
        for i, key in enumerate(keys):
            store.put(key, f"png-{i}".encode(), {"model_version": f"m{i}"})
        store.put("corrupt", b"x", {})
        store._cache.set("meta:corrupt", "{not json")
    with Store(tmp_path / "c") as store:
        assert store.prefetch([*keys, "missing", "corrupt"]) == len(keys) + 1

        def no_lookups(*args: object, **kwargs: object) -> None:
            raise AssertionError("looked up one by one")

        monkeypatch.setattr(store._cache, "get", no_lookups)
        assert [store.meta(key)["model_version"] for key in keys] == [
            f"m{i}" for i in range(len(keys))
        ]
        monkeypatch.undo()
        assert store.meta("missing") is None
        assert store.meta("corrupt") is None and store.corrupt == ["corrupt"]
        store.put("k7", b"another picture", {"model_version": "new"})
        assert store.meta("k7")["model_version"] == "new"
        store.delete("k8")
        assert store.meta("k8") is None
