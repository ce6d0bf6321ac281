"""A team's shared results on object storage (S3 or GCS), through fsspec.

The layout, under the location's prefix, is versioned by key scheme, so a change of scheme never
reads (or silently orphans) another's entries::

    <prefix>/gemflow-cache/v1/
        blobs/sha256/<2 hex>/<62 hex>    the bytes of an output or attachment, by digest
        results/<sha256 of the key>.json one record per key: {"format", "key", "meta"}

A record's ``meta`` is the store metadata (``gemflow.cache.store.stored_meta``): the output's
digest and size, each attachment's digest, and what made it (the request, prompts included).

Every write is create-only (S3 ``If-None-Match: *``, GCS ``ifGenerationMatch=0``): blobs first,
the record last, so a record never names a missing blob. When two writers race on one key the
second gets ``FileExistsError`` and takes the record that won: a team converges on one result per
key, and nothing is ever overwritten. Look-ups are direct GETs of records, many at once; nothing
is ever listed.

s3fs and gcsfs are optional (``gemflow[s3]``, ``gemflow[gcs]``) and imported only here, when a
remote is opened. Their exceptions are translated into ``RemoteError`` in one place (``_failure``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gemflow.engine.keys import digest
from gemflow.errors import ConfigError, RemoteError

LAYOUT = "gemflow-cache/v1"
RECORD_FORMAT = 1
CONCURRENCY = 64  # requests in flight at once
DEFAULT_TIMEOUT = 10.0  # seconds for one request; more for a large blob (see _deadline)
EMPTY = digest(b"")  # no blob is stored for empty bytes (refusals, answers without an image)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
# location scheme -> (fsspec protocol, the extra that installs its library)
SCHEMES = {"s3": ("s3", "s3"), "gs": ("gcs", "gcs"), "gcs": ("gcs", "gcs")}

T = TypeVar("T")


@dataclass
class Entry:
    """One result as the remote holds it: its record's metadata and its verified bytes."""

    key: str
    meta: dict[str, Any]
    data: bytes
    attachments: dict[str, bytes] = field(default_factory=dict)


