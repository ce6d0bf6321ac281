"""Every example in workflows/ runs on the emulator, and a second run pays for nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FAKE_KEY

from gemflow.cli import cli
from gemflow.emulator import Emulator

EXAMPLES = Path(__file__).parent.parent / "workflows"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_an_example_runs_and_reruns_for_free(tmp_path: Path, emulator: Emulator, name: str) -> None:
    folder = tmp_path / "workflows"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("out", "*.lock"))
    env = {"GEMINI_API_KEY": FAKE_KEY, "GEMFLOW_CACHE_DIR": str(tmp_path / "cache")}
    argv = ["run", str(folder / name), "--base-url", emulator.url]
    first = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    sent = len(emulator.api_calls())
    assert sent > 0
    again = CliRunner().invoke(cli, [*argv, "--json"], env=env, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert len(emulator.api_calls()) == sent
