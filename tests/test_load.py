"""The loader: valid files become workflows; every invalid file gets every problem, located."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gemflow.errors import WorkflowError
from gemflow.workflow.load import load_workflow

HEADER = """\
version: 1
defaults:
  model: gemini-3.1-flash-image
steps:
"""


def write(folder: Path, body: str, header: str = HEADER) -> Path:
    path = folder / "wf.yaml"
    path.write_text(header + textwrap.indent(textwrap.dedent(body), "  "))
    return path


def problems(folder: Path, body: str, header: str = HEADER, **kwargs: object) -> list[str]:
    with pytest.raises(WorkflowError) as info:
        load_workflow(write(folder, body, header), **kwargs)
    return [str(p) for p in info.value.problems]


def test_a_valid_workflow_loads_steps_in_file_order(tmp_path: Path) -> None:
    wf = load_workflow(
        write(
            tmp_path,
            """\
      a: {kind: generate, prompt: one}
      b: {kind: edit, images: [a], prompt: two}
    """,
        )
    )
    assert list(wf.steps) == ["a", "b"]
    assert wf.steps["b"].refs[0].step == "a"
    assert wf.steps["a"].output_rel == "out/a.png"


@pytest.mark.parametrize("spelling", ["16:9", '"16:9"', "'16:9'"])
def test_aspect_ratio_loads_as_written_quoted_or_not(tmp_path: Path, spelling: str) -> None:
    wf = load_workflow(
        write(
            tmp_path,
            f"""\
      a: {{kind: generate, prompt: x, aspect_ratio: {spelling}}}
    """,
        )
    )
    assert wf.steps["a"].params["aspect_ratio"] == "16:9"


def test_image_size_written_as_a_number_is_text(tmp_path: Path) -> None:
    wf = load_workflow(write(tmp_path, "  a: {kind: generate, prompt: x, image_size: 512}\n"))
    assert wf.steps["a"].params["image_size"] == "512"


def test_defaults_apply_and_steps_override_them(tmp_path: Path) -> None:
    header = "version: 1\ndefaults:\n  model: gemini-3.1-flash-image\n  aspect_ratio: 1:1\nsteps:\n"
    wf = load_workflow(
        write(
            tmp_path,
            """\
      a: {kind: generate, prompt: x}
      b: {kind: generate, prompt: x, aspect_ratio: 4:3}
    """,
            header,
        )
    )
    assert wf.steps["a"].params["aspect_ratio"] == "1:1"
    assert wf.steps["b"].params["aspect_ratio"] == "4:3"


def test_vars_are_substituted_in_any_string_and_may_nest(tmp_path: Path) -> None:
    header = (
        "version: 1\ndefaults:\n  model: gemini-3.1-flash-image\n"
        "vars:\n  who: a cat\n  scene: ${who} on a mat\nsteps:\n"
    )
    wf = load_workflow(
        write(tmp_path, "  a: {kind: generate, prompt: 'Draw ${scene}. $${literal}'}\n", header)
    )
    assert wf.steps["a"].params["prompt"] == "Draw a cat on a mat. ${literal}"


def test_unknown_var_is_named(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: generate, prompt: 'hi ${nope}'}\n")
    assert found == ["wf.yaml:5: step 'a': 'prompt': unknown var '${nope}'"]


def test_unknown_kind_suggests_the_near_one(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: genrate, prompt: x}\n")
    assert "unknown kind 'genrate' (did you mean 'generate'?)" in found[0]
    assert found[0].startswith("wf.yaml:5: step 'a'")


def test_unknown_key_suggests_the_near_one(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a:
        kind: generate
        promt: x
    """,
    )
    assert any(
        p == "wf.yaml:7: step 'a': unknown key 'promt' for a generate step (did you mean 'prompt'?)"
        for p in found
    )


def test_key_of_another_kind_says_which_kind_has_it(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: generate, prompt: x, columns: 2}\n")
    assert "'columns' belongs to composite steps" in found[0]


