"""A JSON Schema (draft 2020-12) for workflow files, made from the kinds' fields.

Nothing here is written by hand per kind: each kind's ``fields`` give the keys a step of that kind
takes (``Field.doc`` as the description, ``type``, ``choices``, ``minimum``/``maximum``,
``default``), ``defaults_fields()`` the keys of ``defaults:``, and the model table the model ids
and aliases. So a new field or kind appears in the schema by itself.

Editors (VS Code's YAML extension, JetBrains) use it for completion, hovers and errors as you
type. It checks the shape of a file, not everything: references, paths, a model's ratios and
sizes are checked by ``gemflow validate``, which is the authority. What it checks it checks
exactly as the loader does, so that no valid workflow is flagged:

- a step's ``kind`` picks its keys (``if``/``then`` per kind); any other key is an error;
- ``model`` must be a known id or alias unless ``allow_unknown_model: true`` is set on the step
  or in ``defaults`` (then any text); ids and aliases are offered as ``examples`` either way;
- a required key may come from ``defaults`` (``model``), the step's ``matrix``, or a file that
  fills it (``prompt_file`` for ``prompt``, never both).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gemflow.kinds import KINDS, defaults_fields
from gemflow.kinds.base import Field, StepKind
from gemflow.models import aliases, known_models
from gemflow.workflow.instances import FORBIDDEN, VARIANT
from gemflow.workflow.load import (
    MAX_VARIANTS,
    RUN_SETTINGS,
    STEP_ID,
    STEP_KEYS,
    SUPPORTED_VERSIONS,
)
from gemflow.workflow.vars import VAR_NAME

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCALARS = ("string", "number", "integer", "boolean")

# JSON types of each Field.type (see gemflow.kinds.base.Field).
_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "scalar": {"type": ["string", "integer"]},
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "ref": {"type": "string"},
    "refs": {"type": ["string", "array"], "items": {"type": "string"}, "minItems": 1},
    "list": {"type": "array"},
    "text_or_json": {"type": ["string", "object", "array"]},
    "file": {"type": "string"},
}
_ALLOWS_UNKNOWN = {
    "required": ["allow_unknown_model"],
    "properties": {"allow_unknown_model": {"const": True}},
}


def workflow_schema(kinds: Mapping[str, StepKind] = KINDS) -> dict[str, Any]:
    """The schema of a workflow file for ``kinds``."""
    models = [*known_models(), *aliases()]
    defs: dict[str, Any] = {
        "step": _step(kinds),
        "known_model": {
            "anyOf": [{"enum": models}, {"enum": [f"models/{m}" for m in known_models()]}],
            "description": "a model id or alias from gemflow's model table",
        },
        "step_models": {
            "if": _ALLOWS_UNKNOWN,
            "else": {
                "properties": {
                    "model": {"$ref": "#/$defs/known_model"},
                    "matrix": {"properties": {"model": {"items": {"$ref": "#/$defs/known_model"}}}},
                }
            },
        },
    }
    defs.update({f"kind.{name}": _kind(kind) for name, kind in kinds.items()})
    return {
        "$schema": DRAFT,
        "title": "gemflow workflow",
        "description": "An image workflow for gemflow: defaults, vars and steps.",
        "type": "object",
        "required": ["steps"],
        "additionalProperties": False,
        "properties": {
            "version": {
                "enum": list(SUPPORTED_VERSIONS),
                "description": "the workflow format's version",
            },
            "defaults": _defaults(kinds),
            "vars": {
                "type": "object",
                "description": "named text; ${name} is replaced in every string of every step",
                "propertyNames": {"pattern": _pattern(VAR_NAME)},
                "additionalProperties": {"type": ["string", "number"]},
            },
            "steps": {
                "type": "object",
                "description": "step ids (letters, digits, _ and -) mapped to steps, in order",
                "minProperties": 1,
                "propertyNames": {"pattern": _pattern(STEP_ID)},
                "additionalProperties": {"$ref": "#/$defs/step"},
            },
        },
        # allow_unknown_model in defaults lets every step name any model.
        "if": {"required": ["defaults"], "properties": {"defaults": _ALLOWS_UNKNOWN}},
        "else": {
            "properties": {"steps": {"additionalProperties": {"$ref": "#/$defs/step_models"}}}
        },
        "$defs": defs,
    }


def field_schema(spec: Field) -> dict[str, Any]:
    """The schema of one key, from its ``Field``."""
    if spec.type not in _TYPES:
        raise ValueError(f"no JSON type for Field type {spec.type!r}")
    schema: dict[str, Any] = dict(_TYPES[spec.type])
    if spec.doc:
        schema["description"] = spec.doc
    if spec.choices is not None:
        schema["enum"] = list(spec.choices)
    if spec.minimum is not None:
        schema["minimum"] = _number(spec.minimum)
    if spec.maximum is not None:
        schema["maximum"] = _number(spec.maximum)
    if spec.default is not None:
        schema["default"] = spec.default
    return schema


def _model_field(spec: Field) -> dict[str, Any]:
    return {**field_schema(spec), "examples": [*known_models(), *aliases()]}


def _defaults(kinds: Mapping[str, StepKind]) -> dict[str, Any]:
    fields = defaults_fields(kinds)
    properties = {
        name: _model_field(spec) if name == "model" else field_schema(spec)
        for name, spec in fields.items()
    }
    properties.update({name: field_schema(spec) for name, spec in RUN_SETTINGS.items()})
    return {
        "type": "object",
        "description": "parameters every step that takes them gets, unless it sets its own",
        "properties": properties,
        "additionalProperties": False,
        "if": _ALLOWS_UNKNOWN,
        "else": {"properties": {"model": {"$ref": "#/$defs/known_model"}}},
    }


def _step(kinds: Mapping[str, StepKind]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": list(kinds), "description": "what the step does"}},
        "allOf": [
            {
                "if": {"required": ["kind"], "properties": {"kind": {"const": name}}},
                "then": {"$ref": f"#/$defs/kind.{name}"},
            }
            for name in kinds
        ],
    }


def _kind(kind: StepKind) -> dict[str, Any]:
    """The keys of one kind's steps."""
    fields = {name: spec for name, spec in kind.fields.items() if spec.on_step}
    properties: dict[str, Any] = {
        "kind": {"const": kind.name},
        "output": {
            "type": "string",
            "description": "where the result goes, relative to the workflow's folder "
            "(default out/<step>.<ext>); may use ${vars} and ${matrix.<key>}",
        },
        "matrix": _matrix(kind),
    }
    if kind.varies:
        properties["variants"] = {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_VARIANTS,
            "description": "independent samples of the step (of each matrix combination)",
        }
    for name, spec in fields.items():
        properties[name] = _model_field(spec) if name == "model" else field_schema(spec)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required: list[str] = []
    alternatives: list[dict[str, Any]] = []
    varying = _varying(kind)
    for name, spec in fields.items():
        if not spec.required or name in kind.defaults:
            continue  # a key the workflow's defaults may give is checked by the loader
        ways: list[dict[str, Any]] = [{"required": [name]}]
        if name in varying:
            ways.append({"required": ["matrix"], "properties": {"matrix": {"required": [name]}}})
        ways += [{"required": [other]} for other, f in fields.items() if f.fills == name]
        if len(ways) == 1:
            required.append(name)
        else:
            alternatives.append({"anyOf": ways})
    if required:
        schema["required"] = required
    if alternatives:
        schema["allOf"] = alternatives
    fills = {name: spec.fills for name, spec in fields.items() if spec.fills}
    if fills:
        schema["dependentSchemas"] = {
            name: {"not": {"required": [target]}} for name, target in fills.items()
        }
    return schema


