"""The ``probe`` step through the real CLI and google-genai client, against the emulator acting as
a service that passes prompts through, or (``rewrite=...``) as one that rewrites them."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Project

from gemflow.emulator import Emulator
from gemflow.emulator.rewrite import HIDDEN_SYSTEM, PREFIX
from gemflow.probe.schema import validate

PROBE = """\
version: 1
steps:
  check:
    kind: probe
    model: gemini-3.1-flash-image
    prompt: A kitten with prominent purple-and-green fur.{extra}
"""
REPORT = "out/check.probe.json"
CALLS_PER_SAMPLE = 7  # four probes, and a reading of each image (the control answers NO_IMAGE)


@pytest.fixture
def probing(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    """Projects with a probe step, on an emulator that rewrites as asked (or not at all)."""
    emulators: list[Emulator] = []

    def make(rewrite: str | None = None, extra: str = "") -> Project:
        emulator = Emulator(scale=0.125, rewrite=rewrite).start()
        emulators.append(emulator)
        root = tmp_path / f"project{len(emulators)}"
        root.mkdir()
        project = Project(root, emulator)
        project.write(PROBE.format(extra=extra))
        return project

    yield make
    for emulator in emulators:
        emulator.stop()


def report(project: Project) -> dict:
    return json.loads((project.root / REPORT).read_text())


def result(doc: dict, probe: str, sample: int = 0) -> dict:
    return next(r for r in doc["samples"][sample]["results"] if r["probe"] == probe)


# --------------------------------------------------------------------------- verdicts


def test_a_service_that_passes_prompts_through_is_verbatim(probing) -> None:
    project = probing()
    project.run()
    doc = report(project)
    assert doc["verdict"] == "verbatim"
    assert doc["confidence"] >= 0.8
    assert doc["hidden_text"] is None
    assert doc["scores"]["current_similarity"] == 1.0


def test_a_hidden_system_prompt_is_rewritten_and_recovered(probing) -> None:
    project = probing(rewrite="system")
    project.run()
    doc = report(project)
    assert doc["verdict"] == "rewritten"
    assert doc["hidden_text"] == HIDDEN_SYSTEM
    assert doc["recovered"]["before"] == HIDDEN_SYSTEM


def test_a_paraphrasing_service_is_rewritten_and_loses_the_canary(probing) -> None:
    project = probing(rewrite="paraphrase")
    project.run()
    doc = report(project)
    assert doc["verdict"] == "rewritten"
    assert result(doc, "canary")["canary_found"] is False
    assert "kitten" in result(doc, "canary")["words_dropped"]


def test_words_put_before_the_users_words_are_the_hidden_text(probing) -> None:
    project = probing(rewrite="prefix")
    project.run()
    doc = report(project)
    assert doc["verdict"] == "rewritten"
    assert doc["hidden_text"] == "a vivid high quality picture of"


def test_a_faithful_model_that_letters_its_whole_prompt_is_verbatim(probing) -> None:
    """Issue 10: the probe's own instruction, lettered back, is not text put before the prompt."""
    project = probing(rewrite="literal")
    project.run()
    doc = report(project)
    assert (doc["verdict"], doc["hidden_text"]) == ("verbatim", None)
    assert result(doc, "canary")["leading_text"] == ""
    assert result(doc, "canary")["instruction_echo"][:2] == ["large", "legible"]


def test_hidden_text_leaves_out_the_instruction_lettered_after_it(probing) -> None:
    project = probing(rewrite="literal,system")
    project.run()
    doc = report(project)
    assert (doc["verdict"], doc["confidence"]) == ("rewritten", 0.9)
    assert doc["hidden_text"] == HIDDEN_SYSTEM


def test_the_control_does_not_call_a_preamble_invented(probing) -> None:
    project = probing(rewrite="literal,prefix")
    project.run()
    doc = report(project)
    assert result(doc, "after")["note"].startswith("showed the text the before probe showed")
    assert doc["hidden_text"] == PREFIX
    assert doc["supported_by"] == ["before", "current", "canary", "after"]


def test_a_model_that_invents_context_is_verbatim(probing) -> None:
    project = probing(rewrite="invent")
    project.run()
    assert report(project)["verdict"] == "verbatim"


def test_the_report_says_in_one_sentence_what_was_found_and_by_which_probes(probing) -> None:
    project = probing(rewrite="system")
    project.run()
    doc = report(project)
    assert doc["summary"] == (
        "A hidden instruction was found before your prompt: 'You are Nano Banana, an image model. "
        "Make every picture vivid and …' — shown by the before probe and confirmed by the control "
        "in 1/1 samples; the current and canary probes read your words back intact."
    )
    assert (doc["supported_by"], doc["contradicted_by"]) == (
        ["before", "after"],
        ["current", "canary"],
    )


# --------------------------------------------------------------------------- outcomes


