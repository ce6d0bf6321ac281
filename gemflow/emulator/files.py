"""The Files API: resumable uploads, file resources, and downloads of generated files.

google-genai's ``files.upload`` speaks Google's resumable protocol: ``POST /upload/{v}/files``
with ``X-Goog-Upload-Protocol: resumable``, ``X-Goog-Upload-Command: start``, the size and type in
``X-Goog-Upload-Header-Content-Length``/``-Type`` and ``{"file": {display_name, mime_type,
size_bytes}}`` (snake_case) as the body; the answer carries the session's absolute
``X-Goog-Upload-URL``. Then 8 MB chunks are POSTed to that URL, without the API key (the URL is
the credential), ``X-Goog-Upload-Command: upload`` with ``X-Goog-Upload-Offset``; the last says
``upload, finalize`` and gets ``X-Goog-Upload-Status: final`` and ``{"file": File}``. Every chunk
answer must carry ``X-Goog-Upload-Status``: without it the SDK retries the chunk, sleeping.

Files live in a temporary folder until the emulator stops; nothing is held in memory but their
metadata. Batch jobs write their output files here (source ``GENERATED``, with a ``downloadUri``);
only those can be downloaded, as on the real service (the SDK says uploaded files can't be).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from gemflow.emulator.wire import ApiFailure, Reply, bad_request, dump, first, timestamp

MAX_FILE_BYTES = 2 * 1024**3  # the Files API's limit per file, and the Batch API's per input file
FILE_TTL_SECONDS = 48 * 3600.0
CHUNK_GRANULARITY = 8 * 1024 * 1024
_FILE_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_DEFAULT_PAGE, _MAX_PAGE = 10, 100


@dataclass(frozen=True)
class StoredFile:
    """A file's metadata; its bytes are at ``path``."""

    name: str
    display_name: str | None
    mime_type: str
    size: int
    sha256: bytes
    created: float
    source: str  # "UPLOADED" or "GENERATED"
    path: Path = field(repr=False)
    seq: int = field(repr=False, default=0)

    def resource(self, origin: str, version: str) -> dict[str, Any]:
        """The File resource as the API returns it (camelCase, int64 as a string)."""
        file_id = self.name.removeprefix("files/")
        body: dict[str, Any] = {"name": self.name}
        if self.display_name:
            body["displayName"] = self.display_name
        body.update(
            mimeType=self.mime_type,
            sizeBytes=str(self.size),
            createTime=timestamp(self.created),
            updateTime=timestamp(self.created),
            expirationTime=timestamp(self.created + FILE_TTL_SECONDS),
            # The service sends the hex digest, base64-encoded.
            sha256Hash=base64.b64encode(self.sha256.hex().encode()).decode(),
            uri=f"{origin}/{version}/files/{file_id}",
            state="ACTIVE",
            source=self.source,
        )
        if self.source == "GENERATED":
            body["downloadUri"] = f"{origin}/download/{version}/files/{file_id}:download?alt=media"
        return body


@dataclass
class _Upload:
    id: str
    name: str
    display_name: str | None
    mime_type: str
    declared: int | None
    version: str
    path: Path
    received: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)


