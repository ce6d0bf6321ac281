"""Token counts: what a request costs, as ``usageMetadata`` and countTokens report it."""

from __future__ import annotations

import math
from typing import Any

from gemflow.emulator.wire import GenerateRequest
from gemflow.models import ModelInfo

THOUGHTS_TOKENS = 180  # what a gemini-3 image model reports for its (emulated) thinking


def prompt_tokens(info: ModelInfo, request: GenerateRequest) -> tuple[int, int]:
    """(text tokens, image tokens): about 4 characters a token, system instruction included."""
    chars = sum(len(t) for t in request.texts) + len(request.system or "")
    return math.ceil(chars / 4), len(request.images) * info.input_image_tokens


def token_count(info: ModelInfo, request: GenerateRequest) -> dict[str, Any]:
    """The body of a countTokens answer."""
    text_tokens, image_tokens = prompt_tokens(info, request)
    return {
        "totalTokens": text_tokens + image_tokens,
        "promptTokensDetails": _modality_counts(text_tokens, image_tokens),
    }


def usage_metadata(
    info: ModelInfo, request: GenerateRequest, *, output: list[dict[str, Any]], thoughts: int
) -> dict[str, Any]:
    """usageMetadata: prompt tokens from the request, ``output`` per modality, thinking."""
    text_tokens, image_tokens = prompt_tokens(info, request)
    prompt = text_tokens + image_tokens
    candidates = sum(detail["tokenCount"] for detail in output)
    metadata: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "thoughtsTokenCount": thoughts,
        "promptTokensDetails": _modality_counts(text_tokens, image_tokens),
    }
    if output:
        metadata["candidatesTokensDetails"] = output
    return metadata


def _modality_counts(text_tokens: int, image_tokens: int) -> list[dict[str, Any]]:
    counts = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if image_tokens:
        counts.append({"modality": "IMAGE", "tokenCount": image_tokens})
    return counts
