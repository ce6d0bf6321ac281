"""``gemflow validate``: every problem and warning of each file, nothing sent, exit 0 or 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gemflow.cli import cli

EXAMPLES = sorted((Path(__file__).parent.parent / "workflows").glob("*.yaml"))

BROKEN = """\
version: 1
steps:
  a:
    kind: edit
    prompt: x
    images: [nope]
    output: ../escape.png
"""

WARNED = """\
version: 1
steps:
  a:
    kind: generate
    model: gemini-3-pro-image
    prompt: x
    matrix:
      style: [plain, noir]
"""


def validate(*args: str, expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["validate", *args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return result


def test_valid_workflows_exit_0_and_say_so() -> None:
    result = validate(*map(str, EXAMPLES))
    for path in EXAMPLES:
        assert f"{path}: valid, " in result.stdout
    assert result.stdout.splitlines()[-1] == f"all {len(EXAMPLES)} workflows are valid"
    assert "sweep.yaml: valid, 3 steps (21 instances)" in result.stdout


def test_every_problem_of_a_step_is_reported_even_after_a_missing_model(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(BROKEN)
    result = validate(str(path), expect=2)
    errors = result.stderr.splitlines()
    assert len(errors) == 3
    assert "wf.yaml:4: step 'a': missing 'model'" in errors[0]
    assert "wf.yaml:6: step 'a': 'nope' is neither a step nor a file" in errors[1]
    assert "output path '../escape.png' leaves the workflow's folder" in errors[2]
    assert result.stdout == f"{path}: invalid, 3 problems\n"


def test_several_files_are_each_checked(tmp_path: Path) -> None:
    broken, fine = tmp_path / "broken.yaml", tmp_path / "fine.yaml"
    broken.write_text(BROKEN)
    fine.write_text(WARNED.replace("matrix:\n      style: [plain, noir]\n", ""))
    result = validate(str(broken), str(fine), str(tmp_path / "absent.yaml"), expect=2)
    assert f"{fine}: valid, 1 step" in result.stdout
    assert f"{tmp_path / 'absent.yaml'}: invalid, 1 problem" in result.stdout
    assert "absent.yaml: no such workflow file" in result.stderr
    assert result.stdout.splitlines()[-1] == "2 of 3 workflows are invalid"


def test_warnings_are_printed_for_valid_and_invalid_files(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WARNED)
    result = validate(str(path))
    assert "warning: " in result.stderr
    assert "matrix key 'style' is used nowhere" in result.stderr
    assert result.stdout == f"{path}: valid, 1 step (2 instances), 1 warning\n"
    path.write_text(WARNED.replace("prompt: x", "prompt: x\n    seed: many"))
    result = validate(str(path), expect=2)
    assert "matrix key 'style' is used nowhere" in result.stderr
    assert "'seed' must be a whole number" in result.stderr


def test_no_key_and_no_network_are_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    path = tmp_path / "wf.yaml"
    path.write_text(WARNED.replace("    matrix:\n      style: [plain, noir]\n", ""))
    validate(str(path))
    assert not (tmp_path / "cache").exists()


def test_allow_outside_accepts_paths_outside_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        BROKEN.replace("kind: edit", "kind: generate\n    model: gemini-3-pro-image").replace(
            "    images: [nope]\n", ""
        )
    )
    validate(str(path), expect=2)
    validate(str(path), "--allow-outside")


def test_no_workflow_is_a_usage_error() -> None:
    assert CliRunner().invoke(cli, ["validate"]).exit_code == 2
