"""``gemflow history`` and ``gemflow pick``: the takes kept for a step, listed from the lock file."""

from __future__ import annotations

import json

from conftest import Project

ONE = """\
version: 1
steps:
  a: {kind: generate, model: gemini-3.1-flash-image, prompt: An apple.}
"""


def test_history_escapes_the_control_characters_of_a_hostile_lock_file(project: Project) -> None:
    project.write(ONE)
    project.run()
    lock = json.loads((project.root / "wf.lock").read_text())
    lock["steps"]["a"]["digest"] = "sha256:\x1b[2J\x1b]0;x\x07\x9b"
    (project.root / "wf.lock").write_text(json.dumps(lock))
    shown = project.cli("history", str(project.workflow), "a").stdout
    assert "\\x1b[2J\\x1b]0;x" in shown
    assert not any(c in shown for c in "\x1b\x07\x9b")


def test_a_variant_asked_for_in_a_later_run_on_the_emulator_is_a_new_picture(
    project: Project,
) -> None:
    """The built-in emulator keeps its takes in the cache folder: like Google's API, it does not
    answer a later run's variant 2 with the picture an earlier run got for variant 1."""
    project.write(ONE)
    project.cli("run", str(project.workflow), "--emulator")
    project.write(ONE.replace("prompt: An apple.", "prompt: An apple., variants: 2"))
    doc = json.loads(project.cli("run", str(project.workflow), "--emulator", "--json").stdout)
    outputs = [project.root / step["output"] for step in doc["steps"]]
    assert [step["status"] for step in doc["steps"]] == ["restore", "run"]
    assert outputs[0].read_bytes() != outputs[1].read_bytes()
    assert (project.root / "cache" / "emulator-takes.json").is_file()
