"""The no-op stamp (gemflow.engine.stamp): a run that had nothing to do is replayed by the same
command while nothing it read has changed, and never once anything has: every change below is
seen, and what it costs is counted at the emulator."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest
from conftest import Project

import gemflow.workflow.plan

WORKFLOW = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  hero: {kind: generate, prompt_file: prompts/hero.md}
  scene: {kind: edit, images: [hero, photos/me.jpg], prompt: Put them in the scene.}
  small: {kind: resize, image: scene, width: 64, output: out/small.png}
"""


class Loads:
    """How many runs loaded the workflow (a replayed run loads nothing)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        load = gemflow.workflow.plan.load_planned

        def counted(*args: object, **kwargs: object) -> object:
            self.count += 1
            return load(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(gemflow.workflow.plan, "load_planned", counted)


@pytest.fixture(autouse=True)
def settled_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Collect garbage before each command. A run in this process leaves its worker threads'
    SQLite connections to be closed when collected, and closing the last one checkpoints the
    store's database, at a moment no process run could show: the stamp sees the store change."""
    invoke = Project.cli

    def collected_first(self: Project, *argv: str, expect: int | None = 0) -> object:
        gc.collect()
        return invoke(self, *argv, expect=expect)

    monkeypatch.setattr(Project, "cli", collected_first)


@pytest.fixture
def built(project: Project, monkeypatch: pytest.MonkeyPatch) -> tuple[Project, Loads]:
    (project.root / "prompts").mkdir()
    (project.root / "prompts" / "hero.md").write_text("A paladin, age 30.\n")
    project.add_photo()
    project.write(WORKFLOW)
    project.run()  # builds
    project.run()  # nothing to do: stamped
    loads = Loads(monkeypatch)
    return project, loads


def statuses(doc: dict) -> dict[str, str]:
    return {step["id"]: step["status"] for step in doc["steps"]}


def test_a_no_op_is_replayed_with_the_same_report(built: tuple[Project, Loads]) -> None:
    project, loads = built
    replayed = project.run_json()
    assert loads.count == 0
    (stamp,) = (project.root / "cache" / "plans").glob("*.stamp")
    stamp.unlink()
    ran = project.run_json()
    assert loads.count == 1
    for doc in (replayed, ran):
        for step in doc["steps"]:
            step.pop("seconds")
    assert replayed == ran
    assert len(project.calls()) == 2


def touch_later(path: Path) -> None:
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


@pytest.mark.parametrize(
    "change, expected, calls",
    [
        ("output edited", {"small": "restore"}, 0),
        ("output deleted", {"small": "restore"}, 0),
        ("input touched", {}, 0),
        ("input changed", {"scene": "run", "small": "run"}, 1),
        ("prompt file changed", {"hero": "run", "scene": "run", "small": "run"}, 2),
        ("workflow changed", {"small": "run"}, 0),
        ("lock file rewritten", {}, 0),
        ("stored result removed", {}, 0),
        ("stored result replaced", {"small": "restore"}, 0),
    ],
)
def test_each_change_is_seen(
    built: tuple[Project, Loads], change: str, expected: dict[str, str], calls: int
) -> None:
    project, loads = built
    root = project.root
    before = len(project.calls())
    if change == "output edited":
        (root / "out" / "small.png").write_bytes(b"not the picture")
    elif change == "output deleted":
        (root / "out" / "small.png").unlink()
    elif change == "input touched":
        touch_later(root / "photos" / "me.jpg")
    elif change == "input changed":
        photo = root / "photos" / "me.jpg"
        photo.write_bytes(photo.read_bytes() + b"\0")
    elif change == "prompt file changed":
        (root / "prompts" / "hero.md").write_text("A knight, age 30.\n")
    elif change == "workflow changed":
        project.write(WORKFLOW.replace("width: 64", "width: 65"))
    elif change == "lock file rewritten":
        lock = root / "wf.lock"
        lock.write_text(lock.read_text())
    elif change.startswith("stored result"):
        from gemflow.cache.local import Store

        key = project.lock["steps"]["small"]["key"]
        with Store(root / "cache") as store:
            if change.endswith("removed"):
                store.delete(key)
            else:  # what another workflow's --force of the same step does
                store.put(key, b"another picture", {})
    doc = project.run_json()
    assert loads.count == 1, "the stamp was used after a change"
    assert {k: v for k, v in statuses(doc).items() if v != "cached"} == expected
    assert len(project.calls()) - before == calls
    project.run()  # a no-op now, stamped (if the run before was not one already)
    settled = loads.count
    assert set(statuses(project.run_json()).values()) == {"cached"}
    assert loads.count == settled  # replayed


