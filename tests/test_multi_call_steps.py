"""Steps that make several API calls and write several files (a probe, say): each call is cached on
its own, attachments are stored, restored and locked with the output, and a summary reaches --json."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest
from conftest import Project

from gemflow.kinds import KINDS
from gemflow.kinds.base import ApiKind, Call, Exchange, Field, InputImage, StepOutput
from gemflow.providers.base import ApiRequest
from gemflow.workflow import Step


class Samples(ApiKind):
    """Asks the same question ``samples`` times; keeps each image as an attachment."""

    name = "samples"
    fields: ClassVar[Mapping[str, Field]] = {
        "model": Field("str", required=True),
        "prompt": Field("str", required=True),
        "samples": Field("int", minimum=1),
    }

    def output_format(self, params: Mapping[str, Any], suffix: str | None) -> str:
        return "json"

    def exchange(self, step: Step, inputs: Sequence[InputImage]) -> Exchange:
        request = ApiRequest(model=step.params["model"], prompt=step.params["prompt"])
        count = step.params.get("samples") or 1
        answers = yield [Call(request, sample=i) for i in range(count)]
        attachments = {f"{step.id}/{i}.png": a.image for i, a in enumerate(answers)}
        report = json.dumps({"samples": count}).encode()
        return StepOutput(report, attachments=attachments, summary={"samples": count})


@pytest.fixture
def sampling(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setitem(KINDS, "samples", Samples())
    project.write(WORKFLOW.format(n=2))
    return project


WORKFLOW = """\
version: 1
steps:
  s:
    kind: samples
    model: gemini-3.1-flash-image
    prompt: a kitten
    samples: {n}
"""


def test_each_call_is_made_once_and_attachments_are_written(sampling: Project) -> None:
    doc = sampling.run_json()
    assert len(sampling.calls()) == 2
    assert doc["steps"][0]["api_calls"] == 2
    assert doc["steps"][0]["result"] == {"samples": 2}
    assert (sampling.root / "out" / "s.json").is_file()
    assert (sampling.root / "out" / "s" / "1.png").is_file()
    assert sorted(sampling.lock["steps"]["s"]["attachments"]) == ["s/0.png", "s/1.png"]


def test_a_cached_step_reports_its_summary(sampling: Project) -> None:
    sampling.run()
    doc = sampling.run_json()
    assert doc["steps"][0]["status"] == "cached"
    assert doc["steps"][0]["result"] == {"samples": 2}


def test_a_missing_attachment_is_restored_without_calls(sampling: Project) -> None:
    sampling.run()
    (sampling.root / "out" / "s" / "1.png").unlink()
    doc = sampling.run_json()
    assert doc["steps"][0]["status"] == "restore"
    assert len(sampling.calls()) == 2
    assert (sampling.root / "out" / "s" / "1.png").is_file()


def test_asking_for_more_samples_pays_only_for_the_new_ones(sampling: Project) -> None:
    sampling.run()
    sampling.write(WORKFLOW.format(n=3))
    doc = sampling.run_json()
    assert len(sampling.calls()) == 3
    assert doc["steps"][0]["api_calls"] == 1


def test_force_asks_every_call_again(sampling: Project) -> None:
    sampling.run()
    sampling.run("--force", "s")
    assert len(sampling.calls()) == 4


def test_a_fresh_clone_adopts_output_and_attachments(sampling: Project) -> None:
    import shutil

    sampling.run()
    shutil.rmtree(sampling.root / "cache")
    assert sampling.run_json()["steps"][0]["status"] == "cached"
    assert len(sampling.calls()) == 2
