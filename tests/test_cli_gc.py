"""``gemflow cache gc``: removes the store entries no lock file refers to, and never one a lock
file still needs: current results, takes, expected refusals, the calls of kept steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Project

from gemflow.cache.gc import find_locks
from gemflow.cache.local import Store

WORKFLOW = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  a: {kind: generate, prompt: A pancake.}
  b: {kind: edit, images: [a], prompt: Put it on a plate.}
"""


def keys(project: Project) -> list[str]:
    with Store(project.root / "cache") as store:
        return store.keys()


def gc(project: Project, *args: str, expect: int = 0) -> str:
    result = project.cli("cache", "gc", str(project.root), *args, expect=expect)
    assert "Traceback" not in result.output
    return result.stdout + result.stderr


def test_results_no_lock_names_are_removed_and_current_ones_kept(project: Project) -> None:
    project.write(WORKFLOW)
    project.run()
    project.write(WORKFLOW.replace("A pancake.", "A waffle."))
    project.run()
    assert len(keys(project)) == 4
    out = gc(project)
    assert "1 lock file: " in out and "wf.lock" in out
    assert "4 entries; removed 2 (" in out
    assert sorted(keys(project)) == sorted(e["key"] for e in project.lock["steps"].values())
    calls = len(project.calls())
    assert {s["status"] for s in project.run_json()["steps"]} == {"cached"}
    project.write(WORKFLOW)  # reverting now pays again: that is what gc gives up
    project.run()
    assert len(project.calls()) == calls + 2


def test_dry_run_says_what_it_would_free_and_removes_nothing(project: Project) -> None:
    project.write(WORKFLOW)
    project.run()
    project.write(WORKFLOW.replace("A pancake.", "A waffle."))
    project.run()
    out = gc(project, "--dry-run", "--verbose")
    assert "4 entries; would remove 2 (" in out and " kB)" in out
    assert "(a)" in out and "(b)" in out
    assert len(keys(project)) == 4


def test_every_take_is_kept(project: Project) -> None:
    project.write(WORKFLOW)
    project.run()
    project.run("--reroll", "a")
    project.run("--force", "b")
    before = set(keys(project))
    takes = {t["key"] for e in project.lock["steps"].values() for t in e.get("takes", [])}
    assert len(takes) == 4
    gc(project)
    assert takes <= set(keys(project))
    removed = before - set(keys(project))
    assert all(not k.startswith("sha256:") or k not in takes for k in removed)
    history = project.cli("history", str(project.workflow), "a").stdout
    assert "no longer in the cache" not in history


def test_an_expected_refusal_is_kept_and_a_failed_ones_is_not(project: Project) -> None:
    project.write(
        "version: 1\ndefaults: {model: gemini-3.1-flash-image}\nsteps:\n"
        '  must: {kind: generate, prompt: "[[emulator:image_safety]] No.", expect: refusal}\n'
        '  oops: {kind: generate, prompt: "[[emulator:image_safety]] Also no."}\n'
    )
    project.run(expect=1)
    assert sum(k.startswith("refusal/") for k in keys(project)) == 2
    gc(project)
    kept = [k for k in keys(project) if k.startswith("refusal/")]
    assert kept == ["refusal/" + project.lock["steps"]["must"]["key"]]
    calls = len(project.calls())
    project.run(expect=1)
    assert len(project.calls()) == calls + 1  # only the failed step is asked again


def test_a_probes_calls_are_kept_while_its_step_is_locked(project: Project) -> None:
    probe = (
        "version: 1\nsteps:\n  p: {kind: probe, model: gemini-3.1-flash-image, "
        "probes: [current], repeat: REPEAT}\n"
    )
    project.write(probe.replace("REPEAT", "1"))
    project.run()
    per_sample = len(project.calls())
    project.write(probe.replace("REPEAT", "2"))
    project.run()
    assert len(project.calls()) == 2 * per_sample
    out = gc(project, "--all")  # the repeat-1 result goes; its calls serve repeat 2 too
    assert "removed 1 (" in out
    project.write(probe.replace("REPEAT", "3"))
    project.run()
    assert len(project.calls()) == 3 * per_sample  # samples 0 and 1 were not asked again


def test_calls_stored_before_steps_were_recorded_are_kept_unless_all(project: Project) -> None:
    project.write(WORKFLOW)
    project.run()
    with Store(project.root / "cache") as store:
        store.put("call/sha256:old", b"", {"response": {"has_image": False}})
        store.put("call/sha256:orphan", b"", {"response": {}, "steps": ["sha256:gone"]})
    out = gc(project)
    assert "kept 1 single call stored before gemflow recorded their steps (--all" in out
    assert "call/sha256:old" in keys(project)
    assert "call/sha256:orphan" not in keys(project)
    gc(project, "--all")
    assert "call/sha256:old" not in keys(project)


