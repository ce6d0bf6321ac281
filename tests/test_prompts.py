"""Prompts as people write them: from files, as structured JSON, under aliases of model names;
and the checks that refuse a bad prompt or model before anything is paid for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Project

from gemflow.errors import WorkflowError
from gemflow.workflow.load import load_workflow

FILE_PROMPT = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
vars: {class: Paladin}
steps:
  character: {kind: generate, prompt_file: prompts/paladin.md}
  edited: {kind: edit, images: [character], prompt: Add a cape.}
  other: {kind: generate, prompt: A teapot.}
"""


def keys(doc: dict) -> dict[str, str]:
    return {step["id"]: step["key"] for step in doc["steps"]}


def test_a_prompt_file_is_the_prompt_with_vars(project: Project) -> None:
    (project.root / "prompts").mkdir()
    (project.root / "prompts" / "paladin.md").write_text("# Rules\n- A ${class}, age 30.\n")
    project.write(FILE_PROMPT)
    project.run()
    assert "# Rules\n- A Paladin, age 30.\n" in project.prompts()


def test_editing_a_prompt_file_reruns_its_step_and_what_uses_it(project: Project) -> None:
    (project.root / "prompts").mkdir()
    rules = project.root / "prompts" / "paladin.md"
    rules.write_text("A paladin.\n")
    project.write(FILE_PROMPT)
    project.run()
    rules.write_text("A paladin with a shield.\n")
    doc = project.run_json()
    assert {s["id"]: s["status"] for s in doc["steps"]} == {
        "character": "run",
        "edited": "run",
        "other": "cached",
    }
    assert len(project.calls()) == 5


def test_a_missing_prompt_file_is_a_load_error_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(FILE_PROMPT)
    with pytest.raises(WorkflowError) as caught:
        load_workflow(tmp_path / "wf.yaml")
    assert str(caught.value).startswith("wf.yaml:5: step 'character': 'prompt_file': no such file")


def test_prompt_and_prompt_file_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("x")
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nsteps:\n  a: {kind: generate, model: gemini-3-pro-image, prompt: y, "
        "prompt_file: p.md}\n"
    )
    with pytest.raises(WorkflowError, match="'prompt_file' and 'prompt' are both given"):
        load_workflow(tmp_path / "wf.yaml")


STRUCTURED = """\
version: 1
steps:
  sheet:
    kind: generate
    model: gemini-3.1-flash-image
    prompt:
      character: {{class: [Paladin, Pirate], {inner}}}
"""


def test_a_structured_prompt_is_sent_as_pretty_json_in_the_order_written(
    project: Project,
) -> None:
    project.write(STRUCTURED.format(inner="age: 30, hair: {volume: high}"))
    project.run()
    [sent] = project.prompts()
    assert sent == json.dumps(
        {"character": {"class": ["Paladin", "Pirate"], "age": 30, "hair": {"volume": "high"}}},
        indent=2,
    )


def test_reordering_structured_keys_changes_the_key_reindenting_does_not(
    project: Project,
) -> None:
    project.write(STRUCTURED.format(inner="age: 30, hair: {volume: high}"))
    first = keys(project.run_json())["sheet"]
    project.write(STRUCTURED.format(inner="hair: {volume: high}, age: 30"))
    assert keys(project.run_json())["sheet"] != first
    block = """\
        version: 1
        steps:
          sheet:
            kind: generate
            model: gemini-3.1-flash-image
            prompt:
              character:
                class:
                  - Paladin
                  - Pirate
                age: 30
                hair:
                  volume: high
        """
    project.write(block)
    doc = project.run_json()
    assert keys(doc)["sheet"] == first
    assert doc["totals"]["api_calls"] == 0


def test_text_that_looks_like_broken_json_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nsteps:\n  a:\n    kind: generate\n    model: gemini-3-pro-image\n"
        '    prompt: |\n      {"class": "Paladin",\n       "age": 30,}\n'
    )
    [warning] = load_workflow(tmp_path / "wf.yaml").warnings
    assert warning.line == 6
    assert "looks like JSON but does not parse: a trailing comma at line 2" in warning.message


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{kind: generate, model: gemini-3-pro-image, prompt: '   '}", "the prompt is empty"),
        (
            "{kind: generate, model: gemini-3-pro-imag, prompt: x}",
            "unknown model 'gemini-3-pro-imag' (did you mean 'gemini-3-pro-image'?)",
        ),
        (
            "{kind: generate, model: imagen-4.0-generate-001, prompt: x}",
            "imagen-4.0-generate-001 cannot be used: google-genai sends Imagen requests",
        ),
        ("{kind: probe, model: nano-banana-pr}", "(did you mean 'nano-banana-pro'?)"),
    ],
)
def test_bad_prompts_and_models_are_refused_before_sending(
    tmp_path: Path, step: str, message: str
) -> None:
    (tmp_path / "wf.yaml").write_text(f"version: 1\nsteps:\n  a: {step}\n")
    with pytest.raises(WorkflowError) as caught:
        load_workflow(tmp_path / "wf.yaml")
    assert message in str(caught.value)


def test_a_prompt_longer_than_the_model_reads_is_refused(tmp_path: Path) -> None:
    (tmp_path / "long.md").write_text("word " * 60_000)
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nsteps:\n  a: {kind: generate, model: gemini-2.5-flash-image, "
        "prompt_file: long.md}\n"
    )
    with pytest.raises(WorkflowError, match=r"about 75,000 tokens; gemini-2.5-flash-image reads"):
        load_workflow(tmp_path / "wf.yaml")


def test_an_unknown_model_is_sent_only_when_allowed(project: Project) -> None:
    project.write("""\
        version: 1
        steps:
          a: {kind: generate, model: gemini-4-image, prompt: x}
        """)
    result = project.run(expect=2)
    assert "unknown model 'gemini-4-image'" in result.output
    assert project.calls() == []
    project.write("""\
        version: 1
        steps:
          a: {kind: generate, model: gemini-4-image, prompt: x, allow_unknown_model: true}
        """)
    project.run(expect=1)  # the emulator does not know it either: a 404 from the API
    assert len(project.calls()) == 1


def test_an_alias_sends_the_model_id_and_shares_its_key(project: Project) -> None:
    project.write("""\
        version: 1
        steps:
          a: {kind: generate, model: nano-banana-pro, prompt: A pear.}
        """)
    first = keys(project.run_json())["a"]
    assert [c["model"] for c in project.calls()] == ["gemini-3-pro-image"]
    project.write("""\
        version: 1
        steps:
          a: {kind: generate, model: gemini-3-pro-image, prompt: A pear.}
        """)
    doc = project.run_json()
    assert keys(doc)["a"] == first
    assert doc["totals"]["api_calls"] == 0
