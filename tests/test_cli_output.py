"""What a run says and leaves: one JSON document on every exit, quiet runs, where the outputs are,
NO_COLOR, file modes that follow the umask, several workflows in one command."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from conftest import Project

from gemflow.cli import cli
from gemflow.engine.events import Status

SIMPLE = """\
version: 1
steps:
  apple: {kind: generate, model: gemini-3.1-flash-image, prompt: An apple.}
  small: {kind: resize, image: apple, width: 32}
"""


def test_json_on_an_invalid_workflow_is_one_document_with_every_problem(project: Project) -> None:
    project.write("version: 1\nsteps:\n  a: {kind: generate, prompt: x}\n  b: {kind: nope}\n")
    doc = project.run_json(expect=2)
    assert doc["ok"] is False and doc["exit_code"] == 2
    assert [(e["line"], e["step"]) for e in doc["errors"]] == [(3, "a"), (4, "b")]


def test_json_without_an_api_key_says_so(project: Project) -> None:
    project.write(SIMPLE)
    result = CliRunner().invoke(
        cli,
        ["run", str(project.workflow), "--json", "--cache-dir", str(project.root / "cache")],
        catch_exceptions=False,
    )
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 3
    assert doc["errors"][0]["message"].startswith("no API key")


def test_json_on_a_usage_error(project: Project) -> None:
    project.write(SIMPLE)
    doc = project.run_json("--jobs", "0", expect=2)
    assert doc["ok"] is False and doc["exit_code"] == 2
    assert "0 is not in the range" in doc["errors"][0]["message"]


def test_a_run_ends_with_where_its_outputs_are(project: Project, monkeypatch) -> None:
    monkeypatch.chdir(project.root)
    project.write(SIMPLE)
    assert project.run().stderr.strip().splitlines()[-1] == "2 outputs in out/"


def test_quiet_says_only_what_failed(project: Project) -> None:
    project.write(SIMPLE)
    assert project.run("-q").stderr == ""
    project.write(SIMPLE.replace("An apple.", '"[[emulator:image_safety]] An apple."'))
    lines = project.run("-q", expect=1).stderr.strip().splitlines()
    assert lines[0].startswith("failed: apple: no image returned (IMAGE_SAFETY)")
    assert len(lines) == 1


def test_no_color_means_no_escapes_even_on_a_terminal(monkeypatch) -> None:
    from gemflow.report import terminal

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert isinstance(terminal.TerminalReporter().out, terminal._Plain)
    monkeypatch.delenv("NO_COLOR")
    assert isinstance(terminal.TerminalReporter().out, terminal._Rich)


def test_outputs_and_the_lock_file_get_the_mode_the_umask_gives(project: Project) -> None:
    project.write(SIMPLE)
    code = textwrap.dedent(f"""\
        import os, sys
        os.umask(0o027)
        from gemflow.cli import cli
        sys.argv = ["gemflow", "run", {str(project.workflow)!r}, "--base-url",
                    {project.emulator.url!r}, "--cache-dir", {str(project.root / "cache")!r}]
        cli()
        """)
    env = {**os.environ, "GEMINI_API_KEY": "k"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for path in (project.root / "out" / "apple.png", project.root / "wf.lock"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_several_workflows_in_one_command(project: Project) -> None:
    other = project.root / "other.yaml"
    other.write_text(SIMPLE.replace("apple", "pear").replace("small", "tiny"))
    project.write(SIMPLE)
    doc = json.loads(
        project.cli(
            "run", str(project.workflow), str(other), "--base-url", project.emulator.url, "--json"
        ).stdout
    )
    assert doc["ok"] is True
    assert [len(w["steps"]) for w in doc["workflows"]] == [2, 2]
    assert len(project.calls()) == 2


def test_targets_go_with_one_workflow(project: Project) -> None:
    project.write(SIMPLE)
    result = project.cli("run", str(project.workflow), str(project.workflow), "apple", expect=2)
    assert "targets go with one workflow" in result.output


def test_gemflow_yaml_is_the_default_workflow(project: Project, monkeypatch) -> None:
    monkeypatch.chdir(project.root)
    (project.root / "gemflow.yaml").write_text(SIMPLE)
    doc = json.loads(project.cli("run", "--base-url", project.emulator.url, "--json").stdout)
    assert doc["workflow"].endswith("gemflow.yaml")
    monkeypatch.chdir(project.root.parent)
    result = project.cli("run", expect=2)
    assert "there is no gemflow.yaml here" in result.output


@pytest.mark.parametrize("target", ["apple", "small"])
def test_a_target_after_the_workflow_still_works(project: Project, target: str) -> None:
    project.write(SIMPLE)
    doc = project.run_json(target)
    assert target in {s["id"] for s in doc["steps"]}


HOSTILE = "\x1b[2J\x1b]0;title\x07\rforged\nline\u202e\x9b31m"


@pytest.mark.parametrize("styled", [False, True], ids=["plain", "rich"])
def test_the_terminal_writes_control_characters_from_outside_as_escapes(
    styled: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.console import Console

    from gemflow.engine.events import Notice, StepFinished, StepReport
    from gemflow.engine.reasons import reason
    from gemflow.report.terminal import TerminalReporter

    console = Console(stderr=True, highlight=False, soft_wrap=True) if styled else None
    terminal = TerminalReporter(console)
    terminal(Notice(f"warning from outside: {HOSTILE}"))
    failed = StepReport(
        id="apple",
        kind="generate",
        status=Status.FAILED,
        reason=reason("new-step"),
        output="out/apple.png",
        error=f"no image returned (STOP): {HOSTILE}",
        result={"verdict": HOSTILE},
    )
    terminal(StepFinished(failed))
    terminal.failure(failed)
    shown = capsys.readouterr().err
    assert not [c for c in shown if (c < " " and c != "\n") or "\x7f" <= c <= "\x9f"]
    assert "\u202e" not in shown
    assert "\\x1b[2J\\x1b]0;title\\x07\\x0dforged\\x0aline\\u202e\\x9b31m" in shown
    assert len(shown.splitlines()) == 4  # the notice, the step and its error, the failure