def test_no_image_on_the_control_is_a_recorded_outcome(probing) -> None:
    project = probing()
    project.run()
    after = result(report(project), "after")
    assert after["outcome"] == "no_image"
    assert after["finish_reason"] == "NO_IMAGE"
    assert after["image"] is None


def test_a_safety_refusal_is_a_recorded_outcome_not_a_failure(probing) -> None:
    project = probing(extra=" [[emulator:image_safety]]")  # every probe carrying the prompt
    doc = project.run_json()
    canary = result(report(project), "canary")
    assert doc["steps"][0]["status"] == "run"
    assert canary["outcome"] == "refused"
    assert canary["finish_reason"] == "IMAGE_SAFETY"
    assert canary["signal"] == "none"


# --------------------------------------------------------------------------- caching


def test_a_rerun_makes_no_calls(probing) -> None:
    project = probing()
    project.run()
    doc = project.run_json()
    assert len(project.calls()) == CALLS_PER_SAMPLE
    assert doc["steps"][0]["status"] == "cached"


def test_force_probes_again(probing) -> None:
    project = probing()
    project.run()
    project.run("--force", "check")
    assert len(project.calls()) == 2 * CALLS_PER_SAMPLE


def test_repeat_takes_distinct_samples_and_the_majority_decides(probing) -> None:
    project = probing(extra="\n    repeat: 3")
    doc = project.run_json()
    probes = report(project)
    assert len(project.calls()) == 3 * CALLS_PER_SAMPLE
    assert [s["sample"] for s in probes["samples"]] == [0, 1, 2]
    assert probes["why"][0] == "3 of 3 samples say verbatim"
    assert doc["steps"][0]["result"]["verdict"] == "verbatim"


def test_raising_repeat_pays_only_for_the_new_samples(probing) -> None:
    project = probing(extra="\n    repeat: 3")
    project.run()
    project.write(PROBE.format(extra="\n    repeat: 5"))
    doc = project.run_json()
    assert doc["steps"][0]["api_calls"] == 2 * CALLS_PER_SAMPLE
    assert len(report(project)["samples"]) == 5


# --------------------------------------------------------------------------- outputs


def test_the_report_matches_its_documented_schema(probing) -> None:
    project = probing(rewrite="system,paraphrase", extra="\n    repeat: 2")
    project.run()
    assert validate(report(project)) == []


def test_probe_images_and_a_contact_sheet_are_written_and_locked(probing) -> None:
    project = probing()
    project.run()
    folder = project.root / "out" / "check.probe"
    assert sorted(p.name for p in folder.iterdir()) == [
        "before-0.png",
        "canary-0.png",
        "current-0.png",
        "sheet.png",
    ]
    assert "check.probe/sheet.png" in project.lock["steps"]["check"]["attachments"]


def test_the_json_summary_carries_the_verdict(probing) -> None:
    project = probing(rewrite="system")
    doc = project.run_json()
    assert doc["steps"][0]["result"] == {"verdict": "rewritten", "confidence": 0.9}
    assert doc["steps"][0]["output"] == REPORT


def test_the_terminal_shows_the_verdict_even_when_cached(probing) -> None:
    project = probing()
    project.run()
    assert "verdict verbatim" in project.run().stderr


def test_a_dry_run_counts_every_probe_and_reading(probing) -> None:
    project = probing()
    doc = project.run_json("--dry-run")
    assert doc["steps"][0]["api_calls"] == 8
    assert doc["steps"][0]["usd"] > 0
    assert project.calls() == []


# --------------------------------------------------------------------------- workflow errors


def test_a_probe_cannot_be_an_image_input(probing) -> None:
    project = probing(extra="\n  thumb:\n    kind: resize\n    image: check\n    width: 64")
    out = project.run(expect=2).stderr
    assert "'check' is a probe step: its output out/check.probe.json is JSON, not an image" in out


def test_an_unknown_probe_is_a_load_error(probing) -> None:
    project = probing(extra="\n    probes: [before, befor]")
    assert "unknown probe 'befor'" in project.run(expect=2).stderr


# --------------------------------------------------------------------------- tesseract


def test_missing_tesseract_fails_the_step_before_any_call(
    probing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = probing(extra="\n    reader: tesseract")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = project.run(expect=1).stderr
    assert "tesseract program, which is not on PATH" in out
    assert "apt install tesseract-ocr" in out
    assert project.calls() == []


def test_tesseract_on_path_reads_the_images_locally(
    probing, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = probing(extra="\n    reader: tesseract")
    _fake_tesseract(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    project.run()
    doc = report(project)
    assert doc["reader"] == "tesseract"
    assert doc["verdict"] == "verbatim"
    assert len(project.calls()) == 4  # the probes only: reading is local


def _fake_tesseract(folder: Path) -> None:
    """A stand-in for ``tesseract stdin stdout`` that "reads" the emulator's text chunk."""
    folder.mkdir()
    program = folder / "tesseract"
    program.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from gemflow.emulator.render import embedded_text\n"
        "print(embedded_text(sys.stdin.buffer.read()) or '')\n"
    )
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
