"""What API kinds share about models and prompts: the model field with its aliases and checks, and
the checks of a prompt before anything is sent."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from gemflow.kinds.base import Field
from gemflow.models import aliases, canonical, known_models, model_info, retired

MODEL = Field(
    "str", required=True, doc="model id (or alias: nano-banana, nano-banana-pro); see models.toml"
)
ALLOW_UNKNOWN = Field(
    "bool", in_key=False, doc="send to a model id gemflow does not know (a brand-new one)"
)
CHARS_PER_TOKEN = 4  # the usual estimate for English text
_JSON_LIKE = re.compile(r"\A\s*[\[{].*[\]}]\s*\Z", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*[}\]]")
# A model id goes into the request's URL path: nothing that could lead elsewhere ("../files").
_PLAIN_MODEL_ID = re.compile(r"(models/)?[A-Za-z0-9][A-Za-z0-9._-]*\Z")

Problems = list[tuple[str | None, str]]


def resolve_model(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with an alias replaced by the model id it names (the id is what the key holds)."""
    model = params.get("model")
    if isinstance(model, str) and model in aliases():
        params["model"] = canonical(model)
    return params


def model_problems(params: Mapping[str, Any]) -> Problems:
    """An unknown or refused model, before any money is spent."""
    model = params.get("model")
    if not model:
        return []
    if problem := model_id_problem(model):
        return [("model", problem)]
    why = retired(model)
    if why is not None:
        return [("model", f"{model} cannot be used: {why}")]
    if model_info(model) is not None or params.get("allow_unknown_model"):
        return []
    names = [*known_models(), *aliases()]
    match = difflib.get_close_matches(model, names, n=1, cutoff=0.6)
    hint = f" (did you mean '{match[0]}'?)" if match else ""
    return [
        (
            "model",
            f"unknown model {model!r}{hint}; known: {', '.join(known_models())}. "
            "For a model newer than gemflow, add 'allow_unknown_model: true'",
        )
    ]


def model_id_problem(model: str) -> str | None:
    """Why ``model`` cannot be a model id (it is sent in a URL path), or None."""
    if _PLAIN_MODEL_ID.match(model):
        return None
    return (
        f"model {model!r} is not a model id: letters, digits, '.', '-' and '_', "
        "optionally after 'models/'"
    )


def model_warnings(params: Mapping[str, Any]) -> Problems:
    model = params.get("model")
    if model and model_info(model) is None and params.get("allow_unknown_model"):
        return [("model", f"unknown model {model!r}: not validated, no cost estimate")]
    return []


def prompt_problems(params: Mapping[str, Any], *, extra: str = "") -> Problems:
    """An empty prompt, or one longer than the model reads (``extra``: other text sent with it)."""
    prompt = params.get("prompt")
    if prompt is None:
        return []
    if not prompt.strip():
        return [("prompt", "the prompt is empty")]
    info = model_info(params.get("model") or "")
    tokens = math.ceil((len(prompt) + len(extra)) / CHARS_PER_TOKEN)
    if info is not None and tokens > info.input_token_limit:
        return [
            (
                "prompt",
                f"the prompt is about {tokens:,} tokens; {info.id} reads at most "
                f"{info.input_token_limit:,}",
            )
        ]
    return []


def prompt_warnings(params: Mapping[str, Any]) -> Problems:
    """A prompt that looks like JSON but is not: it would be sent as broken JSON text."""
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not _JSON_LIKE.match(prompt):
        return []
    try:
        json.loads(prompt)
    except json.JSONDecodeError as exc:
        what = "a trailing comma" if _TRAILING_COMMA.search(prompt) else exc.msg.lower()
        return [
            (
                "prompt",
                f"looks like JSON but does not parse: {what} at line {exc.lineno} of the prompt "
                "(write it as YAML under 'prompt:' to have gemflow send valid JSON)",
            )
        ]
    return []


def structured(value: Any) -> str:
    """A mapping or list written under ``prompt:``, as the JSON text that is sent: keys in the
    order written, 2-space indent, UTF-8 as is."""
    return json.dumps(value, indent=2, ensure_ascii=False)
