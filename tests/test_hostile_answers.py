"""A broken or hostile server: whatever it answers ends in a clear one-line error (retried when
that makes sense), never a traceback, a hang, a terminal taken over or a non-picture stored.

Every answer goes through the real google-genai client to the emulator, whose faults send each
kind of broken answer (see ``gemflow.emulator.faults``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKE_KEY, FakeTime, Project, patient
from PIL import Image

from gemflow.cache.local import Store
from gemflow.emulator import Emulator
from gemflow.engine.events import Event, Notice, RunSummary
from gemflow.engine.runner import RunOptions, run_workflow
from gemflow.errors import ApiError, WorkflowError
from gemflow.providers.base import ApiRequest
from gemflow.providers.connection import Connection
from gemflow.providers.gemini import GeminiProvider, parse_response
from gemflow.providers.gemini_batch import ItemError, result_line
from gemflow.workflow.load import load_workflow

ONE_STEP = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  apple: {kind: generate, prompt: A red apple.}
"""


def with_fault(name: str, text: str = ONE_STEP) -> str:
    """The workflow, its step's prompt asking the emulator for fault ``name``."""
    return text.replace("A red apple.", f"'A red apple. [[emulator:{name}]]'")


def the_error(doc: dict) -> str:
    (step,) = doc["steps"]
    assert step["status"] == "failed"
    return str(step["error"])


# --- what reaches the terminal ---------------------------------------------------------------


def test_escape_sequences_in_an_api_error_never_reach_the_terminal(project: Project) -> None:
    project.write(with_fault("escapes"))
    result = project.run("--json", expect=1)
    error = "400 INVALID_ARGUMENT: Bad request red fake line (emulated fault)"
    assert the_error(json.loads(result.stdout)) == error
    assert f"failed: apple: {error}\n" in result.stderr
    assert not [c for c in result.output if c < " " and c != "\n"]
    assert "\u202e" not in result.output
    assert len(project.calls()) == 1
    assert FAKE_KEY not in result.output


# --- broken answers ----------------------------------------------------------------------------

UNREADABLE = "unreadable answer from the API: "
BROKEN = {
    "html": UNREADABLE + "not JSON (Expecting value: line 1 column 1 (char 0)), starting "
    "'<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>(emulated'",
    "truncated": UNREADABLE + "not JSON (Unterminated string starting at: line 1 column",
    "bad_base64": UNREADABLE
    + "candidates.0.content.parts.2.inlineData.data: Data should be valid base64",
    "bad_usage": UNREADABLE
    + "usage_metadata.promptTokenCount: Input should be a valid integer, unable to parse string "
    "as an integer",
}


@pytest.mark.parametrize("fault", list(BROKEN))
def test_a_broken_answer_fails_its_step_in_one_line_and_stores_nothing(
    project: Project, fault: str
) -> None:
    project.write(with_fault(fault))
    result = project.run("--json", "--retries", "0", expect=1)
    error = the_error(json.loads(result.stdout))
    assert error.startswith(BROKEN[fault])
    assert f"failed: apple: {error}\n" in result.stderr
    assert "Traceback" not in result.output
    assert len(project.calls()) == 1
    assert not (project.root / "out").exists()
    assert "apple" not in project.lock["steps"]


class Runs:
    """``run_workflow`` on the emulator, with retries that sleep on a fake clock."""

    def __init__(self, root: Path, emu: Emulator) -> None:
        self.root, self.emu, self.fake = root, emu, FakeTime()
        self.notices: list[str] = []

    def run(self, text: str = ONE_STEP) -> RunSummary:
        path = self.root / "wf.yaml"
        path.write_text(text)
        with Store(self.root / "cache") as store:
            inner = GeminiProvider(FAKE_KEY, base_url=self.emu.url, service="emulator")
            with Connection.of(patient(inner, self.fake)) as connection:
                return run_workflow(
                    load_workflow(path), store, RunOptions(), connection=connection, emit=self.hear
                )

    def hear(self, event: Event) -> None:
        if isinstance(event, Notice):
            self.notices.append(event.message)


@pytest.fixture
def runs(tmp_path: Path, emulator: Emulator) -> Runs:
    return Runs(tmp_path, emulator)


@pytest.mark.parametrize("fault", ["html", "truncated"])
def test_an_answer_that_is_not_json_is_retried(runs: Runs, fault: str) -> None:
    runs.emu.faults.push(fault)
    (report,) = runs.run().steps
    assert (report.status, report.api_calls) == ("run", 2)
    (notice,) = runs.notices  # the error's first 100 characters, then when it is retried
    assert notice.startswith(f"apple: {UNREADABLE}not JSON (")
    assert notice.endswith("; retry 1/5 in 1.0 s")


@pytest.mark.parametrize("fault", ["bad_base64", "bad_usage"])
def test_an_answer_that_does_not_fit_the_schema_is_not_retried(runs: Runs, fault: str) -> None:
    runs.emu.faults.push(fault)
    (report,) = runs.run().steps
    assert (report.status, report.api_calls) == ("failed", 1)
    assert str(report.error).startswith(BROKEN[fault])
    assert runs.fake.sleeps == []