def test_missing_prompt(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: generate}\n")
    assert found == ["wf.yaml:5: step 'a': missing 'prompt'"]


def test_missing_model_says_where_to_set_it(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: generate, prompt: x}\n", header="version: 1\nsteps:\n")
    assert found == ["wf.yaml:3: step 'a': missing 'model' (on the step or in 'defaults')"]


def test_reference_that_is_neither_step_nor_file(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      pancake: {kind: generate, prompt: x}
      b:
        kind: edit
        prompt: y
        images:
          - pancak
    """,
    )
    assert found == [
        "wf.yaml:10: step 'b': 'pancak' is neither a step nor a file (no pancak) "
        "(did you mean 'pancake'?)"
    ]


def test_a_file_reference_resolves_beside_the_workflow(tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(b"x")
    wf = load_workflow(write(tmp_path, "  b: {kind: edit, prompt: y, images: [in.png]}\n"))
    assert wf.steps["b"].refs[0].path == tmp_path / "in.png"


def test_step_id_that_is_also_a_file_is_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "pancake").write_bytes(b"x")
    found = problems(
        tmp_path,
        """\
      pancake: {kind: generate, prompt: x}
      b: {kind: edit, prompt: y, images: [pancake]}
    """,
    )
    assert len(found) == 1
    assert "'pancake' is both a step id and a file" in found[0]


def test_cycle_is_named(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a: {kind: edit, prompt: x, images: [c]}
      b: {kind: edit, prompt: x, images: [a]}
      c: {kind: edit, prompt: x, images: [b]}
    """,
    )
    assert found == ["wf.yaml:5: step 'a': steps depend on each other in a cycle: a -> b -> c -> a"]


def test_duplicate_step_id_is_detected(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a: {kind: generate, prompt: x}
      a: {kind: generate, prompt: y}
    """,
    )
    assert found == [
        "wf.yaml:6: duplicate step id 'a' (first at line 5); YAML would keep only the last silently"
    ]


def test_duplicate_key_inside_a_step_is_detected(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a:
        kind: generate
        prompt: x
        prompt: y
    """,
    )
    assert "wf.yaml:8: duplicate key 'prompt' (first at line 7)" in found[0]


def test_bad_aspect_ratio_for_the_model(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: generate, prompt: x, aspect_ratio: 7:3}\n")
    assert "'7:3' is not accepted by gemini-3.1-flash-image" in found[0]


def test_bad_image_size_suggests_uppercase_k(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: generate, prompt: x, image_size: 2k}\n")
    assert "'2k' is not accepted by gemini-3.1-flash-image" in found[0]
    assert "(did you mean '2K'?)" in found[0]


