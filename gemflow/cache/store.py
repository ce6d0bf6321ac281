"""The result store's interface, and the registry of its implementations.

A store keeps every result ever made, by key: the output's bytes, its attachments and small JSON
metadata (its digest and size among them, filled in by ``put``). What a store promises:

- ``put`` stores all of a result or none of it (a killed run never leaves half an entry);
- bytes that do not match their recorded digest are never served: the entry is dropped, its key is
  added to ``corrupt`` and the lookup is a miss;
- ``lock(key)`` is held while a result is made, so two runs sharing the store never pay twice for
  one key (a file lock locally; a remote store would use create-only writes);
- nothing is evicted: an old result must come back when a change is reverted.

A store may say ``read_only`` (a cache folder that cannot be written): it serves what it holds,
``put`` and ``delete`` raise ``ReadOnlyCache``, and a run stops before sending a request whose
result it could not keep.

``open_store`` picks the implementation from a location: ``memory:`` or a folder path (``file:``
optional). A new store is one module with one class and one line in ``STORES``.
"""

from __future__ import annotations

import datetime
import importlib
import os
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from gemflow.engine.keys import digest
from gemflow.errors import ConfigError

Memo = dict[str, tuple[Any, ...]]  # file path -> (size, mtime_ns, inode, ctime_ns, digest)


class ResultStore(Protocol):
    corrupt: list[str]  # keys found corrupt (and dropped) since the store was opened

    def meta(self, key: str) -> dict[str, Any] | None: ...

    def prefetch(self, keys: Iterable[str]) -> int:
        """Look ``keys`` up all at once, so that ``meta`` answers them without a lookup each (a
        run does this with its lock file's keys first). Returns how many it read ahead (a
        remote tier: how many it copied here)."""
        ...

    def files(self, key: str) -> tuple[bytes, dict[str, bytes]] | None:
        """The output bytes and every attachment, each verified; None if any is missing or corrupt."""
        ...

    def put(
        self,
        key: str,
        data: bytes,
        meta: dict[str, Any],
        attachments: dict[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Store a result at once; returns its metadata as stored (with digest and size)."""
        ...

    def delete(self, key: str) -> None: ...

    def lock(
        self, key: str, *, cancelled: Callable[[], bool] = lambda: False
    ) -> AbstractContextManager[None]:
        """Held while ``key``'s result is made; waiting for it ends with ``Interrupted`` once
        ``cancelled()`` is true (a run interrupted while another process makes the result)."""
        ...

    def load_memo(self) -> Memo:
        """The file-digest memo of the last run (see ``gemflow.fileio.DigestMemo``)."""
        ...

    def save_memo(self, entries: Memo) -> None: ...

    def close(self) -> None: ...


# Scheme -> "module:Class". The class is built with the location's path (or None for memory:).
STORES: dict[str, str] = {
    "file": "gemflow.cache.local:Store",
    "memory": "gemflow.cache.memory:MemoryStore",
}


def open_store(location: str | os.PathLike[str]) -> ResultStore:
    """The store at ``location``: ``memory:``, ``SCHEME:rest`` for a registered scheme, or a folder."""
    scheme, rest = _scheme(location)
    module, _, name = STORES[scheme].partition(":")
    cls: Callable[..., ResultStore] = getattr(importlib.import_module(module), name)
    if scheme == "file":
        return cls(Path(rest.removeprefix("//")))
    if rest:
        raise ConfigError(f"the {scheme}: store takes no path (got {os.fspath(location)!r})")
    return cls()


def store_folder(location: str | os.PathLike[str]) -> Path | None:
    """The folder of the store at ``location``, when it is one (not ``memory:``)."""
    scheme, rest = _scheme(location)
    return Path(rest.removeprefix("//")) if scheme == "file" else None


def _scheme(location: str | os.PathLike[str]) -> tuple[str, str]:
    text = os.fspath(location)
    scheme, sep, rest = text.partition(":")
    if not sep or scheme not in STORES or len(scheme) == 1:  # "C:\\..." is a folder on Windows
        return "file", text
    return scheme, rest


def stored_meta(meta: dict[str, Any], data: bytes, attachments: dict[str, bytes]) -> dict[str, Any]:
    """What a store records with a result: the caller's metadata, the output's digest and size,
    the digest of each attachment (what ``files`` verifies), and when it was first stored (UTC;
    kept when an entry is stored again, as a take moved back)."""
    recorded = {"stored_at": _now(), **meta, "digest": digest(data), "size": len(data)}
    if attachments:
        recorded["attachments"] = {name: digest(blob) for name, blob in attachments.items()}
    return recorded


def blob(store: ResultStore, key: str) -> bytes | None:
    """The output bytes of ``key`` alone, verified."""
    found = store.files(key)
    return None if found is None else found[0]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