class FileWriter:
    """Writes a generated file line by line; :meth:`FileStore.commit` makes it a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out: IO[bytes] = path.open("wb")
        self._hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._out.write(data)
        self._hasher.update(data)
        self.size += len(data)

    def close(self) -> bytes:
        self._out.close()
        return self._hasher.digest()

    def discard(self) -> None:
        self._out.close()
        self.path.unlink(missing_ok=True)


class FileStore:
    """Every file and upload session of one emulator, on disk in a temporary folder."""

    def __init__(self, *, max_bytes: int = MAX_FILE_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._files: dict[str, StoredFile] = {}
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._folder: Path | None = None

    # ----------------------------------------------------------------------- uploads

    def start_upload(
        self, version: str, payload: dict[str, Any], headers: Mapping[str, str], origin: str
    ) -> Reply:
        """The ``start`` request: a session and its upload URL, or ApiFailure."""
        if headers.get("x-goog-upload-protocol", "").lower() != "resumable":
            raise bad_request(
                "The emulator supports only resumable uploads "
                "(X-Goog-Upload-Protocol: resumable), as google-genai sends them."
            )
        if _commands(headers) != {"start"}:
            raise bad_request("A new upload must start with X-Goog-Upload-Command: start.")
        meta = first(payload, "file") or {}
        if not isinstance(meta, dict):
            raise bad_request("file must be an object", "file")
        declared = _declared_size(headers, meta)
        if declared is not None and declared > self.max_bytes:
            raise bad_request(
                f"The file is too large: {declared} bytes; the limit is {self.max_bytes} bytes.",
                "file.size_bytes",
            )
        mime_type = (
            first(meta, "mimeType", "mime_type")
            or headers.get("x-goog-upload-header-content-type")
            or "application/octet-stream"
        )
        upload_id = secrets.token_urlsafe(24)
        upload = _Upload(
            id=upload_id,
            name=self._new_name(first(meta, "name")),
            display_name=first(meta, "displayName", "display_name"),
            mime_type=str(mime_type),
            declared=declared,
            version=version,
            path=self._folder_path() / f"upload-{secrets.token_hex(8)}",
        )
        upload.path.touch()
        with self._lock:
            self._uploads[upload_id] = upload
        url = f"{origin}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        return Reply(
            200,
            b"",
            headers={
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-URL": url,
                "X-Goog-Upload-Chunk-Granularity": str(CHUNK_GRANULARITY),
            },
        )

    def upload_chunk(
        self, upload_id: str, headers: Mapping[str, str], body: bytes, origin: str
    ) -> Reply:
        """One request to a session's upload URL: ``upload``, ``finalize``, ``query``, ``cancel``."""
        with self._lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise _final(ApiFailure(404, "No such upload session (or it has finished)."))
        commands = _commands(headers)
        if "cancel" in commands:
            self._end_upload(upload)
            return Reply(200, b"", headers={"X-Goog-Upload-Status": "cancelled"})
        if "query" in commands:
            return _active(upload)
        if not commands <= {"upload", "finalize"} or not commands:
            raise _final(bad_request(f"Unknown X-Goog-Upload-Command: {sorted(commands)}"))
        if "upload" in commands:
            self._append(upload, headers, body)
        if "finalize" not in commands:
            return _active(upload)
        stored = self._finish(upload)
        return Reply(
            200,
            dump({"file": stored.resource(origin, upload.version)}),
            headers={"X-Goog-Upload-Status": "final"},
        )

    def _append(self, upload: _Upload, headers: Mapping[str, str], body: bytes) -> None:
        try:
            offset = int(headers.get("x-goog-upload-offset", upload.received))
        except ValueError:
            raise _final(bad_request("Invalid X-Goog-Upload-Offset.")) from None
        if offset != upload.received:
            raise _final(
                bad_request(f"Upload offset {offset} is not the {upload.received} bytes received.")
            )
        total = upload.received + len(body)
        limit = (
            min(upload.declared, self.max_bytes) if upload.declared is not None else self.max_bytes
        )
        if total > limit:
            self._end_upload(upload)
            raise _final(bad_request(f"The upload is larger than its limit of {limit} bytes."))
        with upload.path.open("ab") as out:
            out.write(body)
        upload.hasher.update(body)
        upload.received = total

    def _finish(self, upload: _Upload) -> StoredFile:
        if upload.declared is not None and upload.received != upload.declared:
            self._end_upload(upload)
            raise _final(
                bad_request(
                    f"The upload ended after {upload.received} bytes; "
                    f"{upload.declared} were announced."
                )
            )
        stored = StoredFile(
            name=upload.name,
            display_name=upload.display_name,
            mime_type=upload.mime_type,
            size=upload.received,
            sha256=upload.hasher.digest(),
            created=time.time(),
            source="UPLOADED",
            path=upload.path,
        )
        with self._lock:
            self._uploads.pop(upload.id, None)
            if stored.name in self._files:  # taken while uploading
                upload.path.unlink(missing_ok=True)
                raise _final(ApiFailure(409, f"File {stored.name} already exists."))
            stored = replace(stored, seq=next(self._seq))
            self._files[stored.name] = stored
        return stored

    def _end_upload(self, upload: _Upload) -> None:
        with self._lock:
            self._uploads.pop(upload.id, None)
        upload.path.unlink(missing_ok=True)

    def _new_name(self, requested: Any) -> str:
        if requested is None:
            return f"files/{secrets.token_hex(6)}"
        file_id = str(requested).removeprefix("files/")
        if not _FILE_ID.match(file_id):
            raise bad_request(
                f"Invalid file name {requested!r}: up to 40 lowercase letters, digits and dashes, "
                "not starting or ending with a dash.",
                "file.name",
            )
        with self._lock:
            taken = f"files/{file_id}" in self._files
        if taken:
            raise ApiFailure(409, f"File files/{file_id} already exists.")
        return f"files/{file_id}"

    # ----------------------------------------------------------------------- generated files

    def writer(self) -> FileWriter:
        """A new generated file, written in place; :meth:`commit` or ``discard`` it."""
        return FileWriter(self._folder_path() / f"generated-{secrets.token_hex(8)}")

    def commit(
        self, writer: FileWriter, name: str, *, display_name: str, mime_type: str
    ) -> StoredFile:
        digest = writer.close()
        stored = StoredFile(
            name=name,
            display_name=display_name,
            mime_type=mime_type,
            size=writer.size,
            sha256=digest,
            created=time.time(),
            source="GENERATED",
            path=writer.path,
            seq=next(self._seq),
        )
        with self._lock:
            self._files[name] = stored
        return stored

    # ----------------------------------------------------------------------- resources

    def get(self, name: str) -> StoredFile:
        """The file called ``files/ID`` (or ``ID``), or ApiFailure(403) as the service words it."""
        name = name if name.startswith("files/") else f"files/{name}"
        with self._lock:
            stored = self._files.get(name)
        if stored is None:
            raise ApiFailure(
                403, f"You do not have permission to access the File {name} or it may not exist."
            )
        return stored

    def delete(self, name: str) -> None:
        stored = self.get(name)
        with self._lock:
            self._files.pop(stored.name, None)
        # A batch job reading it keeps its open handle; the bytes go when it closes.
        stored.path.unlink(missing_ok=True)

    def download(self, name: str, query: Mapping[str, str]) -> Reply:
        stored = self.get(name)
        if query.get("alt") != "media":
            raise bad_request("Downloads need ?alt=media.", "alt")
        if stored.source != "GENERATED":
            raise bad_request(
                f"Only generated files can be downloaded; {stored.name} was uploaded."
            )
        return Reply(200, b"", stored.mime_type, file=stored.path)

    def page(self, query: Mapping[str, str], origin: str, version: str) -> dict[str, Any]:
        """A page of ``files.list``, newest first, and the token of the next page."""
        size = page_size(query.get("pageSize"), _DEFAULT_PAGE, _MAX_PAGE)
        after = page_token(query.get("pageToken"))
        with self._lock:
            files = sorted(self._files.values(), key=lambda f: f.seq, reverse=True)
        files = [f for f in files if after is None or f.seq < after]
        body: dict[str, Any] = {"files": [f.resource(origin, version) for f in files[:size]]}
        if len(files) > size:
            body["nextPageToken"] = make_page_token(files[size - 1].seq)
        return body

    def snapshot(self) -> list[StoredFile]:
        with self._lock:
            return sorted(self._files.values(), key=lambda f: f.seq)

    def close(self) -> None:
        """Forget every file and remove the folder (the emulator is stopping)."""
        with self._lock:
            self._files.clear()
            self._uploads.clear()
            folder, self._folder = self._folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def _folder_path(self) -> Path:
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="gemflow-emulator-files-"))
            return self._folder


