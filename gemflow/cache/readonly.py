"""A diskcache folder that cannot be written, opened for look-ups only.

diskcache opens its database read-write and writes its settings each time it is opened, so on a
read-only file system, or in a folder without write permission, it cannot open at all. This opens
the same database through SQLite's read-only modes and answers ``get``, ``iterkeys`` and
``volume`` (all a look-up needs) as diskcache would; any write fails inside SQLite. The store
(``gemflow.cache.local``) refuses writes before they get here, with a message of its own.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import diskcache
from diskcache.core import DBNAME, DEFAULT_SETTINGS

# ``mode=ro`` reads the write-ahead log too, but only where its index (``cache.db-shm``) is there
# or can be made; where neither is so (no log was left behind, and none can be written),
# ``immutable=1`` reads the database file alone, which then holds everything.
MODES = ("mode=ro", "immutable=1")


def open_read_only(directory: Path) -> Any:
    """The cache in ``directory`` for look-ups only; an empty one if no database is there.
    ``sqlite3.Error`` if the database cannot be read either."""
    if not (directory / DBNAME).is_file():
        return NoCache()
    error: sqlite3.Error | None = None
    for mode in MODES:
        try:
            return ReadOnlyDiskCache(directory, mode)
        except sqlite3.Error as exc:
            error = error or exc
    assert error is not None
    raise error


class ReadOnlyDiskCache(diskcache.Cache):
    def __init__(self, directory: Path, mode: str) -> None:
        # diskcache's own __init__ creates tables and writes settings: not called. What a look-up
        # uses is set up here, from the settings the database holds.
        self._directory = str(directory)
        self._uri = f"file:{quote(str(directory / DBNAME))}?{mode}"
        self._timeout = 60
        self._local = threading.local()
        self._txn_id = None
        try:
            stored = dict(self._sql("SELECT key, value FROM Settings").fetchall())
            ((self._page_size,),) = self._sql("PRAGMA page_size").fetchall()
        except sqlite3.Error:
            self.close()
            raise
        settings = {**DEFAULT_SETTINGS, **stored}
        disk = {key[5:]: value for key, value in settings.items() if key.startswith("disk_")}
        self._disk = diskcache.Disk(self._directory, **disk)
        for key, value in settings.items():
            setattr(self, key, value)

    @property
    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = self._local.con = sqlite3.connect(
                self._uri, uri=True, timeout=self._timeout, isolation_level=None
            )
        return con


class NoCache:
    """No database, and none can be made: every look-up is a miss."""

    def get(self, key: str, default: Any = None, read: bool = False) -> Any:
        return default

    def iterkeys(self) -> Iterator[str]:
        return iter(())

    def volume(self) -> int:
        return 0

    def close(self) -> None:
        """Nothing was opened."""
