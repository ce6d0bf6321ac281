"""Two tiers of results: this machine's store first, then the team's remote (S3 or GCS).

A key missing here is looked up remotely (one GET of its record); a remote hit is verified
(digests) and copied into the local store, which answers from then on (a local store that cannot
be written, a read-only build machine's, say: kept in memory for the session instead). With
``push`` on, a result made here is stored locally first, then written to the remote create-only:
if another writer got there first, theirs is the result, and it replaces ours here too (``put``
returns it), so a team converges on one result per key. A result made with ``--force`` is the
exception: it stays local and the remote keeps the first one.

A remote that does not answer (down, 403, a timeout) never fails a run and never costs a second
call: the key is a miss, as it would be without a remote, the remote is not asked again during
the session, and the run ends with one warning (``notices``); results not pushed are pushed later
by ``gemflow cache push``. The per-key lock and the file-digest memo stay local: on the remote,
create-only writes are the lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from gemflow.cache.store import Memo, ResultStore
from gemflow.errors import RemoteError

if TYPE_CHECKING:
    from gemflow.cache.lockfile import LockFile
    from gemflow.cache.remote import Entry, RemoteStore

ENV_REMOTE = "GEMFLOW_REMOTE"
ENV_PUSH = "GEMFLOW_REMOTE_PUSH"
OFF = "none"  # --remote none: no remote for this run, whatever the workflow or environment say
REFUSAL = "refusal/"  # as gemflow.engine.refusals.PREFIX (not imported: the engine imports us)
# Entries that stay on this machine: the HTML report's thumbnails are made from results, and are
# cheaper to make again than to look up.
LOCAL_ONLY = ("thumb/",)

T = TypeVar("T")


@dataclass(frozen=True)
class RemoteSettings:
    url: str | None
    push: bool = False


def remote_settings(
    remote: str | None = None,
    push: bool | None = None,
    defaults: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> RemoteSettings:
    """Which remote, and whether to push: the argument (``--remote``, ``--push``), else the
    workflow's ``defaults`` (``remote:``, ``push:``), else ``GEMFLOW_REMOTE`` and
    ``GEMFLOW_REMOTE_PUSH``. ``none`` turns the remote off."""
    from gemflow.cache.remote import parse_location

    defaults = defaults or {}
    url = remote or defaults.get("remote") or environ.get(ENV_REMOTE) or None
    if url is None or url.strip().lower() == OFF:
        return RemoteSettings(None)
    parse_location(url)  # a ConfigError now, not a warning later
    if push is None:
        push = defaults.get("push")
    if push is None:
        push = environ.get(ENV_PUSH, "").strip().lower() in ("1", "true", "yes", "on")
    return RemoteSettings(url, bool(push))


def lock_keys(lock: LockFile, *, takes: bool = True) -> list[str]:
    """The keys a lock file refers to: each step's result (its refusal, for a step that expects
    one) and, with ``takes``, every take kept."""
    keys: dict[str, None] = {}
    for entry in lock.entries.values():
        keys[REFUSAL + entry.key if entry.refused else entry.key] = None
        for take in entry.takes if takes else ():
            keys[str(take.get("key"))] = None
    return [key for key in keys if key]


@dataclass
class SyncReport:
    """What ``push_keys`` or ``pull_keys`` did, key by key."""

    copied: list[str] = field(default_factory=list)  # pushed, or pulled
    present: list[str] = field(default_factory=list)  # already there, the same result
    differ: list[str] = field(default_factory=list)  # the remote holds another result for it
    missing: list[str] = field(default_factory=list)  # in neither place it was to come from


class TieredStore:
    """A ``ResultStore``: ``local`` first, then the remote at ``url``."""

    def __init__(
        self,
        local: ResultStore,
        url: str,
        *,
        push: bool = False,
        options: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.local = local
        self.url = url
        self.push = push
        self.corrupt = local.corrupt  # one list: the runner reports both tiers' corrupt entries
        self.pulled = 0  # results copied from the remote this session
        self.pushed = 0  # results this session wrote to the remote
        self._options = options
        self._timeout = timeout
        self._remote: RemoteStore | None = None
        self._down: str | None = None  # why the remote is not asked any more this session
        self._unpushed = 0  # results that were to be pushed and were not
        self._kept: list[str] = []  # forced results kept here, the remote holding another
        self._adopted: list[str] = []  # results another writer pushed first, taken instead of ours
        self._guard = threading.Lock()
        self._session: ResultStore | None = None  # remote hits, when the local store is read-only

    @property
    def directory(self) -> Any:
        """The local store's folder, if it has one (batch jobs are recorded there)."""
        return getattr(self.local, "directory", None)

    # -- the ResultStore protocol -----------------------------------------------------------------

    def meta(self, key: str) -> dict[str, Any] | None:
        return self._look_up(key, lambda store: store.meta(key))

    def files(self, key: str) -> tuple[bytes, dict[str, bytes]] | None:
        return self._look_up(key, lambda store: store.files(key))

    def _look_up(self, key: str, read: Callable[[ResultStore], T | None]) -> T | None:
        """``read`` of the store holding ``key``: here, else copied here from the remote."""
        for store in (self.local, self._session):
            if store is not None and (found := read(store)) is not None:
                return found
        if key.startswith(LOCAL_ONLY) or not self._pull([key]):
            return None
        return read(self._here())

    def put(
        self,
        key: str,
        data: bytes,
        meta: dict[str, Any],
        attachments: dict[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Store here, then (with ``push``) on the remote; returns the result the key now holds,
        which is another writer's when they pushed one first (see the module's docstring)."""
        from gemflow.cache.remote import Entry

        attachments = dict(attachments or {})
        stored = self.local.put(key, data, meta, attachments)
        if not self.push or key.startswith(LOCAL_ONLY):
            return stored
        held = self._ask(lambda remote: remote.push([Entry(key, stored, data, attachments)])[key])
        if held is None:
            with self._guard:
                self._unpushed += 1
            return stored
        if _same(held, stored):
            with self._guard:
                self.pushed += 1
            return stored
        if stored.get("forced"):
            with self._guard:
                self._kept.append(str(stored.get("step") or key))
            return stored
        winner = self._ask(lambda remote: remote.fetch([key])[key])
        if winner is None:
            return stored  # not readable now: ours stays, and the next look-up settles it
        with self._guard:
            self._adopted.append(str(stored.get("step") or key))
        return self.local.put(key, winner.data, winner.meta, winner.attachments)

    def delete(self, key: str) -> None:
        """Here only: remote results are never deleted (another machine may be reading them)."""
        self.local.delete(key)

    def lock(
        self, key: str, *, cancelled: Callable[[], bool] = lambda: False
    ) -> AbstractContextManager[None]:
        return self.local.lock(key, cancelled=cancelled)

    def load_memo(self) -> Memo:
        return self.local.load_memo()

    def save_memo(self, entries: Memo) -> None:
        self.local.save_memo(entries)

    @property
    def read_only(self) -> bool:
        """The local store cannot be written: remote hits are kept in memory for the session."""
        return bool(getattr(self.local, "read_only", False))

    def _here(self) -> ResultStore:
        """Where a remote hit is kept: the local store, or when that cannot be written, memory
        for as long as the session lasts (a read-only build machine is still served)."""
        if not self.read_only:
            return self.local
        with self._guard:
            if self._session is None:
                from gemflow.cache.memory import MemoryStore

                self._session = MemoryStore()
            return self._session

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()
        self.local.close()

    def __enter__(self) -> TieredStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def notices(self) -> list[str]:
        """What a run should say about the remote when it ends: at most one line for each kind."""
        said = []
        if self._down is not None:
            line = f"the team cache {self.url} did not answer ({self._down}): "
            line += "this run went on with the local cache alone"
            if self._unpushed:
                line += (
                    f"; {self._unpushed} result(s) were not pushed "
                    "('gemflow cache push' with this workflow uploads them)"
                )
            said.append(line)
        if self._adopted:
            names = ", ".join(sorted(set(self._adopted)))
            said.append(
                f"another machine pushed a result for the same key first ({names}): "
                "that one is used here too"
            )
        if self._kept:
            names = ", ".join(sorted(set(self._kept)))
            said.append(
                f"forced results stay in the local cache ({names}): the team cache keeps the "
                "first result for a key (--reroll makes a new take that can be shared)"
            )
        if self._remote is not None and self._remote.corrupt:
            count = len(set(self._remote.corrupt))
            said.append(f"{count} record(s) in the team cache {self.url} did not verify: not used")
        return said

    # -- many keys at once ------------------------------------------------------------------------

    def prefetch(self, keys: Iterable[str]) -> int:
        """Copy the results of ``keys`` that are not here from the remote, all at once (a run
        looks up the keys of its lock file this way first). Returns how many were copied."""
        keys = list(dict.fromkeys(keys))
        self.local.prefetch(keys)
        missing = [key for key in keys if self.local.meta(key) is None]
        if self._session is not None:
            missing = [key for key in missing if self._session.meta(key) is None]
        return self._pull(missing) if missing else 0

    def ping(self) -> str | None:
        """None if the remote answers, else why not."""
        try:
            self.remote.ping()
        except RemoteError as exc:
            return str(exc)
        return None

    def push_keys(self, keys: Iterable[str]) -> SyncReport:
        """Write each local result of ``keys`` that the remote lacks; ``RemoteError`` if it does
        not answer."""
        from gemflow.cache.remote import Entry

        report = SyncReport()
        local: dict[str, dict[str, Any]] = {}
        for key in dict.fromkeys(keys):
            meta = self.local.meta(key)
            if meta is None:
                report.missing.append(key)
            else:
                local[key] = meta
        held = self.remote.records(local)
        entries = []
        for key, meta in local.items():
            if (theirs := held[key]) is not None:
                (report.present if _same(theirs, meta) else report.differ).append(key)
            elif (found := self.local.files(key)) is None:
                report.missing.append(key)  # corrupt here: dropped, nothing to push
            else:
                entries.append(Entry(key, self.local.meta(key) or meta, *found))
        for key, now in self.remote.push(entries).items():
            (report.copied if _same(now, local[key]) else report.differ).append(key)
        self.pushed += len(report.copied)
        return report

    def pull_keys(self, keys: Iterable[str]) -> SyncReport:
        """Copy each result of ``keys`` that is not here from the remote; ``RemoteError`` if it
        does not answer."""
        report = SyncReport()
        wanted: list[str] = []
        for key in dict.fromkeys(keys):
            (report.present if self.local.meta(key) is not None else wanted).append(key)
        for key, entry in self.remote.fetch(wanted).items():
            if entry is None:
                report.missing.append(key)
            else:
                self.local.put(key, entry.data, entry.meta, entry.attachments)
                report.copied.append(key)
        self.pulled += len(report.copied)
        return report

    # -- the remote, asked at most until it first fails --------------------------------------------

    @property
    def remote(self) -> RemoteStore:
        """The remote's client, made on first use (that is when s3fs or gcsfs is imported)."""
        with self._guard:
            if self._remote is None:
                from gemflow.cache.remote import RemoteStore

                self._remote = RemoteStore(self.url, options=self._options, timeout=self._timeout)
            return self._remote

    def _ask(self, question: Callable[[RemoteStore], T]) -> T | None:
        """``question``'s answer, or None once the remote has failed (it is then left alone)."""
        if self._down is not None:
            return None
        try:
            return question(self.remote)
        except RemoteError as exc:
            with self._guard:
                if self._down is None:
                    self._down = str(exc).removeprefix(f"{self.url}: ")
            return None

    def _pull(self, keys: list[str]) -> int:
        found: dict[str, Entry | None] = self._ask(lambda remote: remote.fetch(keys)) or {}
        here, copied = self._here(), 0
        for key, entry in found.items():
            if entry is not None:
                here.put(key, entry.data, entry.meta, entry.attachments)
                copied += 1
        with self._guard:
            self.pulled += copied
        return copied


def _same(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two records hold the same result: the same output and attachments."""
    return one.get("digest") == other.get("digest") and (one.get("attachments") or {}) == (
        other.get("attachments") or {}
    )
