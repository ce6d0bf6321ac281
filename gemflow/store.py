"""The result store: every output ever made, by key, in a diskcache folder.

Each result is two entries written in one transaction, so a killed run leaves either both or
neither: ``meta:<key>`` (small JSON: digest, size, model version, usage, the request as sent) and
``blob:<key>`` (the output bytes). A blob whose bytes do not match its recorded digest is never
served: it is dropped and counts as a miss. Nothing is ever evicted.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from gemflow.errors import CacheError
from gemflow.keys import digest

DEFAULT_DIRNAME = "cache"
_MEMO_KEY = "memo:file-digests"


def default_cache_dir(workflow_path: Path) -> Path:
    """``$GEMFLOW_CACHE_DIR``, else a ``cache/`` folder in the workflow's folder or nearest parent
    that has one, else ``cache/`` beside the workflow."""
    if env := os.environ.get("GEMFLOW_CACHE_DIR"):
        return Path(env)
    folder = workflow_path.absolute().parent
    for candidate in (folder, *folder.parents):
        if (candidate / DEFAULT_DIRNAME).is_dir():
            return candidate / DEFAULT_DIRNAME
    return folder / DEFAULT_DIRNAME


class Store:
    def __init__(self, directory: Path) -> None:
        import diskcache

        self.directory = directory
        self.corrupt: list[str] = []  # keys found corrupt this run (reported by the runner)
        try:
            # eviction_policy "none": an old result must come back when a change is reverted.
            self._cache = diskcache.Cache(str(directory), eviction_policy="none", size_limit=2**62)
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise CacheError(f"cannot open the cache at {directory}: {exc}") from exc

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def meta(self, key: str) -> dict[str, Any] | None:
        raw = self._cache.get(f"meta:{key}")
        return json.loads(raw) if raw is not None else None

    def blob(self, key: str) -> bytes | None:
        """The output bytes for ``key``, verified against the recorded digest."""
        meta = self.meta(key)
        data = self._cache.get(f"blob:{key}")
        if meta is None or data is None:
            return None
        if digest(data) != meta["digest"]:
            self.corrupt.append(key)
            self.delete(key)
            return None
        return data

    def put(self, key: str, data: bytes, meta: dict[str, Any]) -> dict[str, Any]:
        meta = {**meta, "digest": digest(data), "size": len(data)}
        with self._cache.transact():
            self._cache.set(f"blob:{key}", data)
            self._cache.set(f"meta:{key}", json.dumps(meta, sort_keys=True))
        return meta

    def delete(self, key: str) -> None:
        with self._cache.transact():
            self._cache.delete(f"meta:{key}")
            self._cache.delete(f"blob:{key}")

    def load_memo(self) -> dict[str, tuple[int, int, int, str]]:
        return self._cache.get(_MEMO_KEY) or {}

    def save_memo(self, entries: dict[str, tuple[int, int, int, str]]) -> None:
        self._cache.set(_MEMO_KEY, entries)