def _varying(kind: StepKind) -> dict[str, Field]:
    """The kind's keys a matrix may vary: parameters that can change the result."""
    return {
        name: spec
        for name, spec in kind.fields.items()
        if spec.on_step and spec.in_key and name not in kind.reference_fields
    }


def _matrix(kind: StepKind) -> dict[str, Any]:
    value = f"^[^{re.escape(FORBIDDEN)}]*$"
    properties = {}
    for name, spec in _varying(kind).items():
        item = {k: v for k, v in field_schema(spec).items() if k != "description"}
        types = item["type"] if isinstance(item["type"], list) else [item["type"]]
        item["type"] = [t for t in types if t in SCALARS] or ["string"]
        item.pop("items", None)
        item.pop("minItems", None)
        item["pattern"] = value
        properties[name] = {"type": "array", "minItems": 1, "uniqueItems": True, "items": item}
    fixed = [*STEP_KEYS, VARIANT, *(n for n in kind.fields if n not in _varying(kind))]
    return {
        "type": "object",
        "description": "one instance per combination of these values: a parameter of the kind "
        "sets it, any other name is only substituted as ${matrix.<name>}",
        "minProperties": 1,
        "propertyNames": {"pattern": _pattern(VAR_NAME), "not": {"enum": fixed}},
        "properties": properties,
        "additionalProperties": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": list(SCALARS), "pattern": value},
        },
    }


def _pattern(regex: re.Pattern[str]) -> str:
    """A Python ``...\\Z`` pattern as an ECMA-262 one, anchored at both ends."""
    return "^" + regex.pattern.removesuffix(r"\Z") + "$"


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
