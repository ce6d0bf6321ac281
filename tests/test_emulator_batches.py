"""The emulator's Batch API and Files API, spoken to by the real google-genai client over loopback."""

from __future__ import annotations

import base64
import gc
import hashlib
import io
import json
import threading
import time
import tracemalloc
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import pytest
from click.testing import CliRunner
from google import genai
from google.genai import errors, types
from PIL import Image

from gemflow.emulator import Emulator
from gemflow.emulator.batch_faults import BatchFaults
from gemflow.emulator.batches import BatchInfo
from gemflow.emulator.command import emulator_command
from gemflow.emulator.render import TEXT_CHUNK

MODEL = "gemini-3.1-flash-image"  # thinks: a thought image comes before the final one
LEGACY = "gemini-2.5-flash-image"  # no thoughts: the cheapest answers
SMALL = 1 / 16
FAST = {"running_seconds": 0.0}


@dataclass
class Api:
    emulator: Emulator
    client: genai.Client

    def raw(self, path: str) -> dict[str, Any]:
        """The JSON the emulator sends for a GET, before the SDK reads it."""
        request = urllib.request.Request(
            f"{self.emulator.url}{path}", headers={"x-goog-api-key": "test-key"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.fixture
def start() -> Iterator[Callable[..., Api]]:
    """Start emulators (small images, fast jobs unless told) with a client each; all stop."""
    apis: list[Api] = []

    def start(**batch: Any) -> Api:
        settings = {**FAST, **batch}
        scale, vary_takes = settings.pop("scale", SMALL), settings.pop("vary_takes", True)
        max_file_bytes = settings.pop("max_file_bytes", 2 * 1024**3)
        emulator = Emulator(
            scale=scale,
            vary_takes=vary_takes,
            batch_faults=BatchFaults(**settings),
            max_file_bytes=max_file_bytes,
        ).start()
        options = types.HttpOptions(base_url=emulator.url, api_version="v1beta")
        api = Api(emulator, genai.Client(api_key="test-key", http_options=options))
        apis.append(api)
        return api

    yield start
    for api in apis:
        api.client.close()
        api.emulator.stop()


@pytest.fixture
def api(start: Callable[..., Api]) -> Api:
    """A fresh emulator, for tests that read its log, its jobs or its faults."""
    return start()


@pytest.fixture(scope="module")
def shared() -> Iterator[Api]:
    """One emulator for tests that only read their own jobs' answers (a client costs ~60 ms)."""
    with Emulator(scale=SMALL, batch_faults=BatchFaults(**FAST)) as emulator:
        options = types.HttpOptions(base_url=emulator.url, api_version="v1beta")
        client = genai.Client(api_key="test-key", http_options=options)
        yield Api(emulator, client)
        client.close()


def info_of(api: Api, name: str | None) -> BatchInfo:
    (found,) = [job for job in api.emulator.batches() if job.name == name]
    return found


def item(prompt: str, key: str | None = None, **config: Any) -> dict[str, Any]:
    """One inline request as a caller writes it for ``batches.create``."""
    request: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "config": {"response_modalities": ["IMAGE"], **config},
    }
    if key is not None:
        request["metadata"] = {"key": key}
    return request


def line(key: str, prompt: str, **generation_config: Any) -> dict[str, Any]:
    """One JSONL input line, as gemflow writes it: camelCase REST JSON."""
    return {
        "key": key,
        "request": {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"responseModalities": ["IMAGE"], **generation_config},
        },
    }


def upload(client: genai.Client, lines: list[dict[str, Any]], **config: Any) -> types.File:
    data = b"".join(json.dumps(entry).encode() + b"\n" for entry in lines)
    return client.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl", **config})