def parse_location(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ("s3", "bucket/prefix"); a ``ConfigError`` for anything else."""
    scheme, sep, rest = url.partition("://")
    bucket = rest.strip("/").partition("/")[0]
    if not sep or scheme not in SCHEMES or not bucket:
        raise ConfigError(
            f"{url!r} is not a remote: write s3://bucket/prefix or gs://bucket/prefix"
        )
    return scheme, rest.strip("/")


def record_name(key: str) -> str:
    return f"results/{hashlib.sha256(key.encode()).hexdigest()}.json"


def blob_name(value: str) -> str:
    if not _DIGEST.match(value):
        raise ValueError(f"not a sha256 digest: {value!r}")
    hexdigest = value.removeprefix("sha256:")
    return f"blobs/sha256/{hexdigest[:2]}/{hexdigest[2:]}"


def blob_digests(meta: dict[str, Any]) -> list[str]:
    """Every blob a record names: the output's, then each attachment's."""
    return [meta["digest"], *(meta.get("attachments") or {}).values()]


class RemoteStore:
    """The object-store layout, read and written create-only. Not a ``ResultStore`` by itself
    (no lock, no memo): ``gemflow.cache.tiered`` puts it behind a local store."""

    def __init__(
        self,
        url: str,
        *,
        options: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        scheme, path = parse_location(url)
        self.url = url
        self.root = f"{path}/{LAYOUT}"
        self.timeout = timeout or _timeout_from_env()
        self.corrupt: list[str] = []  # keys whose remote record or blobs did not verify
        self._pushed: set[str] = set()  # blobs known to be there: not uploaded twice
        self.fs = _filesystem(scheme, dict(options or {}), self.timeout)

    # -- reading ----------------------------------------------------------------------------------

    def records(self, keys: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """Each key's record metadata, or None where there is none: one GET each, at once."""
        keys = list(dict.fromkeys(keys))
        found = self._run(lambda: _gather([self._record(key) for key in keys]))
        return dict(zip(keys, found, strict=True))

    def fetch(self, keys: Iterable[str]) -> dict[str, Entry | None]:
        """Each key's whole entry, its bytes verified, or None (no record, or a corrupt one)."""
        keys = list(dict.fromkeys(keys))
        found = self._run(lambda: _gather([self._entry(key) for key in keys]))
        return dict(zip(keys, found, strict=True))

    # -- writing ----------------------------------------------------------------------------------

    def push(self, entries: Iterable[Entry]) -> dict[str, dict[str, Any]]:
        """Write each entry create-only (blobs, then the record); returns the metadata the remote
        holds for each key afterwards: the entry's own, or the one another writer put first."""
        entries = list(entries)
        done = self._run(lambda: _gather([self._push(e) for e in entries]))
        return {entry.key: meta for entry, meta in zip(entries, done, strict=True)}

    def ping(self) -> None:
        """Raise ``RemoteError`` unless the remote answers (a GET of a record that is not there)."""
        self.records(["gemflow/ping"])

    def close(self) -> None:
        """Close the client's connections now: a notebook may open many sessions in one process."""
        fs = self.fs
        try:
            if (s3 := getattr(fs, "_s3", None)) is not None:
                fs._s3 = None
                type(fs).close_session(fs.loop, s3)
            elif (session := getattr(fs, "_session", None)) is not None:
                fs._session = None
                type(fs).close_session(fs.loop, session)
        except Exception:  # closing a client must never fail a finished run
            pass

    # -- one request at a time, on fsspec's event loop --------------------------------------------

    def _run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` on fsspec's loop; any failure but a miss becomes a ``RemoteError``."""
        from fsspec.asyn import sync

        try:
            return sync(self.fs.loop, work)
        except Exception as exc:
            raise RemoteError(f"{self.url}: {_failure(exc, self.timeout)}") from exc

    async def _get(self, path: str, size: int = 0) -> bytes | None:
        try:
            data: bytes = await asyncio.wait_for(
                self.fs._cat_file(f"{self.root}/{path}"), self._deadline(size)
            )
        except FileNotFoundError:
            return None
        return data

    async def _create(self, path: str, data: bytes) -> bool:
        """Write ``path`` unless it exists; returns whether this call wrote it."""
        for attempt in range(3):
            try:
                await asyncio.wait_for(
                    self.fs._pipe_file(f"{self.root}/{path}", data, mode="create"),
                    self._deadline(len(data)),
                )
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                # S3 answers 409 to a conditional write while another to the same key is under
                # way: the other one is about to win, so look again in a moment
                if not _in_progress(exc) or attempt == 2:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        return False

    def _deadline(self, size: int) -> float:
        return self.timeout + size / 1_000_000  # at least 1 MB/s for a large blob

    async def _record(self, key: str) -> dict[str, Any] | None:
        raw = await self._get(record_name(key))
        if raw is None:
            return None
        meta = _parse_record(key, raw)
        if meta is None:
            self.corrupt.append(key)
        return meta

    async def _entry(self, key: str) -> Entry | None:
        meta = await self._record(key)
        if meta is None:
            return None
        names = [(None, meta["digest"]), *(meta.get("attachments") or {}).items()]
        sizes = {meta["digest"]: int(meta.get("size") or 0)}
        blobs = await asyncio.gather(*[self._blob(d, sizes.get(d, 0)) for _, d in names])
        if any(blob is None for blob in blobs):
            self.corrupt.append(key)
            return None
        data = blobs[0] or b""
        attachments = {str(n): b or b"" for (n, _), b in zip(names[1:], blobs[1:], strict=True)}
        return Entry(key, meta, data, attachments)

    async def _blob(self, value: str, size: int) -> bytes | None:
        """The bytes with digest ``value``, verified; None if missing or not those bytes."""
        if value == EMPTY:
            return b""
        data = await self._get(blob_name(value), size)
        if data is None or digest(data) != value:
            return None
        self._pushed.add(value)
        return data

    async def _push(self, entry: Entry) -> dict[str, Any]:
        blobs = {entry.meta["digest"]: entry.data}
        for name, value in (entry.meta.get("attachments") or {}).items():
            blobs[value] = entry.attachments[name]
        missing = {d: b for d, b in blobs.items() if d != EMPTY and d not in self._pushed}
        await asyncio.gather(*[self._create(blob_name(d), b) for d, b in missing.items()])
        self._pushed.update(missing)
        record = {"format": RECORD_FORMAT, "key": entry.key, "meta": entry.meta}
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        if await self._create(record_name(entry.key), body):
            return entry.meta
        winner = await self._record(entry.key)  # another writer was first: theirs is the result
        if winner is None:
            raise OSError(f"the record of {entry.key} exists but cannot be read")
        return winner


def _timeout_from_env() -> float:
    text = os.environ.get("GEMFLOW_REMOTE_TIMEOUT") or str(DEFAULT_TIMEOUT)
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 3600:
        raise RemoteError(
            f"GEMFLOW_REMOTE_TIMEOUT must be seconds between 0 and 3600, not {text!r}"
        )
    return seconds


def _in_progress(exc: OSError) -> bool:
    """Whether S3 refused a create-only write because another to the same key is under way."""
    response = getattr(exc.__cause__, "response", None) or {}
    return (response.get("Error") or {}).get("Code") == "ConditionalRequestConflict"


def _parse_record(key: str, raw: bytes) -> dict[str, Any] | None:
    """A record's metadata if it is well formed and is ``key``'s; else None."""
    try:
        record = json.loads(raw)
        meta = record["meta"]
        attachments = meta.get("attachments") or {}
        ok = (
            record.get("format") == RECORD_FORMAT
            and record.get("key") == key
            and isinstance(meta, dict)
            and isinstance(attachments, dict)
            and isinstance(meta.get("size", 0), int)
            and all(isinstance(d, str) and _DIGEST.match(d) for d in blob_digests(meta))
            and all(isinstance(name, str) for name in attachments)
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return meta if ok else None


async def _gather(work: list[Awaitable[T]]) -> list[T]:
    """Await everything, ``CONCURRENCY`` at a time; the first failure is raised."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: Awaitable[T]) -> T:
        async with gate:
            return await item

    return list(await asyncio.gather(*[one(item) for item in work]))


def _filesystem(scheme: str, options: dict[str, Any], timeout: float) -> Any:
    protocol, extra = SCHEMES[scheme]
    try:
        if protocol == "s3":
            import s3fs

            config = {
                "connect_timeout": min(timeout, 5.0),
                "read_timeout": timeout,
                "retries": {"mode": "standard", "total_max_attempts": 2},
                "max_pool_connections": CONCURRENCY,
                **options.pop("config_kwargs", {}),
            }
            fs = s3fs.S3FileSystem(
                skip_instance_cache=True,
                use_listings_cache=False,
                max_concurrency=1,  # one GET per object: no HEAD first to size it
                config_kwargs=config,
                **options,
            )
            fs.retries = 2  # s3fs's own retries, on top of botocore's: a dead remote fails fast
            return fs
        if os.environ.get("STORAGE_EMULATOR_HOST"):  # a GCS emulator: no credentials to find
            options.setdefault("token", "anon")
        return _gcs_client()(skip_instance_cache=True, requests_timeout=timeout, **options)
    except ImportError as exc:
        raise RemoteError(
            f"a {scheme}:// remote needs {exc.name}: pip install 'gemflow[{extra}]'"
        ) from exc
    except Exception as exc:  # bad credentials or options, found while making the client
        raise RemoteError(f"{scheme}:// remote: {_failure(exc, timeout)}") from exc


@functools.cache
def _gcs_client() -> Any:
    """gcsfs's plain client (its default class first probes gRPC features for zonal and
    hierarchical buckets, which plain object reads and writes do not need), retrying a failed
    request once rather than five times with growing sleeps: a dead remote must fail fast."""
    from gcsfs.core import GCSFileSystem
    from gcsfs.retry import retry_request

    unwrapped = getattr(GCSFileSystem._request, "__wrapped__", None)
    if unwrapped is None:
        return GCSFileSystem

    class Client(GCSFileSystem):
        _request = retry_request(retries=2)(unwrapped)

    return Client


def _failure(exc: BaseException, timeout: float) -> str:
    """One line saying why the remote did not answer: the one place its errors are read."""
    if isinstance(exc, RemoteError):
        return str(exc)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, PermissionError) or "403" in str(exc) or "Forbidden" in str(exc):
        return f"access denied ({_first_line(exc)})"
    text = _first_line(exc)
    if "connect" in text.lower():
        return f"cannot connect ({text})"
    return f"{type(exc).__name__}: {text}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
