"""``gemflow emulator``: the click command that serves the emulator in the foreground; the float
options of every command refuse nan and infinity."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click
import pytest
from click.testing import CliRunner

from gemflow.clicktypes import FiniteFloat
from gemflow.emulator.command import emulator_command

REPO = Path(__file__).resolve().parents[1]


def test_help_names_every_fault() -> None:
    from gemflow.emulator.faults import FAULT_NAMES

    result = CliRunner().invoke(emulator_command, ["--help"], catch_exceptions=False)
    listed = " ".join(result.output.split()).split("Names: ")[1].split(".")[0]
    assert listed.split() == list(FAULT_NAMES)


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(emulator_command, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    for option in (
        "--port",
        "--log",
        "--latency",
        "--faults",
        "--retry-delay",
        "--seed",
        "--scale",
        "--same-takes",
    ):
        assert option in result.output


def test_junk_fault_spec_is_a_usage_error() -> None:
    result = CliRunner().invoke(emulator_command, ["--port", "0", "--faults", "418=2"])
    assert result.exit_code == 2
    assert "--faults" in result.output


def test_serves_until_ctrl_c_then_exits_0_quietly(tmp_path: Path) -> None:
    log = tmp_path / "emulator.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "from gemflow.emulator.command import emulator_command; emulator_command()"
    args = ["--port", "0", "--scale", "0.05", "--log", str(log)]
    with subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        banner = _line_within(process.stderr, seconds=20)
        match = re.search(r"export GOOGLE_GEMINI_BASE_URL=(http://127\.0\.0\.1:\d+)", banner)
        assert match, banner
        request = urllib.request.Request(
            f"{match[1]}/v1/models/gemini-3-pro-image", headers={"x-goog-api-key": "k"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["name"] == "models/gemini-3-pro-image"
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=10)
        assert process.returncode == 0
    assert "Traceback" not in rest
    assert json.loads(log.read_text(encoding="utf-8"))["endpoint"] == "getModel"


def _line_within(stream: IO[str], *, seconds: float) -> str:
    """The next line of ``stream``; fails the test, instead of hanging it, if none comes in time."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout=seconds):
            pytest.fail(f"no line from the emulator within {seconds} s")
    return stream.readline()


def test_importing_the_command_does_not_import_pillow() -> None:
    """The main CLI registers this command; ``gemflow --help`` must not pay for Pillow."""
    code = "import sys, gemflow.emulator.command; sys.exit('PIL' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env).returncode == 0


def _float_options(command: click.Command, path: str = "gemflow") -> Iterator[tuple[str, Any]]:
    """(command path, option) for every option of ``command`` and its subcommands that takes a
    float."""
    for param in command.params:
        if isinstance(param, click.Option) and isinstance(param.type, click.types.FloatParamType):
            yield path, param
    if isinstance(command, click.Group):  # its commands as click finds them (imported lazily)
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from _float_options(sub, f"{path} {name}")


def test_every_float_option_of_every_command_is_a_finite_float() -> None:
    from gemflow.cli import cli

    found = list(_float_options(cli))
    assert any(path == "gemflow emulator" for path, _ in found)
    assert [
        f"{path} {param.opts[0]}"
        for path, param in found
        if not isinstance(param.type, FiniteFloat)
    ] == []


EMULATOR_FLOATS = [param.opts[0] for _, param in _float_options(emulator_command)]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("option", EMULATOR_FLOATS)
def test_a_float_option_that_is_not_finite_is_a_usage_error_in_one_line(
    option: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def started(**settings: object) -> None:
        raise AssertionError(f"the emulator was started with {option} {value}")

    monkeypatch.setattr("gemflow.emulator.Emulator", started)
    result = CliRunner().invoke(emulator_command, ["--port", "0", option, value])
    assert result.exit_code == 2, result.output
    [error] = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert error == f"Error: Invalid value for '{option}': {value} is not a finite number"
