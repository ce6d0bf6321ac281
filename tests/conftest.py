"""Shared fixtures. Every test runs in its own folder with a clean environment and no network:
API paths go through the real google-genai client to gemflow's emulator on loopback."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gemflow.cli import cli
from gemflow.emulator import Emulator
from gemflow.providers.base import Provider
from gemflow.providers.resilient import RateLimiter, ResilientProvider

FAKE_KEY = "AIzaTEST-fake-key-0123456789abcdef"
ENV_TO_SCRUB = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GEMFLOW_CACHE_DIR",
    "GOOGLE_GENAI_API_VERSION",
    "GEMFLOW_REMOTE",
    "GEMFLOW_REMOTE_PUSH",
    "GEMFLOW_REMOTE_TIMEOUT",
    "GEMFLOW_NO_STAMP",
)
PHOTOS = Path(__file__).parent.parent / "workflows" / "photos"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_TO_SCRUB:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """The emulator, at small scale. Like a real model it answers a repeated request with a new
    picture; a test marked ``same_takes`` gets the same bytes again (``vary_takes=False``)."""
    vary_takes = request.node.get_closest_marker("same_takes") is None
    with Emulator(scale=0.125, vary_takes=vary_takes) as emu:
        yield emu


@dataclass
class Project:
    """A workflow folder in a temp dir, run through the real CLI against the emulator."""

    root: Path
    emulator: Emulator

    @property
    def workflow(self) -> Path:
        return self.root / "wf.yaml"

    @property
    def lock(self) -> dict:
        return json.loads((self.root / "wf.lock").read_text())

    def write(self, text: str) -> Path:
        self.workflow.write_text(textwrap.dedent(text))
        return self.workflow

    def add_photo(self, name: str = "photos/me.jpg", source: str = "me.jpg") -> Path:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PHOTOS / source, target)
        return target

    def run(self, *args: str, expect: int | None = 0) -> Result:
        return self.cli(
            "run", str(self.workflow), "--base-url", self.emulator.url, *args, expect=expect
        )

    def cli(self, *argv: str, expect: int | None = 0) -> Result:
        """Any gemflow command, with this project's cache and a (fake) key."""
        env = {"GEMINI_API_KEY": FAKE_KEY, "GEMFLOW_CACHE_DIR": str(self.root / "cache")}
        result = CliRunner().invoke(cli, list(argv), env=env, catch_exceptions=False)
        if expect is not None:
            assert result.exit_code == expect, result.output
        return result

    def run_json(self, *args: str, expect: int | None = 0) -> dict:
        return json.loads(self.run("--json", *args, expect=expect).stdout)

    def calls(self) -> list[dict]:
        return self.emulator.api_calls()

    def prompts(self) -> list[str]:
        return [call["prompt"] for call in self.calls()]


@pytest.fixture
def project(tmp_path: Path, emulator: Emulator) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    return Project(root, emulator)


@pytest.fixture
def isolated_env() -> dict[str, str]:
    """The environment a subprocess should get: ours, without any API key or endpoint."""
    return {k: v for k, v in os.environ.items() if k not in ENV_TO_SCRUB}


class FakeTime:
    """A clock that moves only when something sleeps on it; every sleep is recorded."""

    def __init__(self, *, advance: bool = True) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.advance = advance
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            if self.advance:
                self.now += seconds


def patient(inner: Provider, fake: FakeTime, **options: float | None) -> ResilientProvider:
    """A ResilientProvider that sleeps on ``fake``, draws 0.5 and has a limiter of its own."""
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    return ResilientProvider(
        inner, sleep=fake.sleep, random=lambda: 0.5, limiter=limiter, **options
    )