@pytest.mark.parametrize(
    "args",
    [["--force", "small"], ["--reroll", "hero"], ["--report", "r.html"], ["small"]],
)
def test_other_commands_are_not_answered_by_the_stamp(
    built: tuple[Project, Loads], args: list[str]
) -> None:
    project, loads = built
    project.run(*args)
    assert loads.count == 1


def test_results_added_by_other_runs_leave_the_stamp_good(built: tuple[Project, Loads]) -> None:
    project, loads = built
    from gemflow.cache.local import Store

    with Store(project.root / "cache") as store:  # opening it rewrites its database, too
        store.put("sha256:" + "0" * 64, b"another workflow's picture", {})
    project.run()
    assert loads.count == 0


def test_a_dry_run_and_a_run_in_turn_are_both_replayed(built: tuple[Project, Loads]) -> None:
    project, loads = built
    for _ in range(3):
        project.run("--dry-run")
        project.run()
    assert loads.count == 1  # the dry run's first time


def test_another_endpoint_or_a_dry_run_has_a_stamp_of_its_own(
    built: tuple[Project, Loads],
) -> None:
    project, loads = built
    dry = project.run_json("--dry-run")
    assert dry["dry_run"] and set(statuses(dry).values()) == {"cached"}
    assert loads.count == 1
    assert project.run_json("--dry-run")["dry_run"]
    assert loads.count == 1  # the dry run's own stamp
    project.run("--emulator", expect=1)  # another service: not answered by this one's stamp
    assert loads.count == 2
    assert not project.run_json()["dry_run"]
    assert loads.count == 2  # the first stamp holds still


def test_a_damaged_or_planted_stamp_is_not_used(built: tuple[Project, Loads]) -> None:
    project, loads = built
    (stamp,) = (project.root / "cache" / "plans").glob("*.stamp")
    planted = json.loads(stamp.read_text())
    planted["files"] = {}
    planted["reports"][0]["status"] = "run"
    stamp.write_text(json.dumps(planted)[:-5])
    project.run()
    assert loads.count == 1


def test_a_run_with_a_failure_or_a_notice_is_not_stamped(project: Project) -> None:
    project.write(
        """\
        version: 1
        defaults: {model: gemini-3.1-flash-image}
        steps:
          a: {kind: generate, prompt: A lighthouse.}
          b: {kind: resize, image: missing.png, width: 64}
        """
    )
    project.run(expect=2)
    (project.root / "missing.png").write_bytes(b"not an image")
    project.run(expect=1)
    project.run(expect=1)
    assert not list((project.root / "cache" / "plans").glob("*.stamp"))


def test_gemflow_no_stamp_decides_every_step(
    built: tuple[Project, Loads], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, loads = built
    monkeypatch.setenv("GEMFLOW_NO_STAMP", "1")
    project.run()
    project.run()
    assert loads.count == 2


def test_only_the_most_recent_stamps_are_kept(
    built: tuple[Project, Loads], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gemflow.engine.stamp

    project, _ = built
    monkeypatch.setattr(gemflow.engine.stamp, "KEEP_STAMPS", 2)
    for jobs in ("2", "3", "4"):
        project.run("--jobs", jobs)
        project.run("--jobs", jobs)
    stamps = list((project.root / "cache" / "plans").glob("*.stamp"))
    assert len(stamps) == 2