def wait(client: genai.Client, name: str, *, timeout: float = 15.0) -> types.BatchJob:
    """Poll ``batches.get`` until the job has ended (there is no such helper in the SDK)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.batches.get(name=name)
        if job.done:
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"{name} still {job.state} after {timeout} s")
        time.sleep(0.01)


def reach(api: Api, state: str, *, timeout: float = 15.0) -> None:
    """Wait until the emulator's only job is in ``state`` (without a request the SDK parses)."""
    deadline = time.monotonic() + timeout
    while api.emulator.batches()[0].state != state:
        if time.monotonic() > deadline:
            pytest.fail(f"the job is still {api.emulator.batches()[0].state}, not {state}")
        time.sleep(0.01)


def run_inline(api: Api, items: list[dict[str, Any]], model: str = MODEL) -> types.BatchJob:
    job = api.client.batches.create(model=model, src=items, config={"display_name": "test"})
    assert job.name is not None
    return wait(api.client, job.name)


def run_file(api: Api, lines: list[dict[str, Any]], model: str = MODEL) -> list[dict[str, Any]]:
    """Upload the lines, run a file job to SUCCEEDED, and read its output lines."""
    uploaded = upload(api.client, lines)
    assert uploaded.name is not None
    job = api.client.batches.create(model=model, src=uploaded.name)
    assert job.name is not None
    done = wait(api.client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None and done.dest.file_name is not None
    output = api.client.files.download(file=done.dest.file_name)
    return [json.loads(text) for text in output.decode().splitlines()]


def inline_responses(job: types.BatchJob) -> list[types.InlinedResponse]:
    assert job.dest is not None and job.dest.inlined_responses is not None
    return job.dest.inlined_responses


def final_image(response: types.GenerateContentResponse | None) -> bytes:
    assert response is not None
    images = [p for p in response.parts or [] if p.inline_data and not p.thought]
    assert images, "no image in the response"
    data = images[-1].inline_data.data  # type: ignore[union-attr]
    assert isinstance(data, bytes)
    return data


def image_of_line(entry: dict[str, Any]) -> bytes:
    """The final image of an output line (REST JSON: standard base64, camelCase)."""
    parts = entry["response"]["candidates"][0]["content"]["parts"]
    finals = [p for p in parts if "inlineData" in p and not p.get("thought")]
    return base64.b64decode(finals[-1]["inlineData"]["data"])


def prompt_drawn(png: bytes) -> str:
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        return str(im.info[TEXT_CHUNK])


# --------------------------------------------------------------------------- inline jobs


def test_inline_job_goes_pending_then_running_then_succeeds(start: Callable[..., Api]) -> None:
    api = start(pending_seconds=0.15, running_seconds=0.15)
    job = api.client.batches.create(model=MODEL, src=[item("A fox")])
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.name is not None
    seen = [job.state]
    while not job.done:
        time.sleep(0.01)
        job = api.client.batches.get(name=job.name)
        if job.state != seen[-1]:
            seen.append(job.state)
    assert seen == [
        types.JobState.JOB_STATE_PENDING,
        types.JobState.JOB_STATE_RUNNING,
        types.JobState.JOB_STATE_SUCCEEDED,
    ]


def test_inline_responses_come_in_request_order_with_their_images_and_metadata(shared: Api) -> None:
    prompts = [f"Lighthouse number {n}" for n in range(5)]
    job = run_inline(shared, [item(p, key=f"k{n}") for n, p in enumerate(prompts)])
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    responses = inline_responses(job)
    assert [r.metadata for r in responses] == [{"key": f"k{n}"} for n in range(5)]
    assert [prompt_drawn(final_image(r.response)) for r in responses] == prompts
    assert all(r.error is None for r in responses)


def test_a_job_has_its_name_display_name_model_and_times(shared: Api) -> None:
    created = shared.client.batches.create(
        model=MODEL, src=[item("A fox")], config={"display_name": "nightly-42"}
    )
    assert created.name is not None and created.name.startswith("batches/")
    job = wait(shared.client, created.name)
    assert job.name == created.name
    assert job.display_name == "nightly-42"
    assert job.model == f"models/{MODEL}"
    assert job.create_time is not None and job.end_time is not None
    assert job.create_time <= job.end_time == job.update_time


def test_each_item_carries_usage_metadata_like_an_interactive_answer(shared: Api) -> None:
    (response,) = inline_responses(run_inline(shared, [item("A fox in the snow")]))
    assert response.response is not None
    usage = response.response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == 5  # 17 characters, about 4 a token
    assert usage.candidates_token_count == 1120  # one 1K image of gemini-3.1-flash-image
    assert usage.thoughts_token_count and usage.thoughts_token_count > 0
    assert response.response.model_version == MODEL


def test_the_operation_json_has_the_wire_shape(shared: Api) -> None:
    """What the SDK reads (and what it ignores) is there, spelled as the service spells it."""
    job = run_inline(shared, [item("A fox", key="a"), item("A cat", key="b")])
    operation = shared.raw(f"/v1beta/{job.name}")
    assert operation["done"] is True
    metadata = operation["metadata"]
    assert metadata["@type"].endswith(".GenerateContentBatch")
    assert metadata["state"] == "BATCH_STATE_SUCCEEDED"
    assert metadata["batchStats"] == {"requestCount": "2", "successfulRequestCount": "2"}
    assert metadata["createTime"].endswith("Z")
    output = metadata["output"]["inlinedResponses"]["inlinedResponses"]
    assert [entry["metadata"] for entry in output] == [{"key": "a"}, {"key": "b"}]
    assert operation["response"]["inlinedResponses"] == metadata["output"]["inlinedResponses"]


def test_both_api_versions_serve_batches(start: Callable[..., Api]) -> None:
    api = start()
    v1 = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=api.emulator.url))
    try:
        job = v1.batches.create(model=MODEL, src=[item("A fox")])
        assert job.name is not None
        assert wait(v1, job.name).state == types.JobState.JOB_STATE_SUCCEEDED
    finally:
        v1.close()
    assert {r["api_version"] for r in api.emulator.api_calls("batchGenerateContent")} == {"v1"}


