"""``gemflow show``: which step made a file, from which prompt, model and inputs, when, at what
cost; from the lock file, so it works in a fresh clone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import Project

from gemflow.cli import cli

WORKFLOW = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  a:
    kind: generate
    prompt: A pancake.
    aspect_ratio: "16:9"
  b:
    kind: edit
    images: [a, photos/me.jpg]
    prompt: |
      Put the pancake on a plate.
      Make it look tasty.
  small: {kind: resize, image: b, width: 64, output: out/small.webp}
  many:
    kind: generate
    prompt: A waffle.
    matrix: {aspect_ratio: ["1:1", "16:9"]}
  unsafe: {kind: generate, prompt: "[[emulator:image_safety]] No.", expect: refusal}
"""


@pytest.fixture
def built(project: Project) -> Project:
    project.add_photo()
    project.write(WORKFLOW)
    project.run()
    return project


def test_a_path_shows_the_step_prompt_model_inputs_tokens_cost_and_when(built: Project) -> None:
    result = built.cli("show", str(built.root / "out" / "b.png"))
    assert result.stdout.splitlines()[0] == "out/b.png"
    out = result.stdout
    assert "step      b (edit) in wf.yaml" in out
    assert "prompt    Put the pancake on a plate.\n            Make it look tasty." in out
    assert "model     gemini-3.1-flash-image\n" in out
    assert "inputs    a: out/a.png (" in out
    assert "          photos/me.jpg (" in out
    assert "tokens    " in out and " input, " in out
    assert f"had {built.emulator.url} been Google's API" in out
    assert "when      stored in the cache 20" in out
    assert "file      on disk, as the lock records it" in out
    assert f"key       {built.lock['steps']['b']['key']}" in out


def test_settings_of_a_local_step_and_no_cost(built: Project) -> None:
    out = built.cli("show", str(built.root / "out" / "small.webp")).stdout
    assert "settings  fit contain, format webp, quality 90, width 64" in out
    assert "cost      nothing: no API call" in out