def test_image_size_on_a_fixed_size_model(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a: {kind: generate, prompt: x, model: gemini-2.5-flash-image, image_size: 1K}
    """,
    )
    assert "has a fixed output size" in found[0]


def test_unknown_model_is_allowed_with_a_warning(tmp_path: Path) -> None:
    wf = load_workflow(
        write(
            tmp_path,
            "  a: {kind: generate, prompt: x, model: gemini-9-image, allow_unknown_model: true}\n",
        )
    )
    assert [str(w) for w in wf.warnings] == [
        "wf.yaml:5: step 'a': unknown model 'gemini-9-image': not validated, no cost estimate"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("temperature: hot", "'temperature' must be a number, not text"),
        ("temperature: 3", "'temperature' must be at most 2"),
        ("seed: 1.5", "'seed' must be a whole number, not a number"),
        ("seed: true", "'seed' must be a whole number, not true/false"),
        ("prompt: true", "'prompt' must be text, not true/false"),
        ("images: {a: 1}", "'images' must be a list of step ids or file paths"),
    ],
)
def test_wrong_types_are_reported(tmp_path: Path, value: str, message: str) -> None:
    body = (
        "  a:\n    kind: generate\n    prompt: x\n"
        if not value.startswith("prompt")
        else ("  a:\n    kind: generate\n")
    )
    found = problems(tmp_path, body + f"    {value}\n")
    assert any(message in p for p in found), found


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("labels: yes", "'labels' must be true or false, not text"),
        ("labels: 1", "'labels' must be true or false, not a number"),
        ("title: 12", "'title' must be text, not a number"),
        ('title: ""', "'title' is empty"),
    ],
)
def test_a_grid_s_labels_and_title_are_checked(tmp_path: Path, value: str, message: str) -> None:
    body = "  a: {kind: generate, prompt: x}\n  b: {kind: generate, prompt: y}\n"
    found = problems(
        tmp_path, body + f"  sheet:\n    kind: composite\n    images: [a, b]\n    {value}\n"
    )
    assert any(message in p for p in found), found


def test_labels_on_layers_is_an_error_that_says_why(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(b"")
    body = (
        "  a: {kind: generate, prompt: x}\n"
        "  poster:\n    kind: composite\n    base: a\n    layers: [{image: logo.png}]\n"
        "    labels: true\n"
    )
    found = problems(tmp_path, body)
    assert any("'labels' only applies to a grid ('images'), not to layers" in p for p in found)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a: {kind: genrate, prompt: x}
      b: {kind: generate}
      c: {kind: edit, prompt: x, images: [nowhere.png]}
    """,
    )
    assert len(found) == 3
    assert [p.split(":")[1] for p in found] == ["5", "6", "7"]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "  a: {kind: generate, prompt: x}\n",
        header=HEADER.replace("steps:", "stesp: {}\nsteps:"),
    )
    assert any("unknown key 'stesp' (did you mean 'steps'?)" in p for p in found)


def test_invalid_yaml_is_located(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: generate, prompt: [unclosed\n")
    assert found[0].startswith("wf.yaml:")
    assert len(found) == 1


def test_missing_workflow_file(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="no such workflow file"):
        load_workflow(tmp_path / "absent.yaml")


def test_output_outside_the_folder_is_refused_unless_allowed(tmp_path: Path) -> None:
    body = "  a: {kind: generate, prompt: x, output: ../escape.png}\n"
    found = problems(tmp_path, body)
    assert "output path '../escape.png' leaves the workflow's folder" in found[0]
    wf = load_workflow(write(tmp_path, body), allow_outside=True)
    assert wf.steps["a"].output == tmp_path.parent / "escape.png"


def test_input_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"x")
    folder = tmp_path / "wf"
    folder.mkdir()
    (folder / "link.png").symlink_to(outside)
    found = problems(folder, "  b: {kind: edit, prompt: y, images: [link.png]}\n")
    assert "input path 'link.png' leaves the workflow's folder" in found[0]


def test_absolute_input_path_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "  b: {kind: edit, prompt: y, images: [/etc/hostname]}\n")
    assert "leaves the workflow's folder" in found[0]


