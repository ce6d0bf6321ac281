"""``gemflow schema``: a JSON Schema made from the kinds' fields that every example passes and that
catches the mistakes an editor should underline."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
from click.testing import CliRunner

from gemflow.cli import cli
from gemflow.kinds import KINDS
from gemflow.kinds.base import Field
from gemflow.kinds.resize import Resize
from gemflow.workflow.schema import field_schema, workflow_schema
from gemflow.workflow.yamlsafe import load_yaml

Validator = jsonschema.Draft202012Validator
WORKFLOWS = sorted((Path(__file__).parent.parent / "workflows").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    result = CliRunner().invoke(cli, ["schema"], catch_exceptions=False)
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def document(text: str) -> Any:
    """A workflow as gemflow reads it (YAML 1.2: ``16:9`` is text, not 969)."""
    doc, _ = load_yaml(textwrap.dedent(text))
    return doc


def errors(validator: jsonschema.Draft202012Validator, text: str) -> list[str]:
    return [error.message for error in validator.iter_errors(document(text))]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_example_workflow_is_valid(
    validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    doc, _ = load_yaml(path.read_text())
    assert [e.message for e in validator.iter_errors(doc)] == []


def test_the_examples_are_all_checked() -> None:
    assert len(WORKFLOWS) >= 8


def test_an_unknown_key_for_the_kind_is_rejected(validator: Validator) -> None:
    found = errors(
        validator,
        """\
        steps:
          a: {kind: resize, image: x.png, width: 10, prompt: nope}
        """,
    )
    assert any("'prompt' was unexpected" in message for message in found)


def test_a_wrong_type_is_rejected(validator: Validator) -> None:
    found = errors(
        validator,
        """\
        steps:
          a: {kind: resize, image: x.png, width: wide}
        """,
    )
    assert any("'wide' is not of type 'integer'" in message for message in found)


def test_an_unknown_kind_is_rejected(validator: Validator) -> None:
    found = errors(validator, "steps:\n  a: {kind: genrate, prompt: x}\n")
    assert any("'genrate' is not one of" in message for message in found)


def test_a_value_outside_the_choices_is_rejected(validator: Validator) -> None:
    found = errors(validator, "steps:\n  a: {kind: resize, image: x.png, width: 5, fit: stretch}\n")
    assert any("'stretch' is not one of ['contain', 'cover', 'exact']" in m for m in found)


def test_a_value_out_of_range_is_rejected(validator: Validator) -> None:
    found = errors(
        validator, "steps:\n  a: {kind: generate, model: nano-banana, prompt: x, temperature: 3}\n"
    )
    assert any("3 is greater than the maximum of 2" in message for message in found)


def test_a_missing_kind_and_an_unknown_top_level_key_are_rejected(validator: Validator) -> None:
    found = errors(validator, "stepz: {}\nsteps:\n  a: {prompt: x}\n")
    assert any("'kind' is a required property" in message for message in found)
    assert any("'stepz' was unexpected" in message for message in found)


def test_an_unknown_model_is_rejected_unless_allowed(validator: Validator) -> None:
    unknown = "steps:\n  a: {kind: generate, model: gemini-9-image, prompt: x}\n"
    assert errors(validator, unknown)
    on_step = "steps:\n  a: {kind: generate, model: gemini-9-image, prompt: x, allow_unknown_model: true}\n"
    assert errors(validator, on_step) == []
    in_defaults = (
        "defaults: {model: gemini-9-image, allow_unknown_model: true}\n"
        "steps:\n  a: {kind: generate, prompt: x}\n"
    )
    assert errors(validator, in_defaults) == []
    assert errors(
        validator,
        "defaults: {model: gemini-9-image}\nsteps:\n  a: {kind: resize, image: x, width: 1}\n",
    )


def test_model_ids_aliases_and_matrix_models_are_accepted(validator: Validator) -> None:
    text = """\
    steps:
      a:
        kind: generate
        prompt: x
        matrix:
          model: [gemini-3-pro-image, nano-banana, models/gemini-3.1-flash-image]
          aspect_ratio: [1:1, 16:9]
          style: [plain, noir]
        variants: 2
    """
    assert errors(validator, text) == []
    assert errors(validator, text.replace("nano-banana", "nano-bananas"))


def test_required_keys_may_come_from_defaults_the_matrix_or_a_file(validator: Validator) -> None:
    assert errors(validator, "steps:\n  a: {kind: generate}\n")  # no prompt anywhere
    assert errors(validator, "steps:\n  a: {kind: generate, prompt_file: p.md}\n") == []
    assert errors(validator, "steps:\n  a: {kind: generate, matrix: {prompt: [x, y]}}\n") == []
    both = "steps:\n  a: {kind: generate, prompt: x, prompt_file: p.md}\n"
    assert errors(validator, both)


def test_variants_only_on_kinds_that_draw_anew(validator: Validator) -> None:
    assert errors(validator, "steps:\n  a: {kind: resize, image: x, width: 1, variants: 2}\n")


def test_a_matrix_may_not_vary_inputs_or_hold_separators(validator: Validator) -> None:
    assert errors(
        validator, "steps:\n  a: {kind: edit, prompt: x, images: [i], matrix: {images: [a, b]}}\n"
    )
    assert errors(validator, "steps:\n  a: {kind: generate, prompt: x, matrix: {style: ['a,b']}}\n")


def test_every_field_of_every_kind_is_in_the_schema_with_its_doc() -> None:
    schema = workflow_schema()
    for name, kind in KINDS.items():
        properties = schema["$defs"][f"kind.{name}"]["properties"]
        for key, spec in kind.fields.items():
            if spec.on_step:
                assert key in properties, (name, key)
                assert properties[key].get("description") == (spec.doc or None), (name, key)


def test_a_new_field_appears_by_itself() -> None:
    class Shiny(Resize):
        name = "shiny"
        fields: ClassVar[Mapping[str, Field]] = {
            **KINDS["resize"].fields,
            "sparkle": Field("int", minimum=1, maximum=9, doc="how much"),
        }

    schema = workflow_schema({"shiny": Shiny()})
    assert schema["$defs"]["kind.shiny"]["properties"]["sparkle"] == {
        "type": "integer",
        "description": "how much",
        "minimum": 1,
        "maximum": 9,
    }


def test_a_field_type_without_a_json_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="no JSON type"):
        field_schema(Field("colour"))