# --------------------------------------------------------------------------- file jobs


def test_file_job_answers_every_key_with_a_decodable_image(shared: Api) -> None:
    lines = [
        line(f"step-{n}", f"Harbour at dawn {n}", imageConfig={"aspectRatio": "16:9"})
        for n in range(4)
    ]
    output = run_file(shared, lines)
    assert [entry["key"] for entry in output] == [f"step-{n}" for n in range(4)]
    for n, entry in enumerate(output):
        assert set(entry) == {"key", "response"}
        png = image_of_line(entry)
        assert prompt_drawn(png) == f"Harbour at dawn {n}"
        with Image.open(io.BytesIO(png)) as im:
            assert im.width > im.height  # 16:9 was read from the line's generationConfig


def test_file_lines_with_metadata_instead_of_a_key_get_it_back(shared: Api) -> None:
    output = run_file(
        shared,
        [
            {"metadata": {"step": "a"}, "request": {"contents": [{"parts": [{"text": "A"}]}]}},
            {"request": {"contents": [{"parts": [{"text": "B"}]}]}},
        ],
    )
    assert [entry.get("metadata") for entry in output] == [{"step": "a"}, None]
    assert [prompt_drawn(image_of_line(entry)) for entry in output] == ["A", "B"]


def test_the_output_file_is_a_generated_file_that_streams_to_disk(
    shared: Api, tmp_path: Path
) -> None:
    uploaded = upload(shared.client, [line("a", "A fox"), line("b", "A cat")])
    assert uploaded.name is not None
    job = wait(
        shared.client, shared.client.batches.create(model=MODEL, src=uploaded.name).name or ""
    )
    assert job.dest is not None and job.dest.file_name is not None
    output = shared.client.files.get(name=job.dest.file_name)
    assert output.source == types.FileSource.GENERATED
    assert output.download_uri is not None and output.download_uri.endswith(":download?alt=media")
    target = tmp_path / "out.jsonl"
    shared.client.files.download(file=output, destination=target)
    data = target.read_bytes()
    assert output.size_bytes == len(data)
    assert (
        output.sha256_hash == base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()
    )
    assert [json.loads(text)["key"] for text in data.splitlines()] == ["a", "b"]


