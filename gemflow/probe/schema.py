"""The probe report's schema (``<step>.probe.json``), written down as data: a JSON Schema document
(draft 2020-12 vocabulary, the subset :func:`validate` checks) whose descriptions document every
field. ``version`` is bumped when a field changes meaning or goes away; new fields may be added
within a version.
"""

from __future__ import annotations

from typing import Any

from gemflow.probe.battery import PROBE_NAMES
from gemflow.probe.method import OUTCOMES
from gemflow.probe.verdict import SIGNALS, VERDICTS

REPORT_FORMAT = "gemflow-probe"
REPORT_VERSION = 1

_TEXT = {"type": "string"}
_TEXTS = {"type": "array", "items": _TEXT}
_SHARE = {"type": "number", "minimum": 0, "maximum": 1}
_OPTIONAL_SHARE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_PROBE = {"enum": list(PROBE_NAMES)}


def _object(properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """An object with exactly these properties, all required."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _doc(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "description": description}


PROBE_RESULT = _object(
    {
        "probe": _doc(_PROBE, "which probe"),
        "outcome": _doc(
            {"enum": list(OUTCOMES)},
            "what the image model answered: image; no_image (it declined, e.g. finishReason "
            "NO_IMAGE); text_only (words, no image); refused (a safety block or refusal)",
        ),
        "finish_reason": _doc({"type": ["string", "null"]}, "the API's finishReason"),
        "block_reason": _doc({"type": ["string", "null"]}, "the API's promptFeedback.blockReason"),
        "model_text": _doc(_TEXTS, "text parts the image model sent with (or instead of) an image"),
        "image": _doc(
            {"type": ["string", "null"]},
            "the probe's image, relative to the report's folder; null without an image",
        ),
        "read": _doc(
            {"type": ["string", "null"]},
            'the text the reader read off the image ("" when it shows none); null when there was '
            "no image or the reader could not say",
        ),
        "similarity": _doc(
            _OPTIONAL_SHARE,
            "current and canary probes: how alike the expected and the read text are, 0..1 "
            "(difflib ratio of the normalised words); null for the others or without a reading",
        ),
        "words_added": _doc(
            _TEXTS,
            "normalised words read but never sent; for the before and after probes, words read "
            "that the probe's own instruction does not explain",
        ),
        "words_dropped": _doc(_TEXTS, "normalised words sent but not read"),
        "words_misread": _doc(
            _TEXTS, '"sent→read" pairs of similar words: likely misspellings, not rewrites'
        ),
        "words_moved": _doc(
            _TEXTS,
            "normalised words sent and read, but in another order (a reordering, or lines read "
            "out of order)",
        ),
        "instruction_echo": _doc(
            _TEXTS,
            "normalised words read that repeat the probe's own instruction (a model lettering its "
            "whole prompt): explained, so not counted as added or as text ahead of the request",
        ),
        "leading_text": _doc(
            _TEXT,
            "words read before the expected text begins (text put in front of the user's "
            'words); "" if none',
        ),
        "canary_found": _doc(
            {"type": ["boolean", "null"]},
            "canary probe: whether the canary was read back; null for the others or without a "
            "reading",
        ),
        "signal": _doc(
            {"enum": list(SIGNALS)}, "what this result says: rewritten, verbatim or none"
        ),
        "weight": _doc(
            {"type": "integer", "minimum": 0, "maximum": 2}, "2 a strong sign, 1 weak, 0 none"
        ),
        "note": _doc(_TEXT, "why, in words"),
    }
)

SAMPLE = _object(
    {
        "sample": _doc(_COUNT, "the sample number (each sample is its own cached set of calls)"),
        "verdict": _doc({"enum": list(VERDICTS)}, "this sample's verdict"),
        "confidence": _doc(_SHARE, "how strongly this sample's evidence supports its verdict"),
        "reasons": _doc(_TEXTS, "the findings behind this sample's verdict, per probe"),
        "results": _doc({"type": "array", "items": PROBE_RESULT}, "one result per probe, in order"),
    }
)

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "gemflow probe report",
    **_object(
        {
            "format": _doc({"const": REPORT_FORMAT}, "always gemflow-probe"),
            "version": _doc({"const": REPORT_VERSION}, "the schema version of this report"),
            "step": _doc(_TEXT, "the step id"),
            "model": _doc(_TEXT, "the image model probed"),
            "reader": _doc(_TEXT, 'the reader: a text model id, or "tesseract"'),
            "prompt": _doc(_TEXT, "the prompt under test"),
            "canary": _doc(_TEXT, "the canary token put inside the prompt under test"),
            "repeat": _doc({"type": "integer", "minimum": 1}, "how many samples were taken"),
            "verdict": _doc(
                {"enum": list(VERDICTS)},
                "rewritten: text reached the model other than as written, or with text ahead of "
                "it; verbatim: it arrived as written; inconclusive: the evidence does not decide",
            ),
            "confidence": _doc(
                _SHARE,
                "how strongly the evidence supports the verdict, 0..1 (0 when inconclusive): the "
                "mean confidence of the samples that agree, times the share of samples that agree",
            ),
            "summary": _doc(
                _TEXT,
                "the verdict in one sentence a user can act on: what was found, by which probes, "
                "in how many samples, and what went the other way",
            ),
            "supported_by": _doc(
                {"type": "array", "items": _PROBE},
                "the probes whose findings support the verdict in the samples that agree with it "
                "(after: the control confirmed what the before probe showed)",
            ),
            "contradicted_by": _doc(
                {"type": "array", "items": _PROBE},
                "the probes whose findings point the other way in those samples (for rewritten: "
                "probes that read the user's words back intact, as they do when the only "
                "rewriting is text put ahead of them)",
            ),
            "why": _doc(_TEXTS, "why this verdict and this confidence, in words"),
            "hidden_text": _doc(
                {"type": ["string", "null"]},
                "text the service put ahead of the user's words, as read in the deciding sample: "
                "what the before probe showed beyond its own instruction (stretches joined by "
                '" … "), or a current/canary probe\'s leading text; null if none',
            ),
            "recovered": _doc(
                {
                    "type": "object",
                    "propertyNames": _PROBE,
                    "additionalProperties": {"type": ["string", "null"]},
                },
                "per probe, the text read in the deciding sample (the first sample whose verdict "
                "is the step's)",
            ),
            "scores": _doc(
                _object(
                    {
                        "current_similarity": _doc(
                            _OPTIONAL_SHARE,
                            "median similarity of the current probe; null if unread",
                        ),
                        "canary_similarity": _doc(
                            _OPTIONAL_SHARE, "median similarity of the canary probe; null if unread"
                        ),
                        "canary_found_in": _doc(
                            _COUNT, "samples in which the canary was read back"
                        ),
                        "hidden_words": _doc(
                            _COUNT,
                            "most words, in any sample, that the before probe showed and its "
                            "own instruction does not explain",
                        ),
                    }
                ),
                "the scores that decided, over all samples",
            ),
            "battery": _doc(
                {
                    "type": "array",
                    "items": _object(
                        {
                            "probe": _doc(_PROBE, "the probe's name"),
                            "purpose": _doc(_TEXT, "what the probe reveals"),
                            "prompt": _doc(_TEXT, "the prompt sent, exactly"),
                            "expected": _doc(
                                _TEXT,
                                "what a service that passes prompts through unchanged would "
                                'show ("" for nothing)',
                            ),
                        }
                    ),
                },
                "the probes sent, in order",
            ),
            "samples": _doc({"type": "array", "items": SAMPLE}, "each sample's results"),
            "sheet": _doc(_TEXT, "the contact sheet of every probe image, relative to the report"),
        }
    ),
}

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}


def validate(value: Any, schema: dict[str, Any] = SCHEMA, path: str = "$") -> list[str]:
    """Problems with ``value`` against ``schema`` (the keywords used above), as "path: problem"."""
    if "type" in schema and not _has_type(value, schema["type"]):
        return [f"{path}: expected {schema['type']}, got {type(value).__name__}"]
    if "const" in schema and value != schema["const"]:
        return [f"{path}: expected {schema['const']!r}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {schema['enum']}"]
    problems: list[str] = []
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value} is above {schema['maximum']}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict):
        problems += _validate_object(value, schema, path)
    return problems


def _validate_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    problems = [
        f"{path}: missing {name!r}" for name in schema.get("required", ()) if name not in value
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        where = f"{path}.{name}"
        if "propertyNames" in schema:
            problems += [f"{where}: bad name: {p}" for p in validate(name, schema["propertyNames"])]
        if name in properties:
            problems += validate(item, properties[name], where)
        elif extra is False:
            problems.append(f"{where}: not allowed")
        elif isinstance(extra, dict):
            problems += validate(item, extra, where)
    return problems


def _has_type(value: Any, expected: str | list[str]) -> bool:
    names = [expected] if isinstance(expected, str) else expected
    for name in names:
        if isinstance(value, bool) and name in ("integer", "number"):
            continue  # JSON true is not a number
        if isinstance(value, _TYPES[name]):
            return True
    return False
