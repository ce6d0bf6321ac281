"""A result store held in memory: for notebooks and throwaway runs that should leave nothing on
disk, and for trying the engine without a cache folder. It keeps the store's promises (whole
entries, verified bytes, a lock per key) for as long as the process lives."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gemflow.cache.store import Memo, stored_meta
from gemflow.engine.keys import digest
from gemflow.errors import Interrupted


class MemoryStore:
    def __init__(self) -> None:
        self.corrupt: list[str] = []
        self._entries: dict[str, tuple[str, bytes, dict[str, bytes]]] = {}
        self._memo: Memo = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def prefetch(self, keys: Iterable[str]) -> int:
        return sum(key in self._entries for key in keys)

    def meta(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        return None if entry is None else json.loads(entry[0])

    def files(self, key: str) -> tuple[bytes, dict[str, bytes]] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        meta, data, attachments = json.loads(entry[0]), entry[1], entry[2]
        expected = {name: digest(blob) for name, blob in attachments.items()}
        if digest(data) != meta["digest"] or expected != (meta.get("attachments") or {}):
            self.corrupt.append(key)
            self.delete(key)
            return None
        return data, dict(attachments)

    def put(
        self,
        key: str,
        data: bytes,
        meta: dict[str, Any],
        attachments: dict[str, bytes] | None = None,
    ) -> dict[str, Any]:
        attachments = dict(attachments or {})
        meta = stored_meta(meta, data, attachments)
        with self._guard:  # one assignment: a reader sees the whole entry or none of it
            self._entries[key] = (json.dumps(meta, sort_keys=True), bytes(data), attachments)
        return meta

    def delete(self, key: str) -> None:
        with self._guard:
            self._entries.pop(key, None)

    @contextlib.contextmanager
    def lock(self, key: str, *, cancelled: Callable[[], bool] = lambda: False) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        while not lock.acquire(timeout=0.05):
            if cancelled():
                raise Interrupted("interrupted while another step made it")
        try:
            yield
        finally:
            lock.release()

    def load_memo(self) -> Memo:
        return dict(self._memo)

    def save_memo(self, entries: Memo) -> None:
        self._memo = dict(entries)

    def close(self) -> None:
        """Nothing to release: the entries stay for as long as the object does."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