def test_an_unparseable_line_is_an_item_error_not_a_failed_job(shared: Api) -> None:
    data = json.dumps(line("a", "A fox")).encode() + b"\n{not json\n"
    uploaded = shared.client.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl"})
    job = wait(
        shared.client,
        shared.client.batches.create(model=LEGACY, src=uploaded.name or "").name or "",
    )
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None and job.dest.file_name is not None
    first, second = shared.client.files.download(file=job.dest.file_name).splitlines()
    assert json.loads(first)["key"] == "a"
    assert json.loads(second)["error"]["code"] == 3


def test_a_thousand_item_file_job_holds_only_a_few_images_at_a_time(api: Api) -> None:
    """The output is written line by line to disk: memory does not grow with the images."""
    run_file(api, [line("warm-up", "Warm up")], model=LEGACY)  # one-time costs: SDK types
    uploaded = upload(api.client, [line(f"k{n}", f"Lighthouse {n}") for n in range(1000)])
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        job = api.client.batches.create(model=LEGACY, src=uploaded.name or "")
        done = wait(api.client, job.name or "", timeout=60)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert done.dest is not None and done.dest.file_name is not None
    size = api.client.files.get(name=done.dest.file_name).size_bytes or 0
    assert size > 2_000_000  # 1,000 answers with an image each
    # What grows is per-item bookkeeping (takes, read-back texts, log records): no images.
    assert peak < size / 2, f"peak {peak} bytes while writing {size} bytes of output"


# --------------------------------------------------------------------------- files


def test_upload_returns_the_file_with_its_size_type_and_hash(shared: Api) -> None:
    data = json.dumps(line("a", "A fox")).encode() + b"\n"
    uploaded = shared.client.files.upload(
        file=io.BytesIO(data), config={"mime_type": "jsonl", "display_name": "requests"}
    )
    assert uploaded.name is not None and uploaded.name.startswith("files/")
    assert uploaded.display_name == "requests"
    assert uploaded.mime_type == "jsonl"  # as the caller declared it
    assert uploaded.size_bytes == len(data)
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.source == types.FileSource.UPLOADED
    assert uploaded.download_uri is None
    assert uploaded.expiration_time is not None and uploaded.create_time is not None
    assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == 48 * 3600
    assert shared.client.files.get(name=uploaded.name) == uploaded


def test_a_large_upload_goes_in_8_mb_chunks(api: Api, tmp_path: Path) -> None:
    source = tmp_path / "big.jsonl"
    data = (b"x" * 1023 + b"\n") * (9 * 1024)  # 9 MB: two chunks
    source.write_bytes(data)
    uploaded = api.client.files.upload(file=source, config={"mime_type": "application/jsonl"})
    assert uploaded.size_bytes == len(data)
    expected = base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()
    assert uploaded.sha256_hash == expected
    offsets = [r["path"] for r in api.emulator.api_calls("uploadChunk")]
    assert len(offsets) == 2


def test_an_upload_over_the_limit_is_refused(start: Callable[..., Api]) -> None:
    api = start(max_file_bytes=100)
    with pytest.raises(errors.ClientError) as caught:
        api.client.files.upload(file=io.BytesIO(b"x" * 101), config={"mime_type": "jsonl"})
    assert caught.value.code == 400
    assert "101 bytes" in str(caught.value.message)
    assert api.emulator.files() == []


def test_uploaded_files_cannot_be_downloaded(shared: Api) -> None:
    uploaded = upload(shared.client, [line("a", "A fox")])
    with pytest.raises(ValueError, match="uploaded files can't be downloaded"):
        shared.client.files.download(file=uploaded)  # the SDK refuses a File without download_uri
    with pytest.raises(errors.ClientError) as caught:
        shared.client.files.download(
            file=uploaded.name or ""
        )  # by name it asks; the service says no
    assert caught.value.code == 400


