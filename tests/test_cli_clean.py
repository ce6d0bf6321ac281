"""``gemflow clean``: removes the outputs (and attachments) the lock file records, as recorded, and
nothing else; the cache restores them with no API call."""

from __future__ import annotations

import json

import pytest
from conftest import Project

from gemflow.engine.keys import digest

WORKFLOW = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  a: {kind: generate, prompt: A pancake.}
  b: {kind: edit, images: [a, photos/me.jpg], prompt: Put it on a plate.}
  many:
    kind: generate
    prompt: A waffle.
    matrix: {aspect_ratio: ["1:1", "16:9"]}
  unsafe: {kind: generate, prompt: "[[emulator:image_safety]] No.", expect: refusal}
"""


@pytest.fixture
def built(project: Project) -> Project:
    project.add_photo()
    project.write(WORKFLOW)
    project.run()
    return project


def test_removes_the_recorded_outputs_and_emptied_folders_and_nothing_else(
    built: Project,
) -> None:
    keep = built.root / "out" / "notes.txt"
    keep.write_text("mine")
    result = built.cli("clean", str(built.workflow))
    assert result.stdout.splitlines()[:4] == [
        "removed out/a.png",
        "removed out/b.png",
        "removed out/many/16x9.png",
        "removed out/many/1x1.png",
    ]
    assert "removed out/many/ (left empty)" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("removed 4 files (")
    assert sorted(p.name for p in (built.root / "out").iterdir()) == ["notes.txt"]
    for kept in ("wf.yaml", "wf.lock", "photos/me.jpg", "out/notes.txt"):
        assert (built.root / kept).exists(), kept
    calls = len(built.calls())
    doc = built.run_json()
    assert {s["status"] for s in doc["steps"]} == {"restore", "cached"}
    assert len(built.calls()) == calls


def test_an_edited_output_is_kept_and_reported(built: Project) -> None:
    edited = built.root / "out" / "a.png"
    edited.write_bytes(b"my own pancake")
    result = built.cli("clean", str(built.workflow))
    assert edited.read_bytes() == b"my own pancake"
    assert "kept out/a.png: differs from the lock file" in result.stderr
    assert "; kept 1" in result.stdout


def test_dry_run_removes_nothing(built: Project) -> None:
    result = built.cli("clean", str(built.workflow), "--dry-run")
    assert "would remove out/a.png" in result.stdout
    assert "would remove out/many/ (left empty)" in result.stdout
    assert (built.root / "out" / "a.png").exists()
    assert (built.root / "out" / "many" / "1x1.png").exists()


def test_attachments_go_with_their_output(project: Project) -> None:
    project.write(
        "version: 1\nsteps:\n  p: {kind: probe, model: gemini-3.1-flash-image, "
        "probes: [current], repeat: 1}\n"
    )
    project.run()
    attachments = project.lock["steps"]["p"]["attachments"]
    assert attachments
    project.cli("clean", str(project.workflow))
    assert not (project.root / "out").exists()


def test_a_lock_file_cannot_make_it_remove_a_file_outside_the_folder(built: Project) -> None:
    victim = built.root.parent / "victim.png"
    victim.write_bytes(b"precious")
    lock = built.lock
    lock["steps"]["a"]["output"] = "../victim.png"
    lock["steps"]["a"]["digest"] = digest(b"precious")
    (built.root / "wf.lock").write_text(json.dumps(lock))
    result = built.cli("clean", str(built.workflow))
    assert victim.read_bytes() == b"precious"
    assert "kept ../victim.png: outside the workflow's folder" in result.stderr


def test_a_symlink_where_an_output_was_is_kept(built: Project) -> None:
    target = built.root / "out" / "a.png"
    moved = built.root / "a-real.png"
    target.rename(moved)
    target.symlink_to(moved)
    result = built.cli("clean", str(built.workflow))
    assert target.is_symlink() and moved.exists()
    assert "kept out/a.png: a symbolic link" in result.stderr


def test_a_workflow_never_run_has_nothing_to_remove(project: Project) -> None:
    project.write(WORKFLOW)
    result = project.cli("clean", str(project.workflow))
    assert "wf.lock does not exist: nothing was made to remove" in result.stdout


def test_a_missing_workflow_exits_2(project: Project) -> None:
    result = project.cli("clean", str(project.root / "nope.yaml"), expect=2)
    assert result.stderr.strip() == f"error: {project.root / 'nope.yaml'}: no such workflow file"


def test_what_runs_on_the_built_in_emulator_made_is_removed_too(project: Project) -> None:
    """``--emulator`` runs record their outputs in ``wf.emulator.lock``."""
    project.add_photo()
    project.write(WORKFLOW)
    project.cli("run", str(project.workflow), "--emulator")
    assert not (project.root / "wf.lock").exists()
    made = sorted(p.name for p in (project.root / "out").rglob("*") if p.is_file())
    result = project.cli("clean", str(project.workflow))
    assert f"removed {len(made)} files" in result.stdout
    assert not (project.root / "out").exists()
    again = project.cli("run", str(project.workflow), "--emulator", "--json")
    assert {s["status"] for s in json.loads(again.stdout)["steps"]} == {"restore", "cached"}
