"""Matrix steps, variants and re-rolls: one step written, an instance per combination, and every
change pays for exactly what is new (counted in requests the emulator received)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import Project

from gemflow.engine.keys import digest
from gemflow.errors import WorkflowError
from gemflow.workflow.load import load_workflow

SWEEP = """\
version: 1
vars:
  subject: a three-dimensional pancake in the shape of a skull
steps:
  pancake:
    kind: generate
    prompt: Create an image of ${{subject}}, with blueberries on top.
    matrix:
      model: [gemini-3.1-flash-image, gemini-3-pro-image, gemini-3.1-flash-lite-image]
      aspect_ratio: [{ratios}]
    variants: {variants}
"""


def sweep(project: Project, ratios: str = '"1:1", "16:9"', variants: int = 3) -> None:
    project.write(SWEEP.format(ratios=ratios, variants=variants))


def statuses(doc: dict) -> dict[str, str]:
    return {step["id"]: step["status"] for step in doc["steps"]}


def test_a_3_by_2_by_3_sweep_pays_18_and_a_rerun_nothing(project: Project) -> None:
    sweep(project)
    doc = project.run_json()
    assert doc["totals"]["api_calls"] == 18
    assert len(project.calls()) == 18
    assert len(doc["steps"]) == 18
    assert project.run_json()["totals"]["api_calls"] == 0
    assert len(project.calls()) == 18


def test_instances_have_stable_names_and_their_own_outputs(project: Project) -> None:
    sweep(project)
    doc = project.run_json()
    name = "pancake[model=gemini-3-pro-image,aspect_ratio=16:9,variant=2]"
    assert name in statuses(doc)
    assert name in project.lock["steps"]
    output = project.lock["steps"][name]["output"]
    assert output == "out/pancake/gemini-3-pro-image_16x9_v2.png"
    assert (project.root / output).is_file()
    sent = {
        (c["model"], c["generation_config"]["image_config"]["aspect_ratio"])
        for c in project.calls()
    }
    assert len(sent) == 6
    assert ("gemini-3-pro-image", "16:9") in sent


def test_adding_a_ratio_pays_only_for_the_new_instances(project: Project) -> None:
    sweep(project)
    project.run()
    sweep(project, ratios='"1:1", "16:9", "4:3"')
    doc = project.run_json()
    assert doc["totals"]["api_calls"] == 9
    assert len(project.calls()) == 27
    assert {s for s in statuses(doc).values()} == {"cached", "run"}


def test_removing_a_value_runs_nothing(project: Project) -> None:
    sweep(project)
    project.run()
    sweep(project, ratios='"16:9"')
    doc = project.run_json()
    assert doc["totals"]["api_calls"] == 0
    assert len(doc["steps"]) == 9
    assert set(statuses(doc).values()) == {"cached"}


def test_more_variants_pay_only_for_the_new_samples(project: Project) -> None:
    sweep(project)
    project.run()
    sweep(project, variants=5)
    doc = project.run_json()
    assert doc["totals"]["api_calls"] == 12  # 2 new samples for each of 6 combinations
    assert len(project.calls()) == 30


def test_variants_samples_differ_only_by_their_index(project: Project) -> None:
    project.write("""\
        version: 1
        steps:
          apple: {kind: generate, model: gemini-3.1-flash-image, prompt: A red apple.}
        """)
    project.run()
    project.write("""\
        version: 1
        steps:
          apple: {kind: generate, model: gemini-3.1-flash-image, prompt: A red apple., variants: 3}
        """)
    doc = project.run_json()
    assert statuses(doc)["apple[variant=1]"] == "restore"  # the plain step's picture, no call
    assert doc["totals"]["api_calls"] == 2
    keys = {s["id"]: s["key"] for s in doc["steps"]}
    assert len(set(keys.values())) == 3
    assert {c["prompt"] for c in project.calls()} == {"A red apple."}


def test_a_reroll_pays_one_call_and_keeps_the_earlier_take(project: Project) -> None:
    sweep(project)
    project.run()
    name = "pancake[model=gemini-3-pro-image,aspect_ratio=16:9,variant=2]"
    before = project.lock["steps"][name]
    doc = project.run_json("--reroll", name)
    assert doc["totals"]["api_calls"] == 1
    assert len(project.calls()) == 19
    entry = project.lock["steps"][name]
    assert entry["reroll"] == 1
    assert [t["reroll"] for t in entry["takes"]] == [0, 1]
    assert entry["takes"][0]["key"] == before["key"]
    history = project.cli("history", str(project.workflow), name)
    assert "2 takes" in history.output
    assert "no longer in the cache" not in history.output


def test_a_second_reroll_draws_past_every_take(project: Project) -> None:
    sweep(project, variants=1)
    project.run()
    name = "pancake[model=gemini-3-pro-image,aspect_ratio=1:1,variant=1]"
    project.run("--reroll", name)
    project.cli("pick", str(project.workflow), name, "1")
    project.run("--reroll", name)  # take 3, not take 2 again
    assert [t["reroll"] for t in project.lock["steps"][name]["takes"]] == [0, 1, 2]
    assert len(project.calls()) == 6 + 2


def test_reverting_the_lock_file_brings_the_old_picture_back_for_free(project: Project) -> None:
    sweep(project, variants=1)
    project.run()
    name = "pancake[model=gemini-3.1-flash-image,aspect_ratio=1:1,variant=1]"
    saved = project.root / "saved.lock"
    shutil.copy(project.root / "wf.lock", saved)
    project.run("--reroll", name)
    calls = len(project.calls())
    shutil.copy(saved, project.root / "wf.lock")  # git checkout wf.lock
    doc = project.run_json()
    assert len(project.calls()) == calls
    assert doc["totals"]["api_calls"] == 0
    entry = project.lock["steps"][name]
    assert entry.get("reroll", 0) == 0
    assert entry["digest"] == json.loads(saved.read_text())["steps"][name]["digest"]
    assert digest((project.root / entry["output"]).read_bytes()) == entry["digest"]


def test_a_reroll_of_a_matrix_prefix_rerolls_each_instance_it_selects(project: Project) -> None:
    sweep(project, variants=1)
    project.run()
    doc = project.run_json("--reroll", "pancake[model=gemini-3-pro-image]")
    assert doc["totals"]["api_calls"] == 2


def test_a_prefix_target_builds_only_the_instances_it_selects(project: Project) -> None:
    sweep(project)
    doc = project.run_json("pancake[aspect_ratio=16:9,variant=1]")
    assert doc["totals"]["api_calls"] == 3
    assert all("aspect_ratio=16:9,variant=1" in s for s in statuses(doc))


def test_a_reroll_of_a_step_that_cannot_vary_is_refused(project: Project) -> None:
    project.add_photo()
    project.write("""\
        version: 1
        steps:
          small: {kind: resize, image: photos/me.jpg, width: 32}
        """)
    result = project.run("--reroll", "small", expect=2)
    assert "makes the same result every time" in result.output


def test_a_matrix_step_name_as_an_input_means_all_its_instances_in_order(
    project: Project,
) -> None:
    project.write("""\
        version: 1
        defaults: {model: gemini-3.1-flash-image}
        steps:
          pancake:
            kind: generate
            prompt: A pancake in ${matrix.style} style.
            matrix: {style: [watercolor, oil, pixel art]}
          grid: {kind: composite, images: [pancake], columns: 3}
          oily: {kind: composite, images: ["pancake[style=oil]"], columns: 1}
        """)
    project.run()
    grid = project.lock["steps"]["grid"]
    assert [i["ref"] for i in grid["inputs"]] == [
        "pancake[style=watercolor]",
        "pancake[style=oil]",
        "pancake[style=pixel art]",
    ]
    assert [i["ref"] for i in project.lock["steps"]["oily"]["inputs"]] == ["pancake[style=oil]"]
    assert sorted(project.prompts()) == [
        "A pancake in oil style.",
        "A pancake in pixel art style.",
        "A pancake in watercolor style.",
    ]


def test_matrix_values_and_vars_fill_output_paths(project: Project) -> None:
    project.write("""\
        version: 1
        vars: {folder: sweeps}
        steps:
          apple:
            kind: generate
            prompt: An apple.
            matrix: {model: [gemini-3.1-flash-image, gemini-3-pro-image]}
            output: ${folder}/apple-${matrix.model}.png
        """)
    project.run()
    assert (project.root / "sweeps" / "apple-gemini-3-pro-image.png").is_file()
    assert (project.root / "sweeps" / "apple-gemini-3.1-flash-image.png").is_file()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "matrix: {model: [gemini-3-pro-image]}\n    model: gemini-3-pro-image",
            "'model' is set on the step and in its matrix",
        ),
        ("matrix: {model: []}", "matrix: 'model' must be a list of values"),
        ("matrix: {model: [a, a]}", "lists 'a' twice"),
        ("matrix: {style: ['a,b']}\n    system: ${matrix.style}", "may not hold any of"),
        ("matrix: {variant: [1, 2]}", "use 'variants'"),
        ("matrix: {images: [a.png]}", "list the inputs on the step"),
        ("variants: 0", "'variants' must be from 1 to"),
        (
            "matrix: {model: [gemini-3-pro-image, gemini-3.1-flash-image]}\n    output: out/same.png",
            "${matrix.model}",
        ),
        ("prompt2: x", "unknown key 'prompt2'"),
    ],
)
def test_bad_matrices_are_load_errors(tmp_path, body: str, message: str) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(f"version: 1\nsteps:\n  s:\n    kind: generate\n    prompt: x\n    {body}\n")
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    assert message in str(caught.value)


def test_a_problem_of_every_instance_is_reported_once(tmp_path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nsteps:\n  s:\n    kind: generate\n    prompt: x\n"
        "    matrix: {model: [gemini-3-pro-image, gemini-3.1-flash-image]}\n    temperature: 9\n"
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].step == "s"


def test_a_problem_of_one_instance_names_it(tmp_path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nsteps:\n  s:\n    kind: generate\n    prompt: x\n"
        "    matrix:\n      model: [gemini-3-pro-image, gemini-3.1-flash-image]\n"
        "      aspect_ratio: ['1:8']\n"
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    [problem] = caught.value.problems
    assert problem.step == "s[model=gemini-3-pro-image,aspect_ratio=1:8]"
    assert problem.line == 8


def test_variants_on_a_probe_point_to_repeat(tmp_path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nsteps:\n  p: {kind: probe, model: gemini-3-pro-image, variants: 2}\n"
    )
    with pytest.raises(WorkflowError, match="a probe takes 'repeat'"):
        load_workflow(path)


def test_one_image_slot_refuses_a_matrix_of_several(tmp_path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nsteps:\n"
        "  a: {kind: generate, model: gemini-3-pro-image, prompt: x, variants: 2}\n"
        "  small: {kind: resize, image: a, width: 10}\n"
        "  one: {kind: resize, image: 'a[variant=2]', width: 10}\n"
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    [problem] = caught.value.problems
    assert problem.step == "small"
    assert "'image' takes one image, but 'a' is 2 instances" in problem.message


def test_a_grid_of_a_matrix_records_each_instance_it_shows(tmp_path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nsteps:\n"
        "  a: {kind: generate, model: gemini-3-pro-image, prompt: x, variants: 3}\n"
        "  grid: {kind: composite, images: [a], labels: true}\n"
    )
    grid = load_workflow(path).steps["grid"]
    assert grid.params["images"] == ["a[variant=1]", "a[variant=2]", "a[variant=3]"]
    recipe = grid.kind.recipe(grid.params)
    assert recipe["columns"] == 3
    assert recipe["captions"] == ["variant=1", "variant=2", "variant=3"]


def test_force_keeps_the_result_it_replaces_as_a_take(project: Project) -> None:
    project.write("""\
        version: 1
        steps:
          apple: {kind: generate, model: gemini-3.1-flash-image, prompt: A red apple.}
        """)
    project.run()
    first = project.lock["steps"]["apple"]["digest"]
    project.run("--force", "apple")
    entry = project.lock["steps"]["apple"]
    assert entry["digest"] != first  # the emulator draws anew, as the service does
    assert [t["digest"] for t in entry["takes"]] == [first, entry["digest"]]
    history = project.cli("history", str(project.workflow), "apple").output
    assert "replaced by --force" in history
    assert "no longer in the cache" not in history
    project.cli("pick", str(project.workflow), "apple", "1")
    assert digest((project.root / "out" / "apple.png").read_bytes()) == first
    doc = project.run_json()
    assert doc["steps"][0]["status"] == "cached"
    assert doc["totals"]["api_calls"] == 0


def test_history_and_pick_default_to_gemflow_yaml_here(project: Project, monkeypatch) -> None:
    monkeypatch.chdir(project.root)
    (project.root / "gemflow.yaml").write_text(
        "version: 1\nsteps:\n  apple: {kind: generate, model: gemini-3.1-flash-image, "
        "prompt: An apple., variants: 2}\n"
    )
    project.cli("run", "gemflow.yaml", "--base-url", project.emulator.url)
    project.cli("run", "gemflow.yaml", "--base-url", project.emulator.url, "--reroll", "apple")
    history = project.cli("history", "apple[variant=2]").output
    assert history.startswith("apple[variant=2]: 2 takes")
    picked = project.cli("pick", "apple[variant=2]", "1").output
    assert "take 1 is the output now" in picked
    assert project.cli("pick", "apple", "1", expect=2).exit_code == 2  # two instances: name one
