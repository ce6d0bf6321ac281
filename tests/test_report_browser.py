"""The report in a real browser (Debian's chromium, headless), opened from a file:// URL as a person
would open it: every picture decodes, an edit's slider moves its clip, a lineage node scrolls to
its card, the full-size view fits the window. The page's own self-test (``#selftest``) does the
clicking and writes what it found into the page, which ``--dump-dom`` hands back.

A screenshot of each report is kept: under the test's tmp folder, and in ``$GEMFLOW_ARTIFACTS``
when it is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import FAKE_KEY

from gemflow.cli import cli
from gemflow.emulator import Emulator

CHROMIUM = shutil.which("chromium")
EXAMPLES = Path(__file__).parent.parent / "workflows"
RESULT = re.compile(r'<pre id="selftest-result"[^>]*>(.*?)</pre>', re.S)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium); .ci/run installs it",
)


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [
        str(CHROMIUM),
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def self_test(report: Path, profile: Path) -> dict:
    """The page's self-test, in a window shorter than the page, so a lineage click must scroll."""
    done = chromium(
        profile,
        "--window-size=1400,900",
        "--virtual-time-budget=10000",
        "--dump-dom",
        report.as_uri() + "#selftest",
    )
    found = RESULT.search(done.stdout)
    assert found and found[1], f"no self-test result; chromium said: {done.stderr[-2000:]}"
    import html

    result: dict = json.loads(html.unescape(found[1]))
    return result


def screenshot(report: Path, profile: Path, name: str, tmp_path: Path) -> Path:
    folder = tmp_path / "artifacts"
    folder.mkdir(exist_ok=True)
    shot = folder / f"{name}.png"
    chromium(profile, f"--screenshot={shot}", "--window-size=1400,2000", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000, "no screenshot"
    if target := os.environ.get("GEMFLOW_ARTIFACTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)
    return shot


def built_report(name: str, tmp_path: Path, emulator: Emulator, *extra: str) -> Path:
    """An example workflow, run on the emulator with --report."""
    folder = tmp_path / "workflows"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("out", "*.lock", "*.html"))
    env = {"GEMINI_API_KEY": FAKE_KEY, "GEMFLOW_CACHE_DIR": str(tmp_path / "cache")}
    argv = ["run", str(folder / f"{name}.yaml"), "--base-url", emulator.url, "--report", *extra]
    result = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder / f"{name}.report.html"


@pytest.mark.parametrize("name", ["quickstart", "sweep", "probe"])
def test_the_report_works_in_a_browser(name: str, tmp_path: Path, emulator: Emulator) -> None:
    report = built_report(name, tmp_path, emulator)
    found = self_test(report, tmp_path / "profile")
    assert found.get("error") is None, found
    assert found["images"] > 0 and found["broken"] == [], found
    lineage = found["lineage"]
    assert lineage["hash"] == lineage["target"], lineage
    assert lineage["inView"], lineage
    lightbox = found["lightbox"]
    assert lightbox["open"] and lightbox["naturalWidth"] > 0 and lightbox["fits"], lightbox
    if name == "quickstart":  # two edits: each has a before/after slider
        assert found["slider"]["works"], found["slider"]
    screenshot(report, tmp_path / "profile", name, tmp_path)


def test_a_missing_full_size_file_is_said_not_hidden(tmp_path: Path, emulator: Emulator) -> None:
    report = built_report("quickstart", tmp_path, emulator)
    (report.parent / "out" / "pancake.png").unlink()
    found = self_test(report, tmp_path / "profile")
    lightbox = found["lightbox"]  # the first full-size link is pancake's
    assert lightbox["naturalWidth"] == 0
    assert lightbox["message"].startswith("The full-size file is not there (out/pancake.png)")
    assert found["broken"] == []  # the thumbnails are in the page itself
