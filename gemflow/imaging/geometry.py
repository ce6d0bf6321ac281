"""Layout vocabulary shared by the loader and the local image steps, without Pillow: fits, anchors,
and lengths in pixels or percentages. (Importing Pillow is left to the moment a step runs.)"""

from __future__ import annotations

import re

Length = int | str  # pixels, or a percentage of the base such as "50%"

FITS = ("contain", "cover", "exact")
DEFAULT_QUALITY = 90  # webp and jpeg
# Which point of a layer sits at its (x, y), as fractions of the layer's width and height.
ANCHORS: dict[str, tuple[float, float]] = {
    "top-left": (0.0, 0.0),
    "top": (0.5, 0.0),
    "top-right": (1.0, 0.0),
    "left": (0.0, 0.5),
    "center": (0.5, 0.5),
    "right": (1.0, 0.5),
    "bottom-left": (0.0, 1.0),
    "bottom": (0.5, 1.0),
    "bottom-right": (1.0, 1.0),
}

_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")


def resolve_length(value: Length, whole: int) -> int:
    """Pixels for ``value``: an int is pixels, a string like ``"50%"`` is a share of ``whole``.

    Raises ``ValueError`` for anything else (floats and bools included: a pixel is whole).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    share = percentage(value)
    if share is None:
        raise ValueError(f"expected whole pixels or a percentage like '50%', not {value!r}")
    return round(whole * share / 100)


def percentage(value: object) -> float | None:
    """The number in a percentage string such as ``"12.5%"`` or ``"-10%"``, else None."""
    match = _PERCENT.match(value) if isinstance(value, str) else None
    return float(match[1]) if match else None