def test_works_in_a_fresh_clone_without_a_cache(built: Project, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("wf.yaml", "wf.lock", "out", "photos"):
        source = built.root / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, clone / name)
    result = CliRunner().invoke(cli, ["show", str(clone / "out" / "a.png")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "step      a (generate) in wf.yaml" in result.stdout
    assert "settings  aspect_ratio 16:9, format png" in result.stdout
    assert "not recorded (the lock file keeps no times); the file was last written" in result.stdout
    assert not (clone / "cache").exists()


def test_a_step_an_instance_or_a_selector_of_the_workflow(built: Project) -> None:
    wf = str(built.workflow)
    out = built.cli("show", "a", "--workflow", wf).stdout
    assert out.startswith("out/a.png\n")
    both = built.cli("show", "many", "-w", wf).stdout
    assert both.count("step      many[aspect_ratio=") == 2
    one = built.cli("show", "many[aspect_ratio=16:9]", "-w", wf).stdout
    assert one.startswith("out/many/16x9.png\n") and one.count("step ") == 1


def test_a_step_of_gemflow_yaml_in_this_folder(
    built: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for suffix in (".yaml", ".lock"):
        shutil.copy(built.root / f"wf{suffix}", built.root / f"gemflow{suffix}")
    monkeypatch.chdir(built.root)
    assert built.cli("show", "a").stdout.startswith("out/a.png\n")


def test_an_expected_refusal_says_so(built: Project) -> None:
    out = built.cli("show", "unsafe", "-w", str(built.workflow)).stdout
    assert out.startswith("unsafe\n")
    assert "refused, as the step expects (IMAGE_SAFETY): no output" in out


def test_an_edited_or_missing_output_is_said(built: Project) -> None:
    (built.root / "out" / "a.png").write_bytes(b"edited")
    out = built.cli("show", str(built.root / "out" / "a.png")).stdout
    assert "not as the lock records it" in out
    assert "a has been made again since" not in out
    (built.root / "out" / "b.png").unlink()
    out = built.cli("show", str(built.root / "out" / "b.png")).stdout
    assert "not on disk (gemflow run restores it)" in out


def test_an_attachment_names_the_output_it_belongs_to(project: Project) -> None:
    project.write(
        "version: 1\nsteps:\n  p: {kind: probe, model: gemini-3.1-flash-image, "
        "probes: [current], repeat: 1}\n"
    )
    project.run()
    out = project.cli("show", str(project.root / "out" / "p.probe" / "current-0.png")).stdout
    assert out.startswith("out/p.probe/current-0.png\n")
    assert "attached  to out/p.probe.json, the step's output" in out
    assert "not priced (a probe's tokens mix image and reader calls)" in out


def test_json_gives_the_lock_entry_and_what_was_worked_out(built: Project) -> None:
    doc = json.loads(built.cli("show", str(built.root / "out" / "a.png"), "--json").stdout)
    assert len(doc) == 1
    record = doc[0]
    assert record["file"] == "out/a.png"
    assert record["step"] == "a"
    assert record["params"]["prompt"] == "A pancake."
    assert record["on_disk"] == "matches"
    assert record["usd"] > 0
    assert record["stored_at"].startswith("20")


def test_a_path_no_lock_knows_exits_2_with_one_line(built: Project) -> None:
    stray = built.root / "out" / "stray.png"
    stray.write_bytes(b"x")
    result = built.cli("show", str(stray), expect=2)
    assert result.stderr.count("\n") == 1
    assert "out/stray.png: no lock file lists it as an output (looked at: " in result.stderr
    assert "Traceback" not in result.output


def test_an_input_file_says_which_steps_read_it(built: Project) -> None:
    result = built.cli("show", str(built.root / "photos" / "me.jpg"), expect=2)
    assert "it is an input of wf: b" in result.stderr


def test_an_unknown_step_suggests_a_near_one(built: Project) -> None:
    result = built.cli("show", "smal", "-w", str(built.workflow), expect=2)
    assert "no step 'smal' in " in result.stderr and "(did you mean 'small'?)" in result.stderr


def test_a_step_without_a_workflow_or_lock_exits_2(project: Project) -> None:
    result = project.cli("show", "a", expect=2)
    assert "no gemflow.yaml here" in result.stderr
    project.write(WORKFLOW)
    result = project.cli("show", "a", "-w", str(project.workflow), expect=2)
    assert "wf.lock does not exist" in result.stderr


HOSTILE = "A pancake.\x1b[2J\x1b]0;owned\x07\x9b31m\u202e"


def test_lock_file_text_reaches_the_terminal_with_its_control_characters_escaped(
    built: Project,
) -> None:
    """A hand-edited (or hostile) lock file cannot clear the screen, retitle the window or
    reverse the text that follows through ``gemflow show``."""
    lock = json.loads((built.root / "wf.lock").read_text())
    lock["steps"]["a"]["params"]["prompt"] = HOSTILE
    lock["steps"]["a"]["model_version"] = "v\x1b[2J"
    (built.root / "wf.lock").write_text(json.dumps(lock))
    shown = built.cli("show", str(built.root / "out" / "a.png")).stdout
    assert "prompt    A pancake.\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\\u202e\n" in shown
    assert "(answered as v\\x1b[2J)" in shown
    as_json = built.cli("show", "--json", str(built.root / "out" / "a.png")).stdout
    for out in (shown, as_json):
        assert not any(c in out for c in "\x1b\x07\x9b\u202e")
    assert json.loads(as_json)[0]["params"]["prompt"] == HOSTILE  # the same text, as JSON


def test_what_the_built_in_emulator_made_is_shown_from_its_own_lock_file(
    project: Project,
) -> None:
    """Runs with ``--emulator`` keep ``wf.emulator.lock``; when it is the only lock file, show
    and history read it, and name the workflow, not the lock."""
    project.write("version: 1\nsteps:\n  a: {kind: generate, model: nano-banana, prompt: A fig.}\n")
    project.cli("run", str(project.workflow), "--emulator")
    assert not (project.root / "wf.lock").exists()
    by_path = project.cli("show", str(project.root / "out" / "a.png")).stdout
    assert "step      a (generate) in wf.yaml" in by_path
    assert "made on the emulator" in by_path
    by_step = project.cli("show", "a", "-w", str(project.workflow)).stdout
    assert by_step.startswith("out/a.png\n") and "in wf.yaml" in by_step
    history = project.cli("history", str(project.workflow), "a").stdout
    assert "a" in history and "has not run yet" not in history
