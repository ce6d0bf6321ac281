"""The Gemini Batch API through google-genai: half the price, answers within a day.

Requests go as a JSONL file (one line ``{"key", "request"}``, the request in the REST shape that
``generateContent`` takes), uploaded with the Files API; the answers come back as a JSONL file of
``{"key", "response"}`` or ``{"key", "error"}`` lines, streamed to disk and read line by line, so a
thousand images are never in memory at once. SDK and transport errors are translated here, as in
``gemflow.providers.gemini``; the API key never leaves the client.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.genai import types

from gemflow.errors import ApiError
from gemflow.providers.base import JOB_ENDED, ApiRequest, ApiResponse
from gemflow.providers.gemini import GeminiProvider, parse_response

RETRYABLE_CODES = {4, 8, 13, 14}  # google.rpc codes: deadline, exhausted, internal, unavailable


@dataclass(frozen=True)
class Job:
    name: str  # batches/...
    display_name: str
    state: str  # JOB_STATE_...
    output_file: str | None = None  # files/... once it succeeded
    error: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in JOB_ENDED


@dataclass(frozen=True)
class ItemError:
    """A per-item error of a batch: a google.rpc.Status."""

    code: int
    message: str

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_CODES


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def request_json(
    request: ApiRequest, *, encode: Callable[[bytes], str] = _base64
) -> dict[str, Any]:
    """``request`` in the REST shape of generateContent, as a batch line carries it."""
    parts: list[dict[str, Any]] = [{"text": request.prompt}]
    parts += [
        {"inlineData": {"mimeType": mime, "data": encode(data)}} for data, mime in request.images
    ]
    config: dict[str, Any] = {"responseModalities": list(request.modalities)}
    image = {"aspectRatio": request.aspect_ratio, "imageSize": request.image_size}
    if any(image.values()):
        config["imageConfig"] = {k: v for k, v in image.items() if v}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.seed is not None:
        config["seed"] = request.seed
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": config,
    }
    if request.system:
        body["systemInstruction"] = {"parts": [{"text": request.system}]}
    return body


def line(key: str, request: ApiRequest) -> str:
    """One line of a job's JSONL input file."""
    return json.dumps({"key": key, "request": request_json(request)}) + "\n"


def line_size(key: str, request: ApiRequest) -> int:
    """The bytes ``line(key, request)`` takes, found without encoding its images: the line is
    ASCII (JSON escapes the rest), and base64 has no character that JSON escapes."""
    bare = json.dumps({"key": key, "request": request_json(request, encode=lambda data: "")})
    return len(bare) + 1 + sum(4 * math.ceil(len(data) / 3) for data, _ in request.images)


class GeminiBatches:
    """Batch jobs on the client of ``provider`` (one client, one key, one service)."""

    def __init__(self, provider: GeminiProvider) -> None:
        self._provider = provider
        self._client = provider.client

    def submit(self, model: str, items: Iterable[tuple[str, ApiRequest]], display_name: str) -> Job:
        """Upload the items as a JSONL file and create a job of them."""
        with tempfile.TemporaryDirectory(prefix="gemflow-batch-") as folder:
            path = Path(folder) / f"{display_name}.jsonl"
            with path.open("w", encoding="utf-8") as lines:
                for key, request in items:
                    lines.write(line(key, request))
            with self._translated():
                uploaded = self._client.files.upload(
                    file=path,
                    config=types.UploadFileConfig(
                        mime_type="application/jsonl", display_name=display_name
                    ),
                )
                job = self._client.batches.create(
                    model=model,
                    src=str(uploaded.name),
                    config=types.CreateBatchJobConfig(display_name=display_name),
                )
        return self._job(job)

    @staticmethod
    def line_size(key: str, request: ApiRequest) -> int:
        """How many bytes of a job's input file ``request`` takes."""
        return line_size(key, request)

    def get(self, name: str) -> Job:
        with self._translated():
            return self._job(self._client.batches.get(name=name))

    def find(self, display_name: str) -> Job | None:
        """The job called ``display_name``, if one was created (a run that died right after
        creating it never learned its name)."""
        with self._translated():
            for job in self._client.batches.list(config=types.ListBatchJobsConfig(page_size=100)):
                if job.display_name == display_name:
                    return self._job(job)
        return None

    def cancel(self, name: str) -> None:
        with self._translated():
            self._client.batches.cancel(name=name)

    def results(self, job: Job, folder: Path) -> Iterator[tuple[str, ApiResponse | ItemError]]:
        """Each answered key with its answer or error, read from the output file streamed to
        ``folder``."""
        if job.output_file is None:
            return
        path = folder / f"{job.name.replace('/', '_')}.jsonl"
        with self._translated():
            self._client.files.download(file=job.output_file, destination=str(path))
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if (found := result_line(line)) is not None:
                    yield self._redacted(*found)
        path.unlink(missing_ok=True)

    def _translated(self) -> Any:
        return self._provider.translated_errors()

    def _job(self, job: types.BatchJob) -> Job:
        found = _job(job)
        error = self._provider.shown(found.error) if found.error is not None else None
        return dataclasses.replace(found, error=error)

    def _redacted(
        self, key: str, answer: ApiResponse | ItemError
    ) -> tuple[str, ApiResponse | ItemError]:
        if isinstance(answer, ItemError):
            return key, ItemError(answer.code, self._provider.shown(answer.message))
        return key, self._provider.redacted(answer)


def _job(job: types.BatchJob) -> Job:
    state = job.state.value if job.state is not None else "JOB_STATE_UNSPECIFIED"
    error = job.error.message if job.error is not None else None
    output = job.dest.file_name if job.dest is not None else None
    return Job(str(job.name), str(job.display_name or ""), str(state), output, error)


def result_line(text: str) -> tuple[str, ApiResponse | ItemError] | None:
    """One line of a job's output: its key, with the answer or the error. None for a line that
    is not a JSON object: the server's file is read, never trusted, and a request whose line is
    unreadable counts as unanswered (it is sent again)."""
    try:
        line = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None
    if not isinstance(line, dict):
        return None
    metadata = line.get("metadata")
    key = str(line.get("key") or (metadata.get("key") if isinstance(metadata, dict) else "") or "")
    if isinstance(line.get("error"), dict):
        error = line["error"]
        return key, ItemError(_code(error.get("code")), str(error.get("message") or ""))
    try:
        response = types.GenerateContentResponse.model_validate(line.get("response") or {})
        return key, parse_response(response)
    except ApiError as exc:
        return key, ItemError(13 if exc.retryable else 3, str(exc))
    except ValueError as exc:  # pydantic's ValidationError
        return key, ItemError(13, f"unreadable answer ({exc.__class__.__name__})")


def _code(value: Any) -> int:
    """A google.rpc code; 13 (INTERNAL, retried) when there is none that reads as one."""
    try:
        return int(value) if value else 13
    except (TypeError, ValueError):
        return 13
