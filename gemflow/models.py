"""The table of known models (``data/models.toml``): what each accepts and what it costs."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gemflow.providers.base import ApiRequest


@dataclass(frozen=True)
class SizeInfo:
    output_tokens: int
    usd_per_image: float


@dataclass(frozen=True)
class ModelInfo:
    id: str
    ratios: tuple[str, ...]
    sizes: dict[str, SizeInfo]
    default_size: str
    input_image_tokens: int
    input_usd_per_mtok: float
    max_input_images: int
    fixed_size: bool = False
    api: str = "gemini"
    input_token_limit: int = 65536  # which provider sends its requests (gemflow.providers.registry)

    def size_info(self, image_size: str | None) -> SizeInfo:
        return self.sizes[image_size or self.default_size]

    def estimate_cost(
        self, *, prompt_chars: int, input_images: int, image_size: str | None
    ) -> float:
        """USD for one request: the output image plus the input tokens (text about 4 chars/token)."""
        input_tokens = math.ceil(prompt_chars / 4) + input_images * self.input_image_tokens
        return (
            self.size_info(image_size).usd_per_image + input_tokens * self.input_usd_per_mtok / 1e6
        )


@dataclass(frozen=True)
class ReaderInfo:
    """A text model that reads text off images (see ``[readers]`` in the table)."""

    id: str
    input_image_tokens: int
    input_usd_per_mtok: float
    output_usd_per_mtok: float
    max_input_images: int

    def estimate_cost(self, *, prompt_chars: int, input_images: int, output_chars: int) -> float:
        """USD for one request: text about 4 chars/token, images at the table's token count."""
        input_tokens = math.ceil(prompt_chars / 4) + input_images * self.input_image_tokens
        output_tokens = math.ceil(output_chars / 4)
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1e6


@cache
def _table() -> dict:
    text = (Path(__file__).parent / "data" / "models.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def known_models() -> dict[str, ModelInfo]:
    table = _table()["models"]
    return {
        model_id: ModelInfo(
            id=model_id,
            ratios=tuple(row["ratios"]),
            sizes={k: SizeInfo(int(v[0]), float(v[1])) for k, v in row["sizes"].items()},
            default_size=row["default"],
            input_image_tokens=row["input_image_tokens"],
            input_usd_per_mtok=row["input_usd_per_mtok"],
            max_input_images=row["max_input_images"],
            fixed_size=row.get("fixed_size", False),
            api=row.get("api", "gemini"),
            input_token_limit=row.get("input_token_limit", 65536),
        )
        for model_id, row in table.items()
    }


def model_info(model_id: str) -> ModelInfo | None:
    """The table's entry for ``model_id`` (a ``models/`` prefix is ignored), or None if unknown."""
    return known_models().get(model_id.removeprefix("models/"))


@cache
def aliases() -> dict[str, str]:
    """Names people use for models (``nano-banana``) -> model ids."""
    return dict(_table().get("aliases", {}))


def canonical(model: str) -> str:
    """The model id ``model`` stands for: itself, or what its alias names."""
    return aliases().get(model, model)


def retired(model: str) -> str | None:
    """Why gemflow refuses ``model``, or None."""
    return _table().get("retired", {}).get(model.removeprefix("models/"))


@cache
def reader_models() -> dict[str, ReaderInfo]:
    """The table's text models that read images, by id."""
    table = _table().get("readers", {}).get("models", {})
    return {
        model_id: ReaderInfo(
            id=model_id,
            input_image_tokens=row["input_image_tokens"],
            input_usd_per_mtok=row["input_usd_per_mtok"],
            output_usd_per_mtok=row["output_usd_per_mtok"],
            max_input_images=row["max_input_images"],
        )
        for model_id, row in table.items()
    }


def default_reader() -> str:
    """The reader model a probe uses unless it names one (``[readers] default``)."""
    return str(_table()["readers"]["default"])


def spent(request: ApiRequest, usage: Mapping[str, int]) -> float:
    """USD for one answered request, from the table and the token usage the API reported."""
    info = model_info(request.model)
    if info is not None and "IMAGE" in request.modalities:
        image = info.size_info(request.image_size).usd_per_image
        return image + usage.get("input", 0) * info.input_usd_per_mtok / 1e6
    reader = reader_models().get(request.model)
    if reader is not None:
        output = usage.get("output", 0) + usage.get("thoughts", 0)
        return (
            usage.get("input", 0) * reader.input_usd_per_mtok + output * reader.output_usd_per_mtok
        ) / 1e6
    return 0.0


READ_OUTPUT_TOKENS = 256  # what a reader's answer (the text it read off an image) is taken to be
UNKNOWN_IMAGE_TOKENS = 1290  # a model not in the table: the most any known one bills per image


def estimated_tokens(request: ApiRequest) -> int:
    """About how many tokens ``request`` will use, in and out, before it is sent: text at about
    4 characters a token, input images and the output image at the table's counts."""
    text = math.ceil((len(request.prompt) + len(request.system or "")) / 4)
    info = model_info(request.model)
    if info is not None:
        size = info.sizes.get(request.image_size or info.default_size)
        out = size.output_tokens if size is not None and "IMAGE" in request.modalities else 0
        return text + len(request.images) * info.input_image_tokens + out
    reader = reader_models().get(request.model)
    per_image = reader.input_image_tokens if reader is not None else UNKNOWN_IMAGE_TOKENS
    return text + len(request.images) * per_image + READ_OUTPUT_TOKENS