def test_files_list_in_pages_and_delete(api: Api) -> None:
    names = [upload(api.client, [line("a", f"Fox {n}")]).name for n in range(3)]
    pager = api.client.files.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert [f.name for f in pager] == names[::-1]  # newest first, over both pages
    api.client.files.delete(name=names[0] or "")
    with pytest.raises(errors.ClientError) as caught:
        api.client.files.get(name=names[0] or "")
    assert caught.value.code == 403  # as the service words it: no permission, or no such file
    assert [f.name for f in api.emulator.files()] == names[1:]


def test_stopping_the_emulator_removes_its_files(start: Callable[..., Api]) -> None:
    api = start()
    upload(api.client, [line("a", "A fox")])
    (stored,) = api.emulator.files()
    assert stored.path.exists()
    api.emulator.stop()
    assert not stored.path.exists()


# --------------------------------------------------------------------------- list, cancel, delete


def test_list_pages_through_jobs_newest_first_without_their_outputs(api: Api) -> None:
    names = [api.client.batches.create(model=MODEL, src=[item(f"Fox {n}")]).name for n in range(3)]
    for name in names:
        wait(api.client, name or "")
    pager = api.client.batches.list(config={"page_size": 2})
    assert len(pager.page) == 2
    jobs = list(pager)
    assert [j.name for j in jobs] == names[::-1]
    assert all(j.state == types.JobState.JOB_STATE_SUCCEEDED and j.dest is None for j in jobs)
    assert len(api.emulator.api_calls("listBatches")) == 2
    raw = api.raw("/v1beta/batches?pageSize=2")
    assert len(raw["operations"]) == 2 and raw["nextPageToken"]


def test_a_junk_page_token_is_a_400(shared: Api) -> None:
    with pytest.raises(errors.ClientError) as caught:
        shared.client.batches.list(config={"page_token": "junk!"})
    assert caught.value.code == 400


def test_cancel_ends_a_running_job_without_output(start: Callable[..., Api]) -> None:
    api = start(running_seconds=30)
    job = api.client.batches.create(model=MODEL, src=[item("A fox")])
    api.client.batches.cancel(name=job.name or "")
    cancelled = api.client.batches.get(name=job.name or "")
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED
    assert cancelled.dest is None
    assert api.emulator.batches()[0].state == "CANCELLED"


def test_cancel_leaves_a_finished_job_finished(shared: Api) -> None:
    job = run_inline(shared, [item("A fox")])
    shared.client.batches.cancel(name=job.name or "")
    after = shared.client.batches.get(name=job.name or "")
    assert after.state == types.JobState.JOB_STATE_SUCCEEDED
    assert len(inline_responses(after)) == 1


def test_delete_forgets_the_job(api: Api) -> None:
    job = run_inline(api, [item("A fox")])
    api.client.batches.delete(name=job.name or "")
    with pytest.raises(errors.ClientError) as caught:
        api.client.batches.get(name=job.name or "")
    assert caught.value.code == 404
    assert api.emulator.batches() == []
    assert list(api.client.batches.list()) == []


def test_unknown_model_and_missing_file_are_refused_at_create(api: Api) -> None:
    with pytest.raises(errors.ClientError) as caught:
        api.client.batches.create(model="gemini-0-nonsense", src=[item("A fox")])
    assert caught.value.code == 404
    with pytest.raises(errors.ClientError) as caught:
        api.client.batches.create(model=MODEL, src="files/nosuchfile")
    assert caught.value.code == 403
    assert api.emulator.batches() == []


# --------------------------------------------------------------------------- job faults


def test_a_failing_job_ends_failed_with_an_error_the_sdk_does_not_read(api: Api) -> None:
    api.emulator.batch_faults.push_job("fail")
    job = run_inline(api, [item("A fox")])
    assert job.state == types.JobState.JOB_STATE_FAILED
    assert job.dest is None
    assert job.error is None  # the SDK never fills BatchJob.error on the Developer API...
    assert api.raw(f"/v1beta/{job.name}")["error"]["code"] == 13  # ...though the error is sent


