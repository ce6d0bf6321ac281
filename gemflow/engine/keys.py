"""The cache key: a documented contract.

A step's key is ``"sha256:" + hex(sha256(canonical_json(material)))`` where material is::

    {
      "gemflow": 1,                  # KEY_FORMAT: bumped only if this layout ever changes
      "kind": "gemini-image",        # the kind's key identity (generate and edit share one)
      "recipe": 1,                   # the kind's recipe version: bumped when its code makes
                                     # different pictures from the same parameters
      "params": {...},               # every resolved parameter that can change the result:
                                     # model, prompt after ${var} substitution, system,
                                     # aspect_ratio, image_size, temperature, seed, geometry...;
                                     # unset parameters are absent, numbers are floats
      "format": "png",               # the output file's format
      "inputs": ["sha256:...", ...], # the content digest of each input, in the order written:
                                     # a file's bytes, or the bytes of an upstream step's output
      "service": "emulator",         # only when not talking to Google's default endpoint:
                                     # "emulator" for --emulator, else the base URL
      "sample": 2,                   # only for variant 3 and up of ``variants: N`` (the first
                                     # variant is sample 0 and has no field): samples of one
                                     # request differ by this alone, so 3 -> 5 pays for 2
      "reroll": 1                    # only after ``--reroll``: the step's re-roll counter,
                                     # kept in the lock file (reverting it brings the old
                                     # picture back without a call)
    }

Matrix values enter the key as what they are: a value of one of the kind's parameters
(``matrix: {model: [...]}``) is that parameter in ``params``; any other key only through the text
it is substituted into (``${matrix.style}`` in a prompt). An instance's name is not in the key.

``canonical_json`` is JSON with sorted keys, ``(",", ":")`` separators, UTF-8, no ASCII escaping.

What is deliberately NOT in the key, because it cannot change the picture: the step id, the output
path, descriptions, the order of keys in the YAML file, comments, how a var was spelled (only its
substituted value), file names and mtimes of inputs (only their bytes), and the API key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from gemflow.workflow import Step

KEY_FORMAT = 1


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(data: bytes) -> str:
    """The algorithm-tagged content digest used for outputs, inputs and keys."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def key_material(
    step: Step, input_digests: Sequence[str], service: str | None = None, reroll: int = 0
) -> dict:
    material: dict[str, Any] = {
        "gemflow": KEY_FORMAT,
        "kind": step.kind.key_kind or step.kind.name,
        "recipe": step.kind.recipe_version,
        "params": step.kind.recipe(step.params),
        "format": step.format,
        "inputs": list(input_digests),
    }
    if service is not None and step.uses_api:
        material["service"] = service
    if step.sample:
        material["sample"] = step.sample
    if reroll:
        material["reroll"] = reroll
    return material


def step_key(material: dict) -> str:
    return digest(canonical_json(material))