def make_page_token(seq: int) -> str:
    """An opaque token: "continue after the resource numbered ``seq``" (lists are newest first)."""
    return base64.urlsafe_b64encode(f"after:{seq}".encode()).decode().rstrip("=")


def page_token(token: str | None) -> int | None:
    """The sequence number a page token continues after; ApiFailure(400) if it is not ours."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, seq = text.partition(":")
        if prefix != "after":
            raise ValueError(text)
        return int(seq)
    except ValueError:
        raise bad_request(f"Invalid page token {token!r}.", "page_token") from None


def page_size(value: str | None, default: int, maximum: int) -> int:
    """``pageSize`` as asked, the default for 0 or none, at most ``maximum``."""
    if value is None or value == "":
        return default
    try:
        size = int(value)
    except ValueError:
        raise bad_request(f"Invalid page size {value!r}.", "page_size") from None
    if size < 0:
        raise bad_request(f"Invalid page size {value!r}.", "page_size")
    return min(size or default, maximum)


def _commands(headers: Mapping[str, str]) -> set[str]:
    raw = headers.get("x-goog-upload-command", "")
    return {c.strip().lower() for c in raw.split(",") if c.strip()}


def _declared_size(headers: Mapping[str, str], meta: dict[str, Any]) -> int | None:
    raw = headers.get("x-goog-upload-header-content-length") or first(
        meta, "sizeBytes", "size_bytes"
    )
    if raw is None:
        return None
    try:
        size = int(raw)
    except (TypeError, ValueError):
        raise bad_request(f"Invalid upload size {raw!r}.", "file.size_bytes") from None
    if size < 0:
        raise bad_request(f"Invalid upload size {raw!r}.", "file.size_bytes")
    return size


def _active(upload: _Upload) -> Reply:
    return Reply(
        200,
        b"",
        headers={
            "X-Goog-Upload-Status": "active",
            "X-Goog-Upload-Size-Received": str(upload.received),
        },
    )


def _final(failure: ApiFailure) -> ApiFailure:
    """An error to an upload URL says the session is over, so the SDK raises instead of retrying."""
    failure.headers["X-Goog-Upload-Status"] = "final"
    return failure