def test_an_expiring_job_ends_expired_without_output(api: Api) -> None:
    api.emulator.batch_faults.push_job("expire")
    job = run_inline(api, [item("A fox")])
    assert job.state == types.JobState.JOB_STATE_EXPIRED
    assert job.dest is None
    assert api.emulator.batches()[0].outcomes == ()  # nothing was answered


@pytest.mark.parametrize(
    ("fault", "state"),
    [
        ("stuck_pending", types.JobState.JOB_STATE_PENDING),
        ("stuck_running", types.JobState.JOB_STATE_RUNNING),
    ],
)
def test_a_stuck_job_stays_until_cancelled(api: Api, fault: str, state: types.JobState) -> None:
    api.emulator.batch_faults.push_job(fault)
    job = api.client.batches.create(model=MODEL, src=[item("A fox")])
    reach(api, state.name.removeprefix("JOB_STATE_"))
    time.sleep(0.3)  # longer than the job would take
    assert api.client.batches.get(name=job.name or "").state == state
    api.client.batches.cancel(name=job.name or "")
    assert wait(api.client, job.name or "").state == types.JobState.JOB_STATE_CANCELLED


def test_a_stuck_job_expires_at_the_deadline(start: Callable[..., Api]) -> None:
    api = start(expire_seconds=0.3)
    api.emulator.batch_faults.push_job("stuck_running")
    started = time.monotonic()
    job = wait(api.client, api.client.batches.create(model=MODEL, src=[item("A")]).name or "")
    assert job.state == types.JobState.JOB_STATE_EXPIRED
    assert time.monotonic() - started >= 0.3


def test_job_fault_rates_are_seeded(start: Callable[..., Api]) -> None:
    def faults(seed: int) -> list[str | None]:
        api = start(job_rates={"fail": 0.5}, seed=seed, running_seconds=30)
        for n in range(8):
            api.client.batches.create(model=LEGACY, src=[item(f"Fox {n}")])
        return [info.fault for info in api.emulator.batches()]

    assert faults(1) == faults(1)
    assert set(faults(1)) == {"fail", None}


def test_stopping_the_emulator_stops_its_jobs(start: Callable[..., Api]) -> None:
    api = start()
    api.emulator.batch_faults.push_job("stuck_running")
    api.client.batches.create(model=MODEL, src=[item("A fox")])
    api.emulator.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("gemflow-batches/")]


# --------------------------------------------------------------------------- item faults


def test_items_at_given_indexes_get_errors_with_their_codes(start: Callable[..., Api]) -> None:
    codes = {0: "3", 1: "4", 2: "8", 3: "13", 4: "14"}
    api = start(item_at=codes)
    responses = inline_responses(run_inline(api, [item(f"Fox {n}") for n in range(6)]))
    for n, response in enumerate(responses[:5]):
        assert response.response is None
        assert response.error is not None
        assert response.error.code == int(codes[n])
        assert "(emulated fault)" in (response.error.message or "")
    assert responses[5].error is None and final_image(responses[5].response)
    info = api.emulator.batches()[0]
    assert (info.succeeded, info.failed) == (1, 5)
    assert info.outcomes == ("error 3", "error 4", "error 8", "error 13", "error 14", "ok")


def test_item_errors_in_a_file_job_keep_their_key(start: Callable[..., Api]) -> None:
    api = start(item_at={1: "14"})
    output = run_file(api, [line(k, f"Fox {k}") for k in "abc"])
    assert [entry["key"] for entry in output] == ["a", "b", "c"]
    assert output[1]["error"]["code"] == 14 and "response" not in output[1]


def test_a_missing_key_is_left_out_of_the_output_file(start: Callable[..., Api]) -> None:
    api = start(item_at={1: "missing"})
    output = run_file(api, [line(k, f"Fox {k}") for k in "abc"])
    assert [entry["key"] for entry in output] == ["a", "c"]
    assert api.emulator.batches()[0].outcomes == ("ok", "missing", "ok")


def test_a_missing_key_of_an_inline_job_is_dropped_metadata(start: Callable[..., Api]) -> None:
    api = start(item_at={0: "missing"})
    responses = inline_responses(run_inline(api, [item("A", key="a"), item("B", key="b")]))
    assert [r.metadata for r in responses] == [None, {"key": "b"}]
    assert final_image(responses[0].response)