def test_two_steps_writing_one_output_is_an_error(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a: {kind: generate, prompt: x, output: out/same.png}
      b: {kind: generate, prompt: y, output: out/same.png}
    """,
    )
    assert found == ["wf.yaml:6: step 'b': writes out/same.png, as step 'a' does"]


def test_api_output_must_be_png(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: generate, prompt: x, output: a.jpg}\n")
    assert "generate steps write PNG" in found[0]


def test_default_output_extension_follows_the_format(tmp_path: Path) -> None:
    wf = load_workflow(
        write(
            tmp_path,
            """\
      a: {kind: generate, prompt: x}
      b: {kind: resize, image: a, width: 10, format: webp}
    """,
        )
    )
    assert wf.steps["b"].output_rel == "out/b.webp"
    assert wf.steps["b"].format == "webp"


# -- a step with bad parameters still has its references and output checked ---------------------

NO_DEFAULTS = "version: 1\nsteps:\n"


def test_a_missing_model_does_not_hide_a_bad_reference_or_an_escaping_output(
    tmp_path: Path,
) -> None:
    found = problems(
        tmp_path,
        """\
      a: {kind: edit, prompt: x, images: [nope], output: ../escape.png}
    """,
        header=NO_DEFAULTS,
    )
    assert found == [
        "wf.yaml:3: step 'a': 'nope' is neither a step nor a file (no nope)",
        "wf.yaml:3: step 'a': missing 'model' (on the step or in 'defaults')",
        "wf.yaml:3: step 'a': output path '../escape.png' leaves the workflow's folder "
        "(pass --allow-outside to allow it)",
    ]


def test_a_wrongly_typed_key_does_not_hide_an_escaping_input(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a:
        kind: edit
        prompt: x
        temperature: hot
        images: [/etc/hostname]
    """,
    )
    assert found == [
        "wf.yaml:8: step 'a': 'temperature' must be a number, not text",
        "wf.yaml:9: step 'a': input path '/etc/hostname' leaves the workflow's folder "
        "(pass --allow-outside to allow it)",
    ]


def test_a_step_with_bad_parameters_is_still_a_step_others_can_reference(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a: {kind: generate, prompt: x, seed: many}
      b: {kind: edit, prompt: y, images: [a, nope]}
    """,
    )
    assert found == [
        "wf.yaml:5: step 'a': 'seed' must be a whole number, not text",
        "wf.yaml:6: step 'b': 'nope' is neither a step nor a file (no nope)",
    ]


def test_a_bad_key_is_not_reported_again_as_missing_or_by_the_kinds_checks(
    tmp_path: Path,
) -> None:
    found = problems(
        tmp_path,
        """\
      a: {kind: resize, image: in.png, width: wide, fit: cover}
    """,
    )
    assert found == [
        "wf.yaml:5: step 'a': 'in.png' is neither a step nor a file (no in.png)",
        "wf.yaml:5: step 'a': 'width' must be a whole number, not text",
    ]


def test_a_bad_format_is_not_reported_again_as_a_mismatched_extension(tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(b"x")
    found = problems(
        tmp_path, "  a: {kind: resize, image: in.png, width: 5, format: gif, output: a.gif}\n"
    )
    assert found == ["wf.yaml:5: step 'a': 'format' must be one of png, webp, jpeg, not 'gif'"]


def test_a_missing_prompt_file_is_not_also_a_missing_prompt(tmp_path: Path) -> None:
    found = problems(tmp_path, "  a: {kind: generate, prompt_file: nope.md}\n")
    assert found == ["wf.yaml:5: step 'a': 'prompt_file': no such file nope.md"]


def test_a_cycle_through_a_step_with_bad_parameters_is_found(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a: {kind: edit, prompt: x, images: [b], seed: many}
      b: {kind: edit, prompt: x, images: [a]}
    """,
    )
    assert found == [
        "wf.yaml:5: step 'a': 'seed' must be a whole number, not text",
        "wf.yaml:5: step 'a': steps depend on each other in a cycle: a -> b -> a",
    ]


def test_a_problem_every_instance_has_is_reported_once_for_the_step(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
      a:
        kind: edit
        prompt: x
        images: [nope]
        output: ../a-${matrix.aspect_ratio}.png
        matrix:
          aspect_ratio: ["1:1", "16:9"]
    """,
    )
    assert found == [
        "wf.yaml:8: step 'a': 'nope' is neither a step nor a file (no nope)",
        "wf.yaml:9: step 'a[aspect_ratio=16:9]': output path '../a-16:9.png' leaves the "
        "workflow's folder (pass --allow-outside to allow it)",
        "wf.yaml:9: step 'a[aspect_ratio=1:1]': output path '../a-1:1.png' leaves the "
        "workflow's folder (pass --allow-outside to allow it)",
    ]
