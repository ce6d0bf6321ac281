"""The table of known models (``data/models.toml``): what each accepts and what it costs."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


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


@cache
def known_models() -> dict[str, ModelInfo]:
    text = resources.files("gemflow").joinpath("data/models.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text)["models"]
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
        )
        for model_id, row in table.items()
    }


def model_info(model_id: str) -> ModelInfo | None:
    """The table's entry for ``model_id`` (a ``models/`` prefix is ignored), or None if unknown."""
    return known_models().get(model_id.removeprefix("models/"))