def test_item_fault_rates_are_seeded_per_job(start: Callable[..., Api]) -> None:
    def outcomes(seed: int) -> tuple[str, ...]:
        api = start(item_rates={"14": 0.3, "missing": 0.2}, seed=seed)
        run_inline(api, [item(f"Fox {n}") for n in range(20)], model=LEGACY)
        return api.emulator.batches()[0].outcomes

    first = outcomes(3)
    assert outcomes(3) == first
    assert {"ok", "error 14", "missing"} <= set(first)
    assert outcomes(4) != first


def test_the_refusal_marker_makes_that_item_a_refusal(shared: Api) -> None:
    job = run_inline(shared, [item("A fox"), item("A cat [[emulator:image_safety]]")])
    fox, cat = inline_responses(job)
    assert final_image(fox.response)
    assert cat.error is None and cat.response is not None
    assert cat.response.candidates is not None
    assert cat.response.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    assert not any(p.inline_data for p in cat.response.parts or [])
    assert info_of(shared, job.name).outcomes == ("ok", "image_safety")


def test_http_fault_markers_become_item_errors(shared: Api) -> None:
    job = run_inline(shared, [item("A [[emulator:429]]"), item("B [[emulator:503]]")])
    assert [r.error.code for r in inline_responses(job) if r.error] == [8, 14]


def test_an_invalid_item_is_an_item_error(shared: Api) -> None:
    bad = item("A fox", image_config={"aspect_ratio": "3:1"})
    first, second = inline_responses(run_inline(shared, [bad, item("A cat")]))
    assert first.error is not None and first.error.code == 3
    assert "3:1" in (first.error.message or "")
    assert final_image(second.response)


def test_batch_items_leave_the_interactive_fault_queue_alone(api: Api) -> None:
    api.emulator.faults.push("429")
    assert all(r.error is None for r in inline_responses(run_inline(api, [item("A fox")])))
    with pytest.raises(errors.ClientError) as caught:
        api.client.models.generate_content(model=MODEL, contents="A fox")
    assert caught.value.code == 429


def test_per_item_errors_parse_unless_they_carry_object_details(start: Callable[..., Api]) -> None:
    """google-genai types an item error's ``details`` as ``list[str]``; google.rpc.Status's are
    objects. With object details, ``batches.get()`` of an inline job raises pydantic's
    ValidationError (not an APIError) for the whole job; ``batches.list()`` still works (it
    carries no outputs).

    What gemflow must do: use JSONL file jobs, whose per-item errors are in the output file it
    parses itself, so ``batches.get()`` never carries them; for an inline job, catch
    ``pydantic.ValidationError`` and read the Operation's raw JSON (a plain GET of
    ``{base}/{version}/batches/{id}`` with the key), taking ``metadata.state`` and
    ``metadata.output.inlinedResponses.inlinedResponses``.
    """
    plain = start(item_at={0: "14"})
    (response,) = inline_responses(run_inline(plain, [item("A fox")]))
    assert response.error is not None and response.error.code == 14
    assert response.error.details is None

    detailed = start(item_at={0: "14"}, error_details=True)
    job = detailed.client.batches.create(model=MODEL, src=[item("A fox")])
    reach(detailed, "SUCCEEDED")
    with pytest.raises(pydantic.ValidationError, match="details"):
        detailed.client.batches.get(name=job.name or "")
    assert [j.state for j in detailed.client.batches.list()] == [types.JobState.JOB_STATE_SUCCEEDED]
    raw = detailed.raw(f"/v1beta/{job.name}")
    (entry,) = raw["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert entry["error"]["details"][0]["@type"].endswith("google.rpc.ErrorInfo")


# --------------------------------------------------------------------------- same answers, takes, log


def test_the_same_request_gives_the_same_first_image_in_batch_and_interactive(
    start: Callable[..., Api],
) -> None:
    interactive, batch = start(), start()
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="4:3")
    )
    answer = interactive.client.models.generate_content(
        model=MODEL, contents="A lighthouse at dusk", config=config
    )
    inline = run_inline(batch, [item("A lighthouse at dusk", image_config={"aspect_ratio": "4:3"})])
    output = run_file(
        start(), [line("k", "A lighthouse at dusk", imageConfig={"aspectRatio": "4:3"})]
    )
    assert final_image(inline_responses(inline)[0].response) == final_image(answer)
    assert image_of_line(output[0]) == final_image(answer)


