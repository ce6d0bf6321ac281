"""Batch jobs: ``batchGenerateContent`` and the ``batches`` resource, each job in its own thread.

The wire, as google-genai 3.6.1 reads and writes it (``batches.py``, ``_transformers.py``):

- create: ``POST /{v}/models/{model}:batchGenerateContent`` with ``{"batch": {"displayName",
  "inputConfig": {"requests": {"requests": [{"request": GenerateContentRequest, "metadata":
  {...}}]}}}}`` or ``"inputConfig": {"fileName": "files/ID"}``, a JSONL file of lines
  ``{"key": K, "request": GenerateContentRequest}`` (or ``metadata`` instead of ``key``);
- get, cancel, delete: ``GET``/``POST :cancel``/``DELETE /{v}/batches/{id}``; list:
  ``GET /{v}/batches?pageSize=&pageToken=`` → ``{"operations": [...], "nextPageToken"}``;
- every job is a google.longrunning Operation: ``{"name": "batches/ID", "metadata":
  GenerateContentBatch, "done", "response" | "error"}``. The SDK reads only ``name`` and, from
  ``metadata``: ``displayName``, ``state`` (``BATCH_STATE_X``, which it renames ``JOB_STATE_X``),
  ``createTime``, ``updateTime``, ``endTime``, ``model`` and ``output`` (``responsesFile``, or
  ``inlinedResponses.inlinedResponses``: ``{"response" | "error", "metadata"}`` in request
  order). It ignores ``done``, ``error`` (so ``BatchJob.error`` stays None) and ``batchStats``.

Items are answered by the same :class:`~gemflow.emulator.answer.Answerer` as ``generateContent``
(same pictures, takes counted alike), one at a time; a file job writes each output line to disk
as it goes, so it holds one item's images at a time. Timings and faults: ``batch_faults.py``.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import IO, Any

from gemflow.emulator.answer import Answerer
from gemflow.emulator.batch_faults import ITEM_ERRORS, BatchFaults, ItemFaults
from gemflow.emulator.catalog import check_request
from gemflow.emulator.faults import MARKER
from gemflow.emulator.files import FileStore, FileWriter, make_page_token, page_size, page_token
from gemflow.emulator.wire import (
    ApiFailure,
    Reply,
    bad_request,
    dump,
    first,
    parse_generate,
    timestamp,
)
from gemflow.models import ModelInfo

MAX_INLINE_BYTES = 20 * 1024 * 1024  # the real limit of an inline batch request
ENDED = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."
_DEFAULT_PAGE, _MAX_PAGE = 50, 1000


@dataclass(frozen=True)
class BatchInfo:
    """What a test can see of a job: ``state`` without its prefix (``"SUCCEEDED"``), counts, and
    one outcome per answered item (``"ok"``, a content fault such as ``"image_safety"``,
    ``"error 14"``, ``"missing"``)."""

    name: str
    display_name: str | None
    model: str
    state: str
    source: str  # "inline" or "file"
    input_file: str | None
    output_file: str | None
    item_count: int
    succeeded: int
    failed: int
    fault: str | None
    outcomes: tuple[str, ...]


@dataclass
class _Job:
    number: int
    name: str
    display_name: str | None
    info: ModelInfo
    fault: str | None
    item_count: int
    requests: list[dict[str, Any]] | None = None  # inline items, until answered
    input_file: str | None = None
    input: IO[bytes] | None = None
    state: str = "PENDING"
    created: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    running_since: float | None = None
    updated: float = 0.0
    ended: float | None = None
    error: dict[str, Any] | None = None
    responses: list[dict[str, Any]] | None = None
    output_file: str | None = None
    succeeded: int = 0
    failed: int = 0
    outcomes: list[str] = field(default_factory=list)
    deleted: bool = False
    wake: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.updated = self.created


class Batches:
    """The jobs of one emulator."""

    def __init__(self, *, answerer: Answerer, files: FileStore, faults: BatchFaults) -> None:
        self.answerer = answerer
        self.files = files
        self.faults = faults
        self._jobs: dict[str, _Job] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._stopped = False

    # ----------------------------------------------------------------------- endpoints

    def create(self, info: ModelInfo, payload: dict[str, Any], body_size: int) -> dict[str, Any]:
        """Queue a job; its Operation, PENDING. ApiFailure(400/403) for what the service refuses."""
        batch = first(payload, "batch")
        if not isinstance(batch, dict):
            raise bad_request("batch is required", "batch")
        config = first(batch, "inputConfig", "input_config")
        if not isinstance(config, dict):
            raise bad_request("batch.input_config is required", "batch.input_config")
        inline = first(config, "requests")
        file_name = first(config, "fileName", "file_name")
        if (inline is None) == (file_name is None):
            raise bad_request(
                "batch.input_config needs exactly one of requests and file_name",
                "batch.input_config",
            )
        display_name = first(batch, "displayName", "display_name")
        job = _Job(
            number=0,
            name=f"batches/{secrets.token_hex(12)}",
            display_name=None if display_name is None else str(display_name),
            info=info,
            fault=None,
            item_count=0,
        )
        if inline is not None:
            if body_size > MAX_INLINE_BYTES:
                raise bad_request(
                    f"Request payload size exceeds the limit: {MAX_INLINE_BYTES} bytes."
                )
            job.requests = _inline_requests(inline)
            job.item_count = len(job.requests)
        else:
            stored = self.files.get(str(file_name))
            job.input_file = stored.name
            with stored.path.open("rb") as counting:
                job.item_count = sum(1 for line in counting if line.strip())
        thread = threading.Thread(target=self._run, args=(job,), name=f"gemflow-{job.name}")
        thread.daemon = True
        with self._lock:
            if self._stopped:
                raise ApiFailure(503, "The emulator is stopping.")
            # Numbered (item faults are seeded by it) and given its fault only once accepted.
            job.number = next(self._numbers)
            job.fault = self.faults.job_fault()
            if job.input_file is not None:
                job.input = self.files.get(job.input_file).path.open("rb")
            self._jobs[job.name] = job
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            reply = self._operation(job, with_output=True)
        thread.start()
        return reply

    def get(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            return self._operation(self._find(job_id), with_output=True)

    def page(self, query: dict[str, str]) -> dict[str, Any]:
        """A page of ``batches.list``, newest first; outputs are left out, as the service does."""
        size = page_size(query.get("pageSize"), _DEFAULT_PAGE, _MAX_PAGE)
        after = page_token(query.get("pageToken"))
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.number, reverse=True)
            jobs = [j for j in jobs if after is None or j.number < after]
            body: dict[str, Any] = {
                "operations": [self._operation(j, with_output=False) for j in jobs[:size]]
            }
        if len(jobs) > size:
            body["nextPageToken"] = make_page_token(jobs[size - 1].number)
        return body

    def cancel(self, job_id: str) -> dict[str, Any]:
        """CANCELLED, unless it has already ended: then it stays as it is."""
        with self._lock:
            job = self._find(job_id)
            self._end(job, "CANCELLED", error={"code": 1, "message": "CANCELLED"})
        job.wake.set()
        return {}

    def delete(self, job_id: str) -> dict[str, Any]:
        """Forget the job; a job still running stops (nobody can read its result any more)."""
        with self._lock:
            job = self._find(job_id)
            del self._jobs[job.name]
            job.deleted = True
        job.wake.set()
        return {}

    def snapshot(self) -> list[BatchInfo]:
        with self._lock:
            return [_info(job) for job in sorted(self._jobs.values(), key=lambda j: j.number)]

    def stop(self) -> None:
        """Interrupt every job (they stay in the state they had) and wait for their threads."""
        with self._lock:
            self._stopped = True
            jobs, threads = list(self._jobs.values()), list(self._threads)
        for job in jobs:
            job.wake.set()
        for thread in threads:
            thread.join(timeout=10)
        with self._lock:
            self._threads.clear()
            self._stopped = False

    # ----------------------------------------------------------------------- the job's thread

    def _run(self, job: _Job) -> None:
        try:
            self._run_job(job)
        except Exception:  # a bug in the emulator must not leave a job running for ever
            traceback.print_exc()
            with self._lock:
                self._end(job, "FAILED", error={"code": 13, "message": "Emulator error."})
        finally:
            if job.input is not None:
                job.input.close()

    def _run_job(self, job: _Job) -> None:
        faults = self.faults
        deadline = job.started + faults.expire_seconds
        if self._sleep(job, min(job.started + faults.pending_seconds, deadline)):
            return
        if job.fault == "stuck_pending":
            self._expire_at(job, deadline)
            return
        if not self._move(job, "RUNNING"):
            return
        if job.fault == "stuck_running":
            self._expire_at(job, deadline)
            return
        if job.fault in ("fail", "expire"):
            if not self._sleep(job, self._finish_time(job, deadline)):
                with self._lock:
                    if job.fault == "fail":
                        self._end(job, "FAILED", error=_job_failure())
                    else:
                        self._end(job, "EXPIRED", error=_expiry())
            return
        items = faults.items(job.number)
        if job.requests is not None:
            self._answer_inline(job, items, deadline)
        else:
            self._answer_file(job, items, deadline)

    def _answer_inline(self, job: _Job, items: ItemFaults, deadline: float) -> None:
        requests, responses = job.requests or [], []
        for index, item in enumerate(requests):
            if self._interrupted(job, deadline):
                return
            outcome, body, missing = self._answer(job, items, index, item.get("request"))
            entry: dict[str, Any] = {outcome: body}
            metadata = item.get("metadata")
            if metadata is not None and not missing:
                entry["metadata"] = metadata
            responses.append(entry)
        job.requests = None
        self._finish(job, deadline, responses=responses)

    def _answer_file(self, job: _Job, items: ItemFaults, deadline: float) -> None:
        assert job.input is not None
        writer = self.files.writer()
        try:
            index = 0
            for raw in job.input:
                if not raw.strip():
                    continue
                if self._interrupted(job, deadline):
                    writer.discard()
                    return
                line = self._answer_line(job, items, index, raw)
                if line is not None:
                    writer.write(dump(line) + b"\n")
                index += 1
        except BaseException:
            writer.discard()
            raise
        self._finish(job, deadline, writer=writer)

    def _answer_line(
        self, job: _Job, items: ItemFaults, index: int, raw: bytes
    ) -> dict[str, Any] | None:
        """One output line for one input line; None if the fault ``missing`` leaves it out."""
        try:
            line = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            line = None
        if not isinstance(line, dict):
            items.choose(index)  # keep the draws in step with the items
            error = bad_request(f"Line {index + 1} of {job.input_file} is not a JSON object.")
            self._count(job, "error 3")
            return {"error": error.status()}
        outcome, body, missing = self._answer(job, items, index, line.get("request"))
        if missing:
            return None
        out: dict[str, Any] = {}
        for name in ("key", "metadata"):
            if line.get(name) is not None:
                out[name] = line[name]
        out[outcome] = body
        return out

    def _answer(
        self, job: _Job, items: ItemFaults, index: int, payload: Any
    ) -> tuple[str, dict[str, Any], bool]:
        """``("response", answer, missing)`` or ``("error", google.rpc.Status, False)``."""
        fault = items.choose(index)
        record: dict[str, Any] = {"fault": None}
        try:
            if not isinstance(payload, dict):
                raise bad_request(f"requests[{index}].request must be an object", "request")
            request = parse_generate(payload)
            text_only = check_request(job.info, request)
            if MARKER.search(request.prompt):
                fault = None  # a marker in the prompt decides, as for interactive requests
            if fault in ITEM_ERRORS:
                self._count(job, f"error {fault}")
                return "error", self.faults.item_error(fault), False
            answer = self.answerer.answer(
                job.info, request, record, text_only=text_only, batch=True
            )
            if isinstance(answer, Reply):  # a broken-answer marker: an item cannot be one
                raise ApiFailure(500, "An internal error has occurred.")
        except ApiFailure as failure:
            status = failure.status()
            if not self.faults.error_details:  # e.g. a 429 marker's RetryInfo: see batch_faults
                status.pop("details", None)
            self._count(job, f"error {status['code']}")
            return "error", status, False
        missing = fault == "missing"
        self._count(job, "missing" if missing else record["fault"] or "ok")
        return "response", answer, missing

    def _count(self, job: _Job, outcome: str) -> None:
        with self._lock:
            job.outcomes.append(outcome)
            if outcome.startswith("error"):
                job.failed += 1
            else:
                job.succeeded += 1
            job.updated = time.time()

    def _finish(
        self,
        job: _Job,
        deadline: float,
        *,
        responses: list[dict[str, Any]] | None = None,
        writer: FileWriter | None = None,
    ) -> None:
        """Wait out ``running_seconds`` (from RUNNING), then SUCCEEDED with the output."""
        interrupted = self._sleep(job, self._finish_time(job, deadline))
        if interrupted or time.monotonic() >= deadline:
            if writer is not None:
                writer.discard()
            if not interrupted:
                with self._lock:
                    self._end(job, "EXPIRED", error=_expiry())
            return
        output_file = None
        if writer is not None:
            output_file = self.files.commit(
                writer,
                f"files/batch-{job.name.removeprefix('batches/')}",
                display_name=f"{job.display_name or job.name} output",
                mime_type="application/jsonl",
            ).name
        with self._lock:
            if job.state in ENDED or job.deleted:
                return
            job.responses, job.output_file = responses, output_file
            self._end(job, "SUCCEEDED")

    def _finish_time(self, job: _Job, deadline: float) -> float:
        since = job.running_since if job.running_since is not None else job.started
        return min(since + self.faults.running_seconds, deadline)

    def _sleep(self, job: _Job, until: float) -> bool:
        """Wait until the monotonic time ``until``; True if interrupted (ended, deleted, stop)."""
        while True:
            if self._interrupted(job, None):
                return True
            remaining = until - time.monotonic()
            if remaining <= 0:
                return False
            job.wake.wait(remaining)

    def _interrupted(self, job: _Job, deadline: float | None) -> bool:
        if deadline is not None and time.monotonic() >= deadline:
            with self._lock:
                self._end(job, "EXPIRED", error=_expiry())
            return True
        with self._lock:
            return self._stopped or job.deleted or job.state in ENDED

    def _expire_at(self, job: _Job, deadline: float) -> None:
        if not self._sleep(job, deadline):
            with self._lock:
                self._end(job, "EXPIRED", error=_expiry())

    def _move(self, job: _Job, state: str) -> bool:
        with self._lock:
            if job.state in ENDED or job.deleted:
                return False
            job.state, job.updated = state, time.time()
            job.running_since = time.monotonic()
            return True

    # ----------------------------------------------------------------------- helpers (locked)

    def _end(self, job: _Job, state: str, *, error: dict[str, Any] | None = None) -> None:
        """Caller holds the lock. A job that has ended keeps its end."""
        if job.state in ENDED:
            return
        job.state, job.error = state, error
        job.updated = job.ended = time.time()

    def _find(self, job_id: str) -> _Job:
        job = self._jobs.get(f"batches/{job_id.removeprefix('batches/')}")
        if job is None:
            raise ApiFailure(404, f"Batch batches/{job_id} was not found.")
        return job

    def _operation(self, job: _Job, *, with_output: bool) -> dict[str, Any]:
        """The job as a google.longrunning Operation (caller holds the lock)."""
        metadata: dict[str, Any] = {
            "@type": _TYPES + "GenerateContentBatch",
            "model": f"models/{job.info.id}",
        }
        if job.display_name is not None:
            metadata["displayName"] = job.display_name
        metadata.update(
            createTime=timestamp(job.created),
            updateTime=timestamp(job.updated),
            batchStats=_stats(job),
            state=f"BATCH_STATE_{job.state}",
            name=job.name,
        )
        if job.ended is not None:
            metadata["endTime"] = timestamp(job.ended)
        operation: dict[str, Any] = {"name": job.name, "metadata": metadata}
        if job.state not in ENDED:
            return operation
        operation["done"] = True
        if job.error is not None:
            operation["error"] = job.error
        elif with_output:
            output: dict[str, Any]
            if job.output_file is not None:
                output = {"responsesFile": job.output_file}
            else:
                output = {"inlinedResponses": {"inlinedResponses": job.responses or []}}
            metadata["output"] = output
            operation["response"] = {"@type": _TYPES + "GenerateContentBatchOutput", **output}
        return operation


def _inline_requests(holder: Any) -> list[dict[str, Any]]:
    items = first(holder, "requests") if isinstance(holder, dict) else None
    if not isinstance(items, list) or not items:
        raise bad_request(
            "batch.input_config.requests.requests must be a non-empty list",
            "batch.input_config.requests.requests",
        )
    for index, item in enumerate(items):
        where = f"batch.input_config.requests.requests[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            raise bad_request(f"{where}.request must be an object", f"{where}.request")
        if item.get("metadata") is not None and not isinstance(item["metadata"], dict):
            raise bad_request(f"{where}.metadata must be an object", f"{where}.metadata")
    return items


def _stats(job: _Job) -> dict[str, str]:
    """batchStats: int64 counts as strings, zeros left out (proto3 JSON)."""
    counts = {
        "requestCount": job.item_count,
        "successfulRequestCount": job.succeeded,
        "failedRequestCount": job.failed,
        "pendingRequestCount": max(job.item_count - job.succeeded - job.failed, 0),
    }
    return {name: str(count) for name, count in counts.items() if count}


def _job_failure() -> dict[str, Any]:
    return {"code": 13, "message": "The batch failed. (emulated fault)"}


def _expiry() -> dict[str, Any]:
    return {"code": 4, "message": "The batch expired before it could finish."}


def _info(job: _Job) -> BatchInfo:
    return BatchInfo(
        name=job.name,
        display_name=job.display_name,
        model=job.info.id,
        state=job.state,
        source="inline" if job.input_file is None else "file",
        input_file=job.input_file,
        output_file=job.output_file,
        item_count=job.item_count,
        succeeded=job.succeeded,
        failed=job.failed,
        fault=job.fault,
        outcomes=tuple(job.outcomes),
    )