def test_thumbnails_of_recorded_pictures_and_unknown_entries_are_kept(project: Project) -> None:
    project.write(WORKFLOW)
    project.run()
    output = project.lock["steps"]["a"]["digest"]
    with Store(project.root / "cache") as store:
        store.put(f"thumb/{output}", b"t", {})
        store.put(f"thumb/{output.removeprefix('sha256:')[:16]}/256", b"t", {})
        store.put("thumb/sha256:" + "0" * 64, b"t", {})
        store.put("someone-elses/entry", b"x", {})
    gc(project)
    left = keys(project)
    assert f"thumb/{output}" in left
    assert f"thumb/{output.removeprefix('sha256:')[:16]}/256" in left
    assert "thumb/sha256:" + "0" * 64 not in left
    assert "someone-elses/entry" in left


def test_an_unreadable_lock_file_stops_it_and_nothing_is_removed(project: Project) -> None:
    project.write(WORKFLOW)
    project.run()
    project.write(WORKFLOW.replace("A pancake.", "A waffle."))
    project.run()
    (project.root / "wf.lock").write_text("{not json")
    out = gc(project, expect=2)
    assert "wf.lock is unreadable" in out and "nothing removed" in out
    assert len(keys(project)) == 4


def test_no_lock_file_stops_it(project: Project, tmp_path: Path) -> None:
    project.write(WORKFLOW)
    project.run()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = project.cli("cache", "gc", str(empty), expect=2)
    assert "no lock file found: nothing removed" in result.stderr
    assert len(keys(project)) == 2


def test_no_cache_is_a_configuration_error(tmp_path: Path, project: Project) -> None:
    result = project.cli("cache", "gc", "--cache-dir", str(tmp_path / "none"), expect=3)
    assert "no cache at" in result.stderr


def test_locks_are_found_beside_their_workflows_in_every_folder_below(tmp_path: Path) -> None:
    for name in ("a/one", "a/b/two", ".hidden/three", "c/orphan"):
        path = tmp_path / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"version": 1, "steps": {}}))
        if "orphan" not in name:
            path.with_suffix(".yaml").write_text("steps: {}")
    (tmp_path / "poetry.lock").write_text("[[package]]")
    found = find_locks([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/b/two.lock", "a/one.lock"]
    assert find_locks([tmp_path / "a" / "one.yaml"]) == [tmp_path / "a" / "one.lock"]
    (tmp_path / "a" / "one.emulator.lock").write_text(json.dumps({"version": 1, "steps": {}}))
    assert find_locks([tmp_path / "a" / "one.yaml"]) == [
        tmp_path / "a" / "one.emulator.lock",
        tmp_path / "a" / "one.lock",
    ]
    assert len(find_locks([tmp_path])) == 3
    with pytest.raises(Exception, match="no such folder"):
        find_locks([tmp_path / "missing"])


def test_plans_of_workflows_no_longer_there_are_removed(project: Project) -> None:
    """A plan (a loaded workflow kept for the next run) is kept while its workflow file is
    there; one of a removed workflow, or one that cannot be read, is of no use."""
    project.write(WORKFLOW)
    project.run()
    other = project.root / "elsewhere" / "other.yaml"
    other.parent.mkdir()
    other.write_text(WORKFLOW.replace("A pancake.", "A waffle."))
    project.cli("run", str(other), "--base-url", project.emulator.url)
    plans = project.root / "cache" / "plans"
    assert len(list(plans.glob("*.plan"))) == 2
    (plans / "damaged.plan").write_bytes(b"not a plan")
    other.unlink()
    out = gc(project, "--dry-run")
    assert "would remove 2 plans of workflow files no longer there" in out
    assert len(list(plans.glob("*.plan"))) == 3
    out = gc(project)
    [said] = [line for line in out.splitlines() if "plans of" in line]
    assert said.startswith("removed 2 plans of workflow files no longer there (")
    assert not said.endswith("(0.0 kB)")  # measured before they went
    [kept] = plans.glob("*.plan")
    assert kept.stat().st_size > 1000
    assert "plans of" not in gc(project)  # nothing more to say
    calls = len(project.calls())
    assert {s["status"] for s in project.run_json()["steps"]} == {"cached"}
    assert len(project.calls()) == calls


def test_what_runs_on_the_built_in_emulator_made_is_kept(project: Project) -> None:
    """Runs with ``--emulator`` keep ``wf.emulator.lock`` beside ``wf.lock``: a lock file too."""
    project.write(WORKFLOW)
    project.cli("run", str(project.workflow), "--emulator")
    assert (project.root / "wf.emulator.lock").is_file()
    before = keys(project)
    out = gc(project)
    assert "1 lock file: " in out and "wf.emulator.lock" in out and "removed 0 " in out
    assert keys(project) == before
    again = project.cli("run", str(project.workflow), "--emulator", "--json")
    assert {s["status"] for s in json.loads(again.stdout)["steps"]} == {"cached"}
