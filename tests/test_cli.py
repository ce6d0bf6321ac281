"""The command line: documented exit codes, one-line errors, python -m gemflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from gemflow.cli import cli


def test_help_lists_the_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "Exit codes" in result.output
    assert "130" in result.output


def test_python_dash_m_gemflow_works(isolated_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gemflow", "--help"],
        capture_output=True,
        text=True,
        env=isolated_env,
        check=False,
    )
    assert result.returncode == 0
    assert "run" in result.stdout


def test_help_does_not_import_the_sdk_or_pillow(isolated_env: dict[str, str]) -> None:
    code = (
        "import sys; from gemflow.cli import cli; "
        "print(any(m.startswith(('google.genai', 'PIL', 'networkx', 'diskcache', 'jsonschema')) "
        "for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=isolated_env, check=True
    )
    assert result.stdout.strip() == "False"


def test_an_invalid_workflow_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("version: 1\nsteps:\n  a: {kind: genrate}\n  b: {kind: generate}\n")
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert (
        lines[0].startswith("error: ") and "wf.yaml:3: step 'a': unknown kind 'genrate'" in lines[0]
    )
    assert "wf.yaml:4: step 'b'" in lines[1]
    assert lines[-1] == "3 problems; nothing was run"
    assert "Traceback" not in result.output


def test_a_missing_workflow_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such workflow file" in result.stderr


def test_an_unusable_cache_dir_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nsteps:\n  a: {kind: generate, prompt: x, model: gemini-3-pro-image}\n"
    )
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(
        cli, ["run", str(path), "--dry-run", "--cache-dir", str(blocker / "c")]
    )
    assert result.exit_code == 3
    assert "cannot open the cache" in result.stderr


def test_emulator_rewrite_makes_a_probe_say_rewritten_and_is_its_own_service(
    tmp_path: Path,
) -> None:
    import json
    import shutil

    shutil.copy(Path(__file__).parent.parent / "workflows" / "probe.yaml", tmp_path / "probe.yaml")
    env = {"GEMFLOW_CACHE_DIR": str(tmp_path / "cache")}
    args = ["run", str(tmp_path / "probe.yaml"), "--json"]
    rewritten = CliRunner().invoke(cli, [*args, "--emulator-rewrite", "system"], env=env)
    assert rewritten.exit_code == 0, rewritten.output
    assert json.loads(rewritten.stdout)["steps"][0]["result"]["verdict"] == "rewritten"
    plain = CliRunner().invoke(cli, [*args, "--emulator"], env=env)
    step = json.loads(plain.stdout)["steps"][0]
    assert (step["status"], step["result"]["verdict"]) == ("run", "verbatim")


def test_an_unknown_rewrite_mode_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "wf.yaml", "--emulator-rewrite", "bogus"])
    assert result.exit_code == 2
    assert "unknown rewrite mode 'bogus'" in result.output
