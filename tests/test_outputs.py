"""A run never writes over a file that is not its own without saying so: another workflow's
output, a picture the real service made (when on the emulator), or a hand edit."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import Project

from gemflow.cli import cli

ONE = """\
version: 1
steps:
  a: {kind: generate, model: gemini-3.1-flash-image, prompt: "%s"}
"""


def test_two_workflows_writing_one_default_output_say_so(project: Project) -> None:
    project.write(ONE % "An apple.")
    other = project.root / "other.yaml"
    other.write_text(ONE % "A pear.")
    project.run()
    argv = ["run", str(other), "--base-url", project.emulator.url, "--json"]
    doc = json.loads(project.cli(*argv, expect=1).stdout)
    [step] = doc["steps"]
    assert step["error"] == (
        "out/a.png is also the output of step 'a' of another workflow here (wf.lock): "
        "give one of them an 'output' of its own"
    )
    assert step["why"]["code"] == "output-taken"
    assert project.run_json()["steps"][0]["status"] == "cached"  # the apple is still there
    assert len(project.calls()) == 1  # the pear was not paid for


def test_the_emulator_keeps_its_own_lock_and_leaves_real_pictures_alone(
    project: Project,
) -> None:
    project.write(ONE % "An apple.")
    project.run()  # the real service (here: an endpoint by URL)
    real = (project.root / "out" / "a.png").read_bytes()
    lock = (project.root / "wf.lock").read_text()
    env = {"GEMFLOW_CACHE_DIR": str(project.root / "cache")}
    argv = ["run", str(project.workflow), "--emulator", "--json"]
    refused = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
    assert refused.exit_code == 1
    error = json.loads(refused.stdout)["steps"][0]["error"]
    assert error.startswith("out/a.png was made by http://127.0.0.1:")
    assert "the emulator does not replace it; pass --force" in error
    assert (project.root / "out" / "a.png").read_bytes() == real
    forced = CliRunner().invoke(cli, [*argv, "--force", "a"], env=env, catch_exceptions=False)
    assert forced.exit_code == 0, forced.output
    assert (project.root / "out" / "a.png").read_bytes() != real
    assert (project.root / "wf.lock").read_text() == lock  # the real entries are untouched
    emulated = json.loads((project.root / "wf.emulator.lock").read_text())["steps"]["a"]
    assert emulated["params"]["service"] == "emulator"


def test_a_hand_edited_output_is_kept_beside_the_restored_one(project: Project) -> None:
    project.write(ONE % "An apple.")
    project.run()
    made = (project.root / "out" / "a.png").read_bytes()
    (project.root / "out" / "a.png").write_bytes(b"my own retouch")
    result = project.run()
    assert "a: out/a.png was changed by hand: kept as out/a.orig.png" in result.stderr
    assert (project.root / "out" / "a.png").read_bytes() == made
    assert (project.root / "out" / "a.orig.png").read_bytes() == b"my own retouch"
    assert len(project.calls()) == 1


def test_a_file_that_was_there_first_is_kept_too(project: Project) -> None:
    (project.root / "out").mkdir()
    (project.root / "out" / "a.png").write_bytes(b"not gemflow's")
    (project.root / "out" / "a.orig.png").write_bytes(b"an older one")
    project.write(ONE % "An apple.")
    project.run()
    assert (project.root / "out" / "a.orig-2.png").read_bytes() == b"not gemflow's"
