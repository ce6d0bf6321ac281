"""The ``resize`` step: one image scaled to a width and/or height, locally with Pillow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from gemflow.imaging.geometry import DEFAULT_QUALITY, FITS
from gemflow.kinds.base import IMAGE_FORMATS, Field, InputImage, RunContext, StepKind, StepOutput

if TYPE_CHECKING:
    from gemflow.workflow import Step

DEFAULT_FIT = "contain"


class Resize(StepKind):
    name = "resize"
    recipe_version = 1
    uses_api = False
    fields: ClassVar[Mapping[str, Field]] = {
        "image": Field("ref", required=True, doc="The image to resize: a step id or a file."),
        "width": Field("int", minimum=1, doc="Target width in pixels."),
        "height": Field("int", minimum=1, doc="Target height in pixels."),
        "fit": Field("str", choices=FITS, default=DEFAULT_FIT, doc="contain, cover or exact."),
        "format": Field("str", choices=IMAGE_FORMATS, doc="Output format (default: from suffix)."),
        "quality": Field(
            "int", minimum=1, maximum=100, default=DEFAULT_QUALITY, doc="webp/jpeg quality."
        ),
        "description": Field("str", in_key=False, doc="A note for people; not in the key."),
    }
    reference_fields: ClassVar[Sequence[str]] = ("image",)

    def check(self, params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        width, height = params.get("width"), params.get("height")
        fit = params.get("fit") or DEFAULT_FIT
        if width is None and height is None:
            return [(None, "needs 'width', 'height' or both")]
        if fit in ("cover", "exact") and (width is None or height is None):
            return [("fit", f"fit '{fit}' needs both 'width' and 'height'")]
        return []

    def run(self, step: Step, inputs: Sequence[InputImage], ctx: RunContext) -> StepOutput:
        params = step.params
        (source,) = inputs
        from gemflow.imaging.operations import encode, open_image, resize

        image = open_image(source.data, source=source.ref)
        result = resize(
            image,
            width=params.get("width"),
            height=params.get("height"),
            fit=params.get("fit") or DEFAULT_FIT,
        )
        data = encode(result, step.format, quality=params.get("quality"))
        return StepOutput(data=data, meta={"width": result.width, "height": result.height})
