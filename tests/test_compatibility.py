"""A lock file, outputs and cache made by an earlier gemflow keep working: 0 API calls.

``fixtures/before_seams`` was made by gemflow 0.1.0 on the emulator (service "emulator") before the
engine was reorganised; every later change to the engine must leave its keys and files valid.

One deliberate exception: the probe kind's ``recipe_version`` went to 2 (its method changed, issue
10), so the old probe step ``check`` is judged again, from the answers its calls left in the cache:
it runs, and sends nothing while the old cache is there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gemflow import RunOptions, Store, load_workflow, run_workflow
from gemflow.emulator import Emulator
from gemflow.providers.connection import Connection

FIXTURE = Path(__file__).parent / "fixtures" / "before_seams"
STEPS = ["pancake", "fixed", "scene", "check", "sheet", "thumb"]
REJUDGED = "check"  # a probe step: its recipe_version is newer than the fixture's
PROBE_CALLS = 5  # before, current, after (NO_IMAGE); a reading of each of the two images


@pytest.fixture
def old_project(tmp_path: Path) -> Path:
    root = tmp_path / "old"
    shutil.copytree(FIXTURE, root)
    return root


def run(root: Path, emulator: Emulator) -> dict[str, str]:
    with Store(root / "cache") as store:
        summary = run_workflow(
            load_workflow(root / "wf.yaml"),
            store,
            RunOptions(),
            connection=Connection.emulator(url=emulator.url),
        )
    assert summary.ok
    return {report.id: str(report.status) for report in summary.steps}


def test_an_old_cache_and_lock_file_give_no_calls(old_project: Path, emulator: Emulator) -> None:
    assert run(old_project, emulator) == {**dict.fromkeys(STEPS, "cached"), REJUDGED: "run"}
    assert emulator.api_calls() == []


def test_an_old_lock_file_and_outputs_alone_give_no_calls(
    old_project: Path, emulator: Emulator
) -> None:
    shutil.rmtree(old_project / "cache")
    assert run(old_project, emulator) == {**dict.fromkeys(STEPS, "cached"), REJUDGED: "run"}
    # Only the probe asks again: without the cache, its calls' answers are gone.
    assert len(emulator.api_calls()) == PROBE_CALLS


def test_old_outputs_deleted_are_restored_from_the_old_cache(
    old_project: Path, emulator: Emulator
) -> None:
    shutil.rmtree(old_project / "out")
    assert run(old_project, emulator) == {**dict.fromkeys(STEPS, "restore"), REJUDGED: "run"}
    assert emulator.api_calls() == []