def test_a_batch_item_counts_as_a_take_like_an_interactive_call(api: Api) -> None:
    first = api.client.models.generate_content(
        model=MODEL, contents="Same", config={"response_modalities": ["IMAGE"]}
    )
    (second,) = inline_responses(run_inline(api, [item("Same")]))
    third = api.client.models.generate_content(
        model=MODEL, contents="Same", config={"response_modalities": ["IMAGE"]}
    )
    images = [final_image(first), final_image(second.response), final_image(third)]
    assert len(set(images)) == 3


def test_the_request_log_names_the_batch_and_file_endpoints(api: Api) -> None:
    uploaded = upload(api.client, [line("a", "A fox")])
    job = wait(
        api.client, api.client.batches.create(model=MODEL, src=uploaded.name or "").name or ""
    )
    assert job.dest is not None
    api.client.files.download(file=job.dest.file_name or "")
    list(api.client.batches.list())
    api.client.batches.cancel(name=job.name or "")
    api.client.batches.delete(name=job.name or "")
    log = api.emulator
    assert len(log.api_calls("batchGenerateContent")) == 1
    assert log.api_calls("generateContent") == []
    assert len(log.api_calls("uploadFile")) == len(log.api_calls("uploadChunk")) == 1
    assert log.api_calls("getBatch")
    for endpoint in ("downloadFile", "listBatches", "cancelBatch", "deleteBatch"):
        assert len(log.api_calls(endpoint)) == 1, endpoint
    (created,) = log.api_calls("batchGenerateContent")
    assert created["resource"] == job.name and created["model"] == MODEL
    assert log.api_calls("downloadFile")[0]["resource"] == job.dest.file_name
    assert log.api_calls("uploadChunk")[0]["api_key_present"] is False  # the URL is the key


# --------------------------------------------------------------------------- settings and CLI


def test_batch_fault_names_and_rates_are_checked() -> None:
    assert BatchFaults.parse_jobs("fail=0.1, expire=0.2") == {"fail": 0.1, "expire": 0.2}
    assert BatchFaults.parse_items("14=0.1,missing=0.05") == {"14": 0.1, "missing": 0.05}
    for bad in ("fail", "hang=0.1", "fail=x", "fail=0.6,expire=0.6", "fail=0.1,fail=0.1"):
        with pytest.raises(ValueError):
            BatchFaults.parse_jobs(bad)
    with pytest.raises(ValueError):
        BatchFaults.parse_items("429=0.1")
    with pytest.raises(ValueError):
        BatchFaults(item_at={0: "fail"})
    with pytest.raises(ValueError):
        BatchFaults(running_seconds=-1)
    with pytest.raises(ValueError):
        BatchFaults().push_job("14")


def test_the_command_has_the_batch_options() -> None:
    result = CliRunner().invoke(emulator_command, ["--help"], catch_exceptions=False)
    for option in (
        "--batch-pending",
        "--batch-running",
        "--batch-expire",
        "--batch-faults",
        "--batch-item-faults",
        "--batch-error-details",
        "--max-file-bytes",
    ):
        assert option in result.output


@pytest.mark.parametrize(
    ("option", "spec"), [("--batch-faults", "explode=0.1"), ("--batch-item-faults", "404=1")]
)
def test_junk_batch_fault_specs_are_usage_errors(option: str, spec: str) -> None:
    result = CliRunner().invoke(emulator_command, ["--port", "0", option, spec])
    assert result.exit_code == 2
    assert option in result.output
