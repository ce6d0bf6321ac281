"""The ``composite`` step: several images into one, as a grid (contact sheet) or as layers.

A step uses exactly one layout:

- grid: ``images`` in equal cells, row by row (``columns``, ``gap``, ``background``,
  ``cell_width``/``cell_height``), optionally captioned (``labels``, see :mod:`gemflow.captions`)
  and headed (``title``);
- layers: ``base`` with each entry of ``layers`` (``{image, x, y, width, height, opacity, anchor}``)
  composited over it in order.

Inputs are passed in the order ``references`` gives: the grid's images, or the base then each
layer's image. The recipe keeps each layer's geometry but not its ``image`` reference: the input
digests already stand for the pictures, so renaming a file or step does not change the key. A
labelled grid is the exception: its captions are drawn from the references, so the recipe holds
the captions (and renaming what a caption shows changes the key, as it changes the picture).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from gemflow.captions import captions
from gemflow.imaging.geometry import ANCHORS, DEFAULT_QUALITY, percentage
from gemflow.kinds.base import IMAGE_FORMATS, Field, InputImage, RunContext, StepKind, StepOutput

if TYPE_CHECKING:
    from PIL import Image

    from gemflow.workflow import Step

GRID_ONLY_KEYS = ("columns", "gap", "background", "cell_width", "cell_height", "labels", "title")
LAYER_KEYS = ("image", "x", "y", "width", "height", "opacity", "anchor")
DEFAULT_BACKGROUND = "white"

Problems = list[tuple[str | None, str]]


class Composite(StepKind):
    name = "composite"
    recipe_version = 1
    uses_api = False
    fields: ClassVar[Mapping[str, Field]] = {
        "images": Field("refs", doc="Grid layout: the images, in reading order."),
        "columns": Field("int", minimum=1, doc="Grid: images per row (default: all in one row)."),
        "gap": Field("int", minimum=0, doc="Grid: pixels between cells (default 0)."),
        "background": Field("str", doc="Grid: colour of gaps and cell padding (default white)."),
        "cell_width": Field("int", minimum=1, doc="Grid: cell width (default: widest image)."),
        "cell_height": Field("int", minimum=1, doc="Grid: cell height (default: tallest image)."),
        "labels": Field(
            "bool",
            default=False,
            doc="Grid: caption each cell (what tells matrix instances apart, else the reference).",
        ),
        "title": Field("str", doc="Grid: a heading above the grid (one line)."),
        "base": Field("ref", doc="Layers layout: the image the layers go on; sets the size."),
        "layers": Field("list", doc="Layers layout: what to place on the base, in order."),
        "format": Field("str", choices=IMAGE_FORMATS, doc="Output format (default: from suffix)."),
        "quality": Field(
            "int", minimum=1, maximum=100, default=DEFAULT_QUALITY, doc="webp/jpeg quality."
        ),
        "description": Field("str", in_key=False, doc="A note for people; not in the key."),
    }
    reference_fields: ClassVar[Sequence[str]] = ("images", "base")

    def references(self, params: Mapping[str, Any]) -> list[str]:
        refs = super().references(params)
        refs.extend(
            layer["image"]
            for layer in _layer_list(params)
            if isinstance(layer, Mapping) and isinstance(layer.get("image"), str)
        )
        return refs

    def check(self, params: Mapping[str, Any]) -> Problems:
        is_grid = params.get("images") is not None
        is_layers = params.get("base") is not None or params.get("layers") is not None
        problems: Problems = []
        if is_grid and is_layers:
            problems.append(
                (None, "use either 'images' (a grid) or 'base' with 'layers', not both")
            )
        elif not is_grid and not is_layers:
            problems.append(
                (None, "needs 'images' (a grid) or 'base' with 'layers' (images placed on a base)")
            )
        elif is_layers:
            problems.extend(_layers_layout_problems(params))
        background = params.get("background")
        if isinstance(background, str):
            try:
                from gemflow.imaging.operations import parse_color

                parse_color(background)
            except ValueError as exc:
                problems.append(("background", str(exc)))
        problems.extend(_title_problems(params.get("title")))
        return problems

    def recipe(self, params: Mapping[str, Any]) -> dict[str, Any]:
        recipe = super().recipe(params)
        # Without labels the recipe is what it was before labels existed, so no key changes.
        labelled = recipe.pop("labels", False)
        recipe.pop("title", None)
        if params.get("images") is not None:  # the grid's defaults, filled in as run fills them
            recipe.setdefault("columns", len(params["images"]))
            recipe.setdefault("gap", 0)
            recipe.setdefault("background", DEFAULT_BACKGROUND)
            if labelled:  # what is drawn, not the flag: the captions change with the references
                recipe["captions"] = _captions(params)
            title = _title(params)
            if title is not None:
                recipe["title"] = title
        if "layers" in recipe:
            recipe["layers"] = [_layer_recipe(layer) for layer in _layer_list(params)]
        return recipe

    def run(self, step: Step, inputs: Sequence[InputImage], ctx: RunContext) -> StepOutput:
        params = step.params
        from gemflow.imaging.operations import encode, open_image

        images = [open_image(item.data, source=item.ref) for item in inputs]
        if params.get("images") is not None:
            result = _run_grid(params, images)
        else:
            result = _run_layers(params, images)
        data = encode(result, step.format, quality=params.get("quality"))
        return StepOutput(data=data, meta={"width": result.width, "height": result.height})


def _run_grid(params: Mapping[str, Any], images: list[Image.Image]) -> Image.Image:
    from gemflow.imaging.operations import grid

    return grid(
        images,
        columns=_get(params, "columns", len(images)),
        gap=_get(params, "gap", 0),
        background=_get(params, "background", DEFAULT_BACKGROUND),
        cell=(params.get("cell_width"), params.get("cell_height")),
        captions=_captions(params) if params.get("labels") else None,
        title=_title(params),
    )


def _captions(params: Mapping[str, Any]) -> list[str]:
    """The grid's captions, from its references as written: one source for the key and the
    picture, so what is drawn is always what the key says."""
    return captions(params["images"])


def _title(params: Mapping[str, Any]) -> str | None:
    """The title as drawn: one line, its spaces collapsed (so spacing alone keeps the key)."""
    title = params.get("title")
    return " ".join(title.split()) if isinstance(title, str) and title.strip() else None


def _run_layers(params: Mapping[str, Any], images: list[Image.Image]) -> Image.Image:
    from gemflow.imaging.operations import Layer, place_layers

    base, *pictures = images
    layers = [
        Layer(
            image=picture,
            x=_get(spec, "x", 0),
            y=_get(spec, "y", 0),
            width=spec.get("width"),
            height=spec.get("height"),
            opacity=float(_get(spec, "opacity", 1.0)),
            anchor=_get(spec, "anchor", "top-left"),
        )
        for picture, spec in zip(pictures, params["layers"], strict=True)
    ]
    return place_layers(base, layers)


def _get(params: Mapping[str, Any], key: str, default: Any) -> Any:
    value = params.get(key)
    return default if value is None else value


def _layer_list(params: Mapping[str, Any]) -> list[Any]:
    layers = params.get("layers")
    return layers if isinstance(layers, list) else []


def _layer_recipe(layer: Any) -> Any:
    """A layer's geometry, in a fixed key order, without its image reference.

    Opacity is a float, as the loader makes every "number" field, so 1 and 1.0 give one key.
    """
    if not isinstance(layer, Mapping):
        return layer
    recipe = {key: layer[key] for key in LAYER_KEYS[1:] if layer.get(key) is not None}
    if "opacity" in recipe:
        recipe["opacity"] = float(recipe["opacity"])
    return recipe


# --- check ----------------------------------------------------------------------------------


def _layers_layout_problems(params: Mapping[str, Any]) -> Problems:
    problems: Problems = [
        (key, f"'{key}' only applies to a grid ('images'), not to layers")
        for key in GRID_ONLY_KEYS
        if params.get(key) is not None
    ]
    if params.get("base") is None:
        problems.append(("base", "'layers' need a 'base' image to go on"))
    layers = params.get("layers")
    if layers is None:
        problems.append(("layers", "'base' needs 'layers' to place on it"))
    elif isinstance(layers, list):  # another type is reported by the field check
        if not layers:
            problems.append(("layers", "'layers' is empty: give at least one layer"))
        for index, layer in enumerate(layers):
            problems.extend(("layers", f"layers[{index}]: {p}") for p in _layer_problems(layer))
    return problems


def _title_problems(title: Any) -> Problems:
    if not isinstance(title, str):  # unset, or another type: reported by the field check
        return []
    if not title.strip():
        return [("title", "'title' is empty: give the heading's text, or leave 'title' out")]
    if "\n" in title.strip():
        return [("title", "'title' must be one line")]
    return []


def _layer_problems(layer: Any) -> list[str]:
    """Everything wrong with one entry of ``layers``, as messages without the ``layers[i]`` part."""
    if not isinstance(layer, Mapping):
        return ["must be a mapping like {image: logo.png, x: 10, y: 10}"]
    problems = [
        f"unknown key {key!r}{_did_you_mean(key, LAYER_KEYS)}"
        for key in layer
        if key not in LAYER_KEYS
    ]
    image = layer.get("image")
    if image is None:
        problems.append("missing 'image' (a step id or a file path)")
    elif not isinstance(image, str) or not image.strip():
        problems.append(f"'image' must be a step id or a file path, not {image!r}")
    for key in ("x", "y"):
        if layer.get(key) is not None and not _is_length(layer[key]):
            problems.append(
                f"'{key}' must be whole pixels or a percentage like '50%', not {layer[key]!r}"
            )
    for key in ("width", "height"):
        if layer.get(key) is not None and not _is_size(layer[key]):
            problems.append(
                f"'{key}' must be whole pixels (at least 1) or a percentage like '25%', "
                f"not {layer[key]!r}"
            )
    opacity = layer.get("opacity")
    if opacity is not None and not _is_opacity(opacity):
        problems.append(f"'opacity' must be a number from 0 to 1, not {opacity!r}")
    anchor = layer.get("anchor")
    if anchor is not None and (not isinstance(anchor, str) or anchor not in ANCHORS):
        problems.append(
            f"'anchor' must be one of {', '.join(ANCHORS)}, not {anchor!r}"
            f"{_did_you_mean(anchor, ANCHORS)}"
        )
    return problems


def _is_pixels(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_length(value: Any) -> bool:
    return _is_pixels(value) or percentage(value) is not None


def _is_size(value: Any) -> bool:
    share = percentage(value)
    return value >= 1 if _is_pixels(value) else share is not None and share > 0


def _is_opacity(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _did_you_mean(word: Any, options: Sequence[str] | Mapping[str, Any]) -> str:
    if not isinstance(word, str):
        return ""
    matches = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
