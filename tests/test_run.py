"""Running workflows end to end: the real CLI and google-genai client against the emulator.

Each test proves a caching promise by counting the requests the emulator received.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import FAKE_KEY, Project

CHAIN = """\
version: 1
defaults:
  model: gemini-3.1-flash-image
  aspect_ratio: 1:1
steps:
  base:
    kind: generate
    prompt: A red apple.
  fixed:
    kind: edit
    images: [base]
    prompt: Add a leaf.
  scene:
    kind: edit
    images: [photos/me.jpg, fixed]
    prompt: The person holds the apple.
  other:
    kind: generate
    prompt: A blue pear.
  sheet:
    kind: composite
    images: [base, fixed, scene]
    columns: 3
  thumb:
    kind: resize
    image: sheet
    width: 64
    output: out/thumb.webp
"""


def built(project: Project) -> Project:
    project.add_photo()
    project.write(CHAIN)
    project.run()
    return project


def statuses(doc: dict) -> dict[str, str]:
    return {step["id"]: step["status"] for step in doc["steps"]}


def reasons(doc: dict) -> dict[str, str]:
    return {step["id"]: step["reason"] for step in doc["steps"]}


def test_first_run_builds_every_step_and_calls_each_api_step_once(project: Project) -> None:
    built(project)
    assert sorted(project.prompts()) == sorted(
        ["A red apple.", "Add a leaf.", "The person holds the apple.", "A blue pear."]
    )
    for name in ("base", "fixed", "scene", "other", "sheet"):
        assert (project.root / "out" / f"{name}.png").is_file()
    assert (project.root / "out" / "thumb.webp").is_file()


def test_second_run_makes_no_api_calls(project: Project) -> None:
    built(project)
    before = len(project.calls())
    doc = project.run_json()
    assert len(project.calls()) == before
    assert set(statuses(doc).values()) == {"cached"}
    assert doc["totals"]["api_calls"] == 0


def test_changing_a_prompt_reruns_exactly_that_step_and_its_api_descendants(
    project: Project,
) -> None:
    built(project)
    before = len(project.calls())
    project.write(CHAIN.replace("Add a leaf.", "Add two leaves."))
    doc = project.run_json()
    new_prompts = project.prompts()[before:]
    assert sorted(new_prompts) == ["Add two leaves.", "The person holds the apple."]
    assert statuses(doc) == {
        "base": "cached",
        "other": "cached",
        "fixed": "run",
        "scene": "run",
        "sheet": "run",
        "thumb": "run",
    }
    assert reasons(doc)["fixed"] == "prompt changed"


def test_changing_an_input_file_reruns_its_dependents(project: Project) -> None:
    built(project)
    before = len(project.calls())
    shutil.copy(project.root / "out" / "base.png", project.root / "photos" / "me.jpg")
    doc = project.run_json()
    assert project.prompts()[before:] == ["The person holds the apple."]
    assert reasons(doc)["scene"] == "input photos/me.jpg changed"


def test_touching_an_input_file_changes_nothing(project: Project) -> None:
    built(project)
    before = len(project.calls())
    photo = project.root / "photos" / "me.jpg"
    later = time.time() + 100
    os.utime(photo, (later, later))
    doc = project.run_json()
    assert len(project.calls()) == before
    assert set(statuses(doc).values()) == {"cached"}


def test_deleting_an_output_restores_it_without_a_call(project: Project) -> None:
    built(project)
    before = len(project.calls())
    original = (project.root / "out" / "fixed.png").read_bytes()
    (project.root / "out" / "fixed.png").unlink()
    doc = project.run_json()
    assert len(project.calls()) == before
    assert statuses(doc)["fixed"] == "restore"
    assert reasons(doc)["fixed"] == "output missing"
    assert (project.root / "out" / "fixed.png").read_bytes() == original


def test_reverting_a_change_makes_no_calls(project: Project) -> None:
    built(project)
    project.write(CHAIN.replace("A blue pear.", "A green pear."))
    project.run()
    before = len(project.calls())
    project.write(CHAIN)
    doc = project.run_json()
    assert len(project.calls()) == before
    assert statuses(doc)["other"] == "restore"
    assert reasons(doc)["other"].startswith("earlier result for these inputs (prompt changed")


def test_a_fresh_clone_with_outputs_and_lock_but_no_cache_makes_no_calls(project: Project) -> None:
    built(project)
    before = len(project.calls())
    shutil.rmtree(project.root / "cache")
    doc = project.run_json()
    assert len(project.calls()) == before
    assert set(statuses(doc).values()) == {"cached"}
    shutil.rmtree(project.root / "out")  # the outputs were taken into the new cache
    assert set(statuses(project.run_json()).values()) == {"restore"}
    assert len(project.calls()) == before


def test_dry_run_sends_nothing_and_says_why(project: Project) -> None:
    built(project)
    before = len(project.calls())
    project.write(
        CHAIN.replace("Add a leaf.", "Add a worm.")
        .replace("aspect_ratio: 1:1\nsteps", "aspect_ratio: 1:1\nsteps")
        .replace("    prompt: A blue pear.", "    prompt: A blue pear.\n    aspect_ratio: 4:3")
    )
    (project.root / "out" / "base.png").unlink()
    doc = project.run_json("--dry-run")
    assert len(project.emulator.requests) == before
    assert statuses(doc) == {
        "base": "restore",
        "fixed": "run",
        "scene": "run",
        "other": "run",
        "sheet": "run",
        "thumb": "run",
    }
    assert reasons(doc) == {
        "base": "output missing",
        "fixed": "prompt changed",
        "scene": "input step fixed will run",
        "other": "aspect_ratio changed from 1:1 to 4:3",
        "sheet": "input step fixed will run",
        "thumb": "input step sheet will run",
    }
    assert doc["totals"]["api_calls"] == 3
    assert doc["totals"]["usd"] > 0
    assert not (project.root / "out" / "base.png").exists()


def test_dry_run_of_a_new_workflow_needs_no_key(project: Project) -> None:
    project.add_photo()
    project.write(CHAIN)
    env = {"GEMFLOW_CACHE_DIR": str(project.root / "cache")}
    from click.testing import CliRunner

    from gemflow.cli import cli

    result = CliRunner().invoke(cli, ["run", str(project.workflow), "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert "new step" in result.stderr
    assert "would make 4 API calls" in result.stderr


@pytest.mark.same_takes  # the forced request is the same one: it must give the same bytes
def test_force_reruns_one_step_and_dependents_only_if_its_result_changed(project: Project) -> None:
    built(project)
    before = len(project.calls())
    doc = project.run_json("--force", "fixed")
    assert project.prompts()[before:] == ["Add a leaf."]
    # the emulator is deterministic: the same bytes came back, so nothing downstream re-ran
    assert statuses(doc)["fixed"] == "run"
    assert reasons(doc)["fixed"] == "forced"
    assert statuses(doc)["scene"] == "cached"


def test_targets_select_a_step_and_what_it_needs(project: Project) -> None:
    project.add_photo()
    project.write(CHAIN)
    doc = project.run_json("fixed")
    assert sorted(statuses(doc)) == ["base", "fixed"]
    assert sorted(project.prompts()) == ["A red apple.", "Add a leaf."]


def test_force_all_reruns_every_selected_step(project: Project) -> None:
    built(project)
    before = len(project.calls())
    project.run("--force-all", "fixed")
    assert sorted(project.prompts()[before:]) == ["A red apple.", "Add a leaf."]


def test_unknown_target_is_a_usage_error(project: Project) -> None:
    project.add_photo()
    project.write(CHAIN)
    result = project.run("fixd", expect=2)
    assert "no step 'fixd' (did you mean 'fixed'?)" in result.stderr


def test_images_reach_the_api_in_the_order_written(project: Project) -> None:
    built(project)
    scene = next(c for c in project.calls() if c["prompt"] == "The person holds the apple.")
    photo = (project.root / "photos" / "me.jpg").read_bytes()
    fixed = (project.root / "out" / "fixed.png").read_bytes()
    import hashlib

    assert [i["sha256"] for i in scene["images"]] == [
        hashlib.sha256(photo).hexdigest(),
        hashlib.sha256(fixed).hexdigest(),
    ]
    assert [i["mime_type"] for i in scene["images"]] == ["image/jpeg", "image/png"]


def test_independent_steps_overlap_in_time(project: Project) -> None:
    project.emulator.faults.latency = 0.3
    steps = "\n".join(f"  s{i}: {{kind: generate, prompt: 'picture {i}'}}" for i in range(4))
    project.write(f"version: 1\ndefaults: {{model: gemini-3.1-flash-image}}\nsteps:\n{steps}\n")
    project.run("--jobs", "4")
    calls = project.calls()
    assert len(calls) == 4
    latest_start = max(c["started"] for c in calls)
    earliest_end = min(c["finished"] for c in calls)
    assert latest_start < earliest_end  # all four were in flight at once


def test_lock_file_records_each_step_without_timestamps(project: Project) -> None:
    built(project)
    lock = project.lock
    entry = lock["steps"]["scene"]
    assert entry["output"] == "out/scene.png"
    assert entry["params"]["prompt"] == "The person holds the apple."
    assert [i["ref"] for i in entry["inputs"]] == ["photos/me.jpg", "fixed"]
    assert entry["model_version"]
    assert entry["tokens"]["total"] > 0
    text = (project.root / "wf.lock").read_text()
    project.run()
    assert (project.root / "wf.lock").read_text() == text


def test_a_refused_image_fails_that_step_blocks_dependents_and_keeps_the_rest(
    project: Project,
) -> None:
    project.add_photo()
    project.write(CHAIN.replace("Add a leaf.", "Add a leaf. [[emulator:image_safety]]"))
    doc = project.run_json(expect=1)
    assert statuses(doc) == {
        "base": "run",
        "fixed": "failed",
        "scene": "blocked",
        "other": "run",
        "sheet": "blocked",
        "thumb": "blocked",
    }
    failed = next(s for s in doc["steps"] if s["id"] == "fixed")
    assert "IMAGE_SAFETY" in failed["error"]
    assert not (project.root / "out" / "fixed.png").exists()
    before = len(project.calls())
    project.write(CHAIN)
    doc = project.run_json()
    assert sorted(project.prompts()[before:]) == ["Add a leaf.", "The person holds the apple."]
    assert statuses(doc)["base"] == "cached"


def test_an_api_error_is_one_line_in_the_summary(project: Project) -> None:
    project.write(
        "version: 1\nsteps:\n  a: {kind: generate, prompt: x, model: gemini-9-image, "
        "allow_unknown_model: true}\n"
    )
    result = project.run(expect=1)
    assert "404 NOT_FOUND" in result.stderr
    assert "Traceback" not in result.output


def test_missing_api_key_says_what_to_set(project: Project) -> None:
    project.write(
        "version: 1\nsteps:\n  a: {kind: generate, prompt: x, model: gemini-3.1-flash-image}\n"
    )
    from click.testing import CliRunner

    from gemflow.cli import cli

    env = {"GEMFLOW_CACHE_DIR": str(project.root / "cache")}
    result = CliRunner().invoke(cli, ["run", str(project.workflow)], env=env)
    assert result.exit_code == 3
    assert "set GEMINI_API_KEY (or GOOGLE_API_KEY)" in result.stderr


def test_json_output_describes_every_step_and_the_totals(project: Project) -> None:
    project.add_photo()
    project.write(CHAIN)
    doc = project.run_json()
    step = next(s for s in doc["steps"] if s["id"] == "base")
    assert set(step) >= {"id", "kind", "status", "reason", "api_calls", "output", "tokens"}
    assert step["api_calls"] == 1
    assert step["tokens"]["total"] > 0
    assert doc["totals"]["api_calls"] == 4
    assert doc["totals"]["tokens"]["total"] == sum(
        s["tokens"].get("total", 0) for s in doc["steps"]
    )
    assert doc["totals"]["usd"] > 0


def test_the_api_key_appears_nowhere(project: Project) -> None:
    project.add_photo()
    project.write(CHAIN.replace("A blue pear.", "A blue pear. [[emulator:500]]"))
    result = project.run("--json", "--retries", "0", expect=1)
    assert FAKE_KEY not in result.output
    for path in project.root.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_emulator_results_never_answer_for_the_real_service(project: Project) -> None:
    project.add_photo()
    project.write(CHAIN)
    project.run()
    from click.testing import CliRunner

    from gemflow.cli import cli

    env = {"GEMFLOW_CACHE_DIR": str(project.root / "cache")}
    result = CliRunner().invoke(cli, ["run", str(project.workflow), "--dry-run", "--json"], env=env)
    import json

    doc = json.loads(result.stdout)
    assert statuses(doc)["base"] == "run"
    assert reasons(doc)["base"] == f"service changed from {project.emulator.url} to Google's API"


def test_emulator_flag_builds_the_quickstart_with_no_key(tmp_path: Path) -> None:
    repo = Path(__file__).parent.parent / "workflows"
    work = tmp_path / "wf"
    shutil.copytree(repo, work, ignore=shutil.ignore_patterns("out", "*.lock"))
    from click.testing import CliRunner

    from gemflow.cli import cli

    env = {"GEMFLOW_CACHE_DIR": str(tmp_path / "cache")}
    result = CliRunner().invoke(cli, ["run", str(work / "quickstart.yaml"), "--emulator"], env=env)
    assert result.exit_code == 0, result.output
    assert (work / "out" / "thumb.webp").is_file()
    assert (work / "quickstart.emulator.lock").is_file()  # the emulator's own: see test_outputs.py


def test_moving_an_output_or_adding_a_description_makes_no_calls(project: Project) -> None:
    built(project)
    before = len(project.calls())
    project.write(
        CHAIN.replace(
            "    prompt: A blue pear.\n",
            "    prompt: A blue pear.\n    output: pears/blue.png\n"
            "    description: the pear, elsewhere\n",
        )
    )
    doc = project.run_json()
    assert len(project.calls()) == before
    assert statuses(doc)["other"] == "restore"
    assert (project.root / "pears" / "blue.png").is_file()


def test_a_corrupt_cache_entry_is_never_served(project: Project) -> None:
    built(project)
    before = len(project.calls())
    (project.root / "out" / "other.png").unlink()
    import diskcache

    with diskcache.Cache(
        str(project.root / "cache")
    ) as raw:  # flip the stored bytes behind our back
        raw.set(f"blob:{project.lock['steps']['other']['key']}", b"garbage")
    result = project.run()
    assert "was corrupt" in result.stderr
    assert len(project.calls()) > before  # re-made, not served
    assert (project.root / "out" / "other.png").read_bytes()[:4] == b"\x89PNG"


def test_workflow_warnings_are_shown(project: Project) -> None:
    project.write(
        "version: 1\nsteps:\n  a: {kind: generate, prompt: x, model: gemini-9-image, "
        "allow_unknown_model: true}\n"
    )
    result = project.run("--dry-run")
    assert "unknown model 'gemini-9-image'" in result.stderr


def test_google_gemini_base_url_points_the_client_at_another_endpoint(project: Project) -> None:
    from click.testing import CliRunner

    from gemflow.cli import cli

    project.write(
        "version: 1\nsteps:\n  a: {kind: generate, prompt: x, model: gemini-3-pro-image}\n"
    )
    env = {
        "GEMINI_API_KEY": FAKE_KEY,
        "GOOGLE_GEMINI_BASE_URL": project.emulator.url,
        "GEMFLOW_CACHE_DIR": str(project.root / "cache"),
    }
    result = CliRunner().invoke(cli, ["run", str(project.workflow)], env=env)
    assert result.exit_code == 0, result.output
    assert project.prompts() == ["x"]


def test_an_output_folder_that_is_a_file_fails_the_step_with_a_clear_message(
    project: Project,
) -> None:
    built(project)
    shutil.rmtree(project.root / "out")
    (project.root / "out").write_text("not a folder")
    result = project.run(expect=1)
    assert "cannot write out/base.png (File exists" in result.stderr
    assert "Traceback" not in result.output