def test_an_answer_with_neither_candidates_nor_feedback_is_unreadable() -> None:
    from google.genai import types

    with pytest.raises(ApiError, match="no candidates and no prompt feedback") as caught:
        parse_response(types.GenerateContentResponse())
    assert caught.value.retryable


def test_a_request_the_sdk_refuses_is_an_api_error_not_retried(emulator: Emulator) -> None:
    provider = GeminiProvider(FAKE_KEY, base_url=emulator.url)
    try:
        with pytest.raises(ApiError, match=r"^the SDK could not make the request") as caught:
            provider.generate(ApiRequest(model="../files/x", prompt="An apple."))
    finally:
        provider.close()
    assert not caught.value.retryable
    assert emulator.requests == []


@pytest.mark.parametrize(
    "model", ["../files/x", "models/../../x", "gemini 3", "gémini", "x?key=1", "x/y", ".x"]
)
def test_a_model_id_that_is_not_a_plain_id_is_refused_when_loading(
    tmp_path: Path, model: str
) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        f"version: 1\nsteps:\n  a: {{kind: generate, model: '{model}', prompt: x, "
        "allow_unknown_model: true}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    (problem,) = caught.value.problems
    assert problem.message == (
        f"model {model!r} is not a model id: letters, digits, '.', '-' and '_', "
        "optionally after 'models/'"
    )


@pytest.mark.parametrize("model", ["gemini-3.1-flash-image", "models/gemini-4_x.preview-05"])
def test_a_plain_model_id_is_fine(tmp_path: Path, model: str) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        f"version: 1\nsteps:\n  a: {{kind: generate, model: '{model}', prompt: x, "
        "allow_unknown_model: true}\n"
    )
    assert load_workflow(path).steps["a"].params["model"] == model


def test_a_probe_reader_that_is_not_a_plain_model_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nsteps:\n  check: {kind: probe, model: gemini-3.1-flash-image, "
        "reader: '../../files'}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    (problem,) = caught.value.problems
    assert problem.message.startswith("model '../../files' is not a model id")


# --- what is stored as a picture ---------------------------------------------------------------


def test_an_answer_whose_image_is_not_an_image_stores_nothing(project: Project) -> None:
    project.write(with_fault("not_an_image"))
    result = project.run("--json", expect=1)
    error = UNREADABLE + "the image: not a readable image (cannot identify image file)"
    assert the_error(json.loads(result.stdout)) == error
    assert f"failed: apple: {error}\n" in result.stderr
    assert len(project.calls()) == 1  # not retried
    assert not (project.root / "out").exists()
    assert "apple" not in project.lock["steps"]
    project.write(ONE_STEP)
    assert [s["status"] for s in project.run_json()["steps"]] == ["run"]


def answer_with_image(data: bytes, mime: str) -> Any:
    from google.genai import types

    part = types.Part(inline_data=types.Blob(data=data, mime_type=mime))
    return types.GenerateContentResponse(
        candidates=[types.Candidate(content=types.Content(role="model", parts=[part]))]
    )


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "mime", "problem"),
    [
        (image_bytes("JPEG"), "image/png", "the image is labelled image/png but is a JPEG"),
        (image_bytes("PNG")[:40], "image/png", "the image: not a readable image ("),
        (b"", "image/png", "the image is empty"),
    ],
    ids=["mislabelled", "truncated", "empty"],
)
def test_an_image_that_is_not_what_its_label_says_is_unreadable(
    data: bytes, mime: str, problem: str
) -> None:
    with pytest.raises(ApiError) as caught:
        parse_response(answer_with_image(data, mime))
    assert str(caught.value).startswith(UNREADABLE + problem)
    assert not caught.value.retryable


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_an_image_of_its_declared_type_is_taken(fmt: str, mime: str) -> None:
    data = image_bytes(fmt)
    answer = parse_response(answer_with_image(data, mime))
    assert (answer.image, answer.mime_type) == (data, mime)


# --- batch results ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    ["<html>", "[1, 2]", '"text"', "", "{not json", '{"key": "k", "response": '],
)
def test_a_batch_result_line_that_is_not_an_object_counts_as_unanswered(line: str) -> None:
    assert result_line(line) is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"key": "k", "error": {"code": "x", "message": "m"}}', ("k", ItemError(13, "m"))),
        ('{"metadata": "k", "error": {"code": 3}}', ("", ItemError(3, ""))),
        ('{"key": "k", "response": {"candidates": "x"}}', ("k", ItemError(13, ""))),
    ],
)
def test_a_batch_result_line_of_the_wrong_shape_is_an_item_error(
    line: str, expected: tuple[str, ItemError]
) -> None:
    key, found = result_line(line) or ("?", None)
    assert isinstance(found, ItemError)
    assert (key, found.code) == (expected[0], expected[1].code)


def test_a_whole_error_page_is_cut_to_a_line_of_500_characters() -> None:
    provider = GeminiProvider(FAKE_KEY, base_url="http://127.0.0.1:9")
    try:
        shown = provider.shown("<html>\n" + "<p>Bad gateway</p>\n" * 500)
    finally:
        provider.close()
    assert len(shown) == 500 and shown.endswith("…")
    assert "\n" not in shown
