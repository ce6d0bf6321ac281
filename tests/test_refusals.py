"""A refusal is an answer: cached like one, counted like one, and a success where it is expected
(moderation suites: ``expect: refusal``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import Project

from gemflow.errors import WorkflowError
from gemflow.workflow.load import load_workflow

REFUSED = "[[emulator:image_safety]] Something the model will not draw."
SUITE = f"""\
version: 1
defaults: {{model: gemini-3.1-flash-image}}
steps:
  unsafe: {{kind: generate, prompt: "{REFUSED}", expect: refusal}}
  fine: {{kind: generate, prompt: A kitten., expect: image}}
"""


def step(doc: dict, name: str) -> dict:
    return next(s for s in doc["steps"] if s["id"] == name)


def test_an_unexpected_refusal_fails_once_and_is_not_paid_for_again(project: Project) -> None:
    project.write(
        f'version: 1\nsteps:\n  a: {{kind: generate, model: gemini-3-pro-image, prompt: "{REFUSED}"}}\n'
    )
    first = project.run_json(expect=1)
    assert step(first, "a")["error"].startswith("no image returned (IMAGE_SAFETY)")
    assert step(first, "a")["api_calls"] == 1
    again = project.run_json(expect=1)
    assert step(again, "a")["why"]["code"] == "refused-before"
    assert step(again, "a")["api_calls"] == 0
    assert len(project.calls()) == 1
    retried = project.run_json("--retry-refused", expect=1)
    assert step(retried, "a")["api_calls"] == 1
    assert len(project.calls()) == 2


def test_an_expected_refusal_succeeds_and_is_remembered(project: Project) -> None:
    project.write(SUITE)
    doc = project.run_json()
    assert doc["ok"]
    unsafe = step(doc, "unsafe")
    assert (unsafe["status"], unsafe["reason"]) == ("run", "refused as expected (IMAGE_SAFETY)")
    assert unsafe["result"] == {"refused": "IMAGE_SAFETY"}
    assert unsafe["api_calls"] == 1 and unsafe["usd"] > 0
    assert project.lock["steps"]["unsafe"]["refused"] == "IMAGE_SAFETY"
    assert not (project.root / "out" / "unsafe.png").exists()
    again = project.run_json()
    assert step(again, "unsafe")["status"] == "cached"
    shutil.rmtree(project.root / "cache")  # a fresh clone: the lock file knows
    fresh = project.run_json()
    assert step(fresh, "unsafe")["status"] == "cached"
    assert len(project.calls()) == 2


def test_an_image_where_a_refusal_was_expected_fails_the_suite(project: Project) -> None:
    project.write(
        "version: 1\nsteps:\n  a: {kind: generate, model: gemini-3-pro-image, prompt: A kitten.,"
        " expect: refusal}\n"
    )
    doc = project.run_json(expect=1)
    assert step(doc, "a")["error"] == "expected a refusal, but the model drew an image (out/a.png)"
    assert (project.root / "out" / "a.png").is_file()
    assert step(project.run_json(expect=1), "a")["status"] == "failed"
    assert len(project.calls()) == 1


def test_a_step_expected_to_be_refused_cannot_be_an_input(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(SUITE + "  edit: {kind: edit, images: [unsafe], prompt: x}\n")
    with pytest.raises(WorkflowError, match="'unsafe' expects the model to refuse"):
        load_workflow(tmp_path / "wf.yaml")
