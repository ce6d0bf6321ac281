"""A run never writes over a file that is not its own without saying so: another workflow's
output, a picture the real service made (when on the emulator), or a hand edit; nor over what is
not a file at all (a FIFO, a folder)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import Project

from gemflow.cache.local import Store
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


TWO = """\
version: 1
steps:
  a: {kind: generate, model: gemini-3.1-flash-image, prompt: "An apple."}
  b: {kind: generate, model: gemini-3.1-flash-image, prompt: "A pear."}
"""


def gemflow_run(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``gemflow run wf.yaml --emulator --json`` in a process of its own: a hang is a failure."""
    argv = [sys.executable, "-m", "gemflow", "run", "wf.yaml", "--emulator", "--json"]
    return subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("made_before", [False, True], ids=["new-step", "cached-step"])
def test_an_output_that_is_a_fifo_fails_its_step_at_once_and_is_left_alone(
    tmp_path: Path, isolated_env: dict[str, str], made_before: bool
) -> None:
    (tmp_path / "wf.yaml").write_text(TWO)
    fifo = tmp_path / "out" / "a.png"
    if made_before:
        assert gemflow_run(tmp_path, isolated_env).returncode == 0
        fifo.unlink()
    fifo.parent.mkdir(exist_ok=True)
    os.mkfifo(fifo)
    done = gemflow_run(tmp_path, isolated_env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    steps = {step["id"]: step for step in json.loads(done.stdout)["steps"]}
    assert steps["a"]["status"] == "failed"
    assert steps["a"]["error"] == (
        "out/a.png is a FIFO, not a file: gemflow does not write over it; move it away, "
        "or give the step another output"
    )
    assert steps["a"]["api_calls"] in (0, None)  # refused before anything was sent
    assert steps["b"]["status"] == ("cached" if made_before else "run")
    said = [line.strip() for line in done.stderr.splitlines() if "out/a.png" in line]
    assert f"failed: a: {steps['a']['error']}" in said  # the report's list of failures
    assert {line.removeprefix("failed: a: ") for line in said} == {steps["a"]["error"]}
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    with Store(tmp_path / "cache") as store:
        assert store.meta(steps["b"]["key"]) is not None  # the other step's result is kept


def test_a_folder_where_the_output_goes_fails_the_step_before_anything_is_paid(
    project: Project,
) -> None:
    project.write(ONE % "An apple.")
    (project.root / "out" / "a.png").mkdir(parents=True)
    [step] = project.run_json(expect=1)["steps"]
    assert step["error"].startswith("out/a.png is a folder, not a file")
    assert project.calls() == []


def test_an_output_that_cannot_be_read_fails_its_step_in_one_line(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied on an existing output (root reads anything: the refusal is made at the
    point where gemflow opens the file)."""
    import gemflow.fileio

    project.write(
        """\
        version: 1
        defaults: {model: gemini-3.1-flash-image}
        steps:
          a: {kind: generate, prompt: A lighthouse.}
          b: {kind: generate, prompt: A teapot.}
        """
    )
    project.run()
    (project.root / "out" / "a.png").write_bytes(b"changed by hand, then locked away")
    hash_file = gemflow.fileio.hash_file

    def denied(path: Path) -> str:
        if Path(path).name == "a.png":
            raise PermissionError(13, "Permission denied", str(path))
        return hash_file(path)

    monkeypatch.setattr(gemflow.fileio, "hash_file", denied)
    doc = project.run_json(expect=1)
    steps = {step["id"]: step for step in doc["steps"]}
    assert steps["a"]["status"] == "failed" and steps["b"]["status"] == "cached"
    assert (
        steps["a"]["error"]
        == "cannot read out/a.png (Permission denied: " + str(project.root / "out" / "a.png") + ")"
    )
    assert len(project.calls()) == 2
