"""The request log: one record per request, kept in memory and optionally appended to a file.

Records never hold image bytes or the API key.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

from gemflow.emulator.wire import GenerateRequest


class RequestLog:
    """The records of finished requests, in the order they finished; JSON lines in a file if open."""

    def __init__(self) -> None:
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._file: IO[str] | None = None

    def records(self) -> list[dict[str, Any]]:
        """A snapshot of the records so far."""
        with self._lock:
            return [dict(record) for record in self._records]

    def open(self, path: Path) -> None:
        """Also append every record from now on to ``path``, one JSON line each."""
        self._file = path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def begin(self, method: str, path: str) -> dict[str, Any]:
        """A new record; the request's handling fills it in, :meth:`finish` keeps it."""
        return {
            "seq": next(self._seq),
            "method": method,
            "path": path,
            "endpoint": "unknown",
            "api_version": None,
            "model": None,
            "resource": None,
            "prompt": None,
            "system": None,
            "images": [],
            "image_count": 0,
            "generation_config": None,
            "api_key_present": False,
            "status": None,
            "fault": None,
            "fault_source": None,
            "started": time.time(),
            "finished": None,
        }

    def finish(self, record: dict[str, Any], status: int | None) -> None:
        record.update(status=status, finished=time.time())
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self._records.append(record)
            if self._file is not None:
                self._file.write(line)
                self._file.flush()


def path_for_log(path: str, query: dict[str, str]) -> str:
    """The request path with its query, minus any ``key`` parameter."""
    rest = {k: v for k, v in query.items() if k != "key"}
    return f"{path}?{urlencode(rest)}" if rest else path


def describe(record: dict[str, Any], request: GenerateRequest) -> None:
    """Fill the log record from a parsed request: never image bytes."""
    record.update(
        prompt=request.prompt,
        system=request.system,
        images=[
            {"mime_type": image.mime_type, "sha256": image.sha256, "bytes": len(image.data)}
            for image in request.images
        ],
        image_count=len(request.images),
        generation_config=request.config,
    )
