"""The result store: every output ever made, by key, in a diskcache folder.

Each result is written in one transaction, so a killed run leaves all of it or none: ``meta:<key>``
(small JSON: digest, size, model version, usage, the request as sent, the digests of attachments),
``blob:<key>`` (the output bytes) and ``blob:<key>:<name>`` for each attachment. Bytes that do not
match their recorded digest are never served: the entry is dropped and counts as a miss. Nothing is
ever evicted.

A folder that cannot be written (a read-only file system, no write permission) is opened
read-only (``read_only``): what it holds is served, a corrupt entry is a miss but stays, the memo
is not saved (it only saves reading files again), and ``put`` and ``delete`` raise
``ReadOnlyCache``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from gemflow.cache.store import Memo, stored_meta
from gemflow.engine.keys import digest
from gemflow.errors import CacheError, DiskFull, ReadOnlyCache, is_no_space
from gemflow.fileio import held, write_atomic

DEFAULT_DIRNAME = "cache"
_MEMO_KEY = "memo:file-digests"
CHANGES = "changes"  # rewritten whenever a result is removed or replaced
PREFETCH_CHUNK = 500  # keys per query: SQLite allows 999 parameters in older builds
CANNOT_WRITE = {errno.EROFS, errno.EACCES, errno.EPERM}


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


def cache_location(
    workflow_path: str | os.PathLike[str], cache: str | os.PathLike[str] | None = None
) -> str | os.PathLike[str]:
    """The store a run of ``workflow_path`` opens: ``cache``, else the default folder."""
    return cache if cache is not None else default_cache_dir(Path(workflow_path))


class Store:
    def __init__(self, directory: Path) -> None:
        import diskcache

        self.directory = directory
        self.corrupt: list[str] = []  # keys found corrupt this run (reported by the runner)
        self.read_only = False  # the folder cannot be written: look-ups only
        self._why_read_only = ""
        # One writer at a time within the process: threads queue here, at once, instead of in
        # SQLite's busy handler, which sleeps up to 100 ms between tries.
        self._writing = threading.Lock()
        self._metas: dict[str, Any] = {}  # raw metadata records read ahead (``prefetch``)
        try:
            # eviction_policy "none": an old result must come back when a change is reverted.
            self._cache = diskcache.Cache(str(directory), eviction_policy="none", size_limit=2**62)
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            if not _cannot_write(exc, directory):
                raise CacheError(f"cannot open the cache at {directory}: {exc}") from exc
            self._cache = self._open_read_only(exc)

    def _open_read_only(self, why: BaseException) -> Any:
        """The cache for look-ups only, ``why`` the read-write open failed."""
        from gemflow.cache.readonly import open_read_only

        try:
            cache = open_read_only(self.directory)
        except sqlite3.Error as exc:
            raise CacheError(f"cannot open the cache at {self.directory}: {why}") from exc
        self.read_only = True
        self._why_read_only = (
            why.strerror if isinstance(why, OSError) and why.strerror else str(why)
        )
        return cache

    def close(self) -> None:
        self._cache.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prefetch(self, keys: Iterable[str]) -> int:
        """Read the metadata records of ``keys`` in a few queries instead of one each (10,000
        lookups one by one take a good part of a no-op run). diskcache has no call for many keys
        at once: this reads its table as ``Cache.get`` does (a str key is stored raw; nothing
        here expires)."""
        wanted = [f"meta:{key}" for key in dict.fromkeys(keys) if key not in self._metas]
        sql = getattr(self._cache, "_sql", None)  # a read-only cache without a database has none
        if sql is None:
            return 0
        found = 0
        for start in range(0, len(wanted), PREFETCH_CHUNK):
            chunk = wanted[start : start + PREFETCH_CHUNK]
            query = (
                "SELECT key, mode, filename, value FROM Cache WHERE raw = 1 AND key IN "
                f"({','.join('?' * len(chunk))})"
            )
            try:
                rows = sql(query, chunk).fetchall()
            except sqlite3.Error:
                return found  # the lookups one by one will say what is wrong
            for db_key, mode, filename, value in rows:
                try:
                    self._metas[db_key.removeprefix("meta:")] = self._cache._disk.fetch(
                        mode, filename, value, False
                    )
                except OSError:
                    continue
                found += 1
        return found

    def meta(self, key: str) -> dict[str, Any] | None:
        """The metadata of ``key``; a corrupt record is dropped like corrupt bytes (a miss)."""
        raw = self._metas.pop(key, None)  # read ahead once: not kept for the whole run
        if raw is None:
            raw = self._cache.get(f"meta:{key}")
        if raw is None:
            return None
        try:
            meta = json.loads(raw)
            if isinstance(meta, dict) and isinstance(meta.get("digest"), str):
                return meta
        except (ValueError, TypeError):
            pass
        self.corrupt.append(key)
        if not self.read_only:  # else it stays: a miss each time
            self._drop(key, {})
        return None

    def blob(self, key: str) -> bytes | None:
        """The output bytes for ``key``, verified against the recorded digest."""
        meta = self.meta(key)
        return None if meta is None else self._verified(key, f"blob:{key}", meta["digest"])

    def files(self, key: str) -> tuple[bytes, dict[str, bytes]] | None:
        """The output bytes and every attachment of ``key``, each verified; None if any is
        missing or corrupt (a corrupt entry is dropped)."""
        meta = self.meta(key)
        if meta is None:
            return None
        data = self._verified(key, f"blob:{key}", meta["digest"])
        if data is None:
            return None
        attachments = {}
        for name, expected in (meta.get("attachments") or {}).items():
            blob = self._verified(key, f"blob:{key}:{name}", expected)
            if blob is None:
                return None
            attachments[name] = blob
        return data, attachments

    def _verified(self, key: str, entry: str, expected: str) -> bytes | None:
        data = self._cache.get(entry)
        if data is not None and digest(data) == expected:
            return data
        self.corrupt.append(key)
        if not self.read_only:
            self.delete(key)
        return None

    def put(
        self,
        key: str,
        data: bytes,
        meta: dict[str, Any],
        attachments: dict[str, bytes] | None = None,
    ) -> dict[str, Any]:
        attachments = attachments or {}
        if self.read_only:
            raise ReadOnlyCache(
                f"cannot keep a result: the cache at {self.directory} is read-only "
                f"({self._why_read_only})"
            )
        meta = stored_meta(meta, data, attachments)
        self._metas.pop(key, None)
        try:
            with self._writing, self._cache.transact():
                before = self._cache.get(f"meta:{key}")
                self._cache.set(f"blob:{key}", data)
                for name, blob in attachments.items():
                    self._cache.set(f"blob:{key}:{name}", blob)
                self._cache.set(f"meta:{key}", json.dumps(meta, sort_keys=True))
            if before is not None and f'"digest": "{meta["digest"]}"' not in before:
                self._changed()  # another result for this key (--force, gemflow pick)
        except (OSError, sqlite3.Error) as exc:
            # Full, over quota, read-only or failing: every answer sent now would be lost.
            why = "the disk is full" if is_no_space(exc) else str(exc)
            raise DiskFull(f"cannot write to the cache at {self.directory} ({why})") from exc
        return meta

    def delete(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyCache(
                f"cannot delete from the cache at {self.directory}: it is read-only "
                f"({self._why_read_only})"
            )
        self._drop(key, self.meta(key) or {})

    def _drop(self, key: str, meta: dict[str, Any]) -> None:
        self._metas.pop(key, None)
        with self._writing, self._cache.transact():
            self._cache.delete(f"meta:{key}")
            self._cache.delete(f"blob:{key}")
            for name in meta.get("attachments") or {}:
                self._cache.delete(f"blob:{key}:{name}")
        self._changed()

    def _changed(self) -> None:
        """A result was removed or replaced: rewrite the ``changes`` file, which a run's stamp
        watches (``gemflow.engine.stamp``; adding results changes no earlier run's decisions, so
        the database file itself, rewritten by every open, is not watched)."""
        write_atomic(self.directory / CHANGES, os.urandom(8).hex().encode())

    @contextlib.contextmanager
    def lock(self, key: str, *, cancelled: Callable[[], bool] = lambda: False) -> Iterator[None]:
        """Hold an exclusive, cross-process lock on ``key`` (released when a process dies).
        Waiting for it polls, so that an interrupted run stops waiting (``Interrupted``). A
        read-only store makes no result, so it has no lock to take."""
        if self.read_only:
            yield
            return
        folder = self.directory / "locks"
        folder.mkdir(exist_ok=True)
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        with held(
            folder / name,
            cancelled=cancelled,
            waiting="interrupted while another gemflow run made it",
        ):
            yield

    def keys(self) -> list[str]:
        """Every stored result's key: step results (``sha256:…``) and single calls (``call/…``)."""
        return [k[len("meta:") :] for k in self._cache.iterkeys() if k.startswith("meta:")]

    def size(self, key: str) -> int:
        """Bytes stored for ``key``: its output and attachments (read from disk only as needed)."""
        meta = self.meta(key)
        if meta is None:
            return 0
        total = int(meta.get("size") or 0)
        for name in meta.get("attachments") or {}:
            value = self._cache.get(f"blob:{key}:{name}", read=True)
            if isinstance(value, bytes):
                total += len(value)
            elif value is not None:  # a file-backed value: its size without reading it
                with value as handle:
                    total += os.fstat(handle.fileno()).st_size
        return total

    def info(self) -> dict[str, Any]:
        keys = self.keys()
        calls = sum(k.startswith("call/") for k in keys)
        thumbnails = sum(k.startswith("thumb/") for k in keys)  # the HTML report's
        return {
            "directory": str(self.directory),
            "results": len(keys) - calls - thumbnails,
            "calls": calls,
            "thumbnails": thumbnails,
            "bytes": self._cache.volume(),
        }

    def verify(self) -> list[str]:
        """Check every entry's bytes against its digests; drop and return the corrupt keys."""
        for key in self.keys():
            self.files(key)
        found, self.corrupt = sorted(set(self.corrupt)), []
        return found

    def load_memo(self) -> Memo:
        """The memo, or none if it cannot be read (it only saves reading files again)."""
        try:
            memo = self._cache.get(_MEMO_KEY)
        except Exception:  # a corrupt pickle can raise anything; the memo is only a shortcut
            return {}
        return memo if isinstance(memo, dict) else {}

    def save_memo(self, entries: Memo) -> None:
        if self.read_only:
            return  # only a shortcut: the next run reads the files again
        try:
            self._cache.set(_MEMO_KEY, entries)
        except (OSError, sqlite3.Error) as exc:
            raise DiskFull(f"cannot write to the cache at {self.directory} ({exc})") from exc


def _cannot_write(exc: BaseException, directory: Path) -> bool:
    """Whether opening the cache failed because its folder cannot be written."""
    if isinstance(exc, OSError):
        return exc.errno in CANNOT_WRITE
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return True
    # SQLite could not make the database (or its log): a folder it may not write to
    return "unable to open database file" in text and not os.access(directory, os.W_OK)
