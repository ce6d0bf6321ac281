"""The lock file survives what people and git do to it: a merge conflict around one entry, a file
from a newer gemflow, a folder or a pipe in its place, two runs finishing together."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import Project

import gemflow
from gemflow.cache.lockfile import LockFile, exclusive
from gemflow.errors import WorkflowError
from gemflow.workflow.load import load_workflow

THREE = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  a: {kind: generate, prompt: An apple.}
  b: {kind: generate, prompt: A banana.}
  c: {kind: generate, prompt: A cherry.}
"""


def conflicted(lock: Path, step: str) -> None:
    """Put git's merge markers around ``step``'s line, with another version of it."""
    lines = lock.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(f'"{step}"'))
    theirs = lines[at].replace('"digest": "sha256:', '"digest": "sha256:0')
    lines[at : at + 1] = ["<<<<<<< HEAD", lines[at], "=======", theirs, ">>>>>>> other"]
    lock.write_text("\n".join(lines) + "\n")


def test_a_conflict_around_one_entry_skips_only_that_entry(project: Project) -> None:
    project.write(THREE)
    project.run()
    conflicted(project.root / "wf.lock", "b")
    result = project.run("--json")
    assert "wf.lock: skipped 1 unreadable entry (b); the rest was read" in result.stderr
    doc = json.loads(result.stdout)
    assert {s["id"]: s["status"] for s in doc["steps"]} == dict.fromkeys("abc", "cached")
    assert len(project.calls()) == 3
    assert "<<<<<<<" not in (project.root / "wf.lock").read_text()  # written whole again


def test_a_lock_file_of_a_newer_gemflow_is_refused_and_left_alone(project: Project) -> None:
    project.write(THREE)
    project.run()
    lock = project.root / "wf.lock"
    newer = lock.read_text().replace('"version": 1', '"version": 2')
    lock.write_text(newer)
    result = project.run(expect=3)
    assert "wf.lock was written by a newer gemflow (lock version 2" in result.output
    assert lock.read_text() == newer


@pytest.mark.parametrize("what", ["folder", "fifo"])
def test_a_lock_path_that_is_not_a_file_is_one_clear_error(project: Project, what: str) -> None:
    project.write(THREE)
    lock = project.root / "wf.lock"
    if what == "folder":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    result = project.run(expect=3)
    assert "wf.lock is not a regular file: move it away to run" in result.output
    assert "Traceback" not in result.output


def test_reading_merging_and_writing_a_lock_file_is_exclusive(tmp_path: Path) -> None:
    order: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with exclusive(tmp_path):
            inside.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait()
    with exclusive(tmp_path):
        order.append("second in")
    thread.join()
    assert order == ["first done", "second in"]


def test_two_runs_with_different_targets_keep_each_others_entries(project: Project) -> None:
    project.write(THREE)
    results: list[bool] = []

    def run(target: str) -> None:
        result = gemflow.run(
            project.workflow,
            [target],
            api_key="k",
            base_url=project.emulator.url,
            cache=project.root / "cache",
        )
        results.append(result.ok)

    threads = [threading.Thread(target=run, args=(t,)) for t in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True, True, True]
    assert sorted(LockFile.load(project.root / "wf.lock").entries) == ["a", "b", "c"]


def test_a_workflow_named_like_a_lock_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.lock").write_text(THREE)
    with pytest.raises(WorkflowError, match="would be overwritten by its own lock file"):
        load_workflow(tmp_path / "x.lock")


def test_a_yaml_and_a_yml_of_one_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(THREE)
    (tmp_path / "a.yml").write_text(THREE)
    with pytest.raises(WorkflowError, match=r"a\.yaml and a\.yml would share a\.lock"):
        load_workflow(tmp_path / "a.yaml")
