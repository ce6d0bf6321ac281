"""What ``generate`` and ``edit`` share: one Gemini image request, validated against the model table."""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from gemflow.errors import NoImageError
from gemflow.kinds.base import (
    SEND_FIELDS,
    ApiKind,
    Call,
    Estimate,
    Exchange,
    Field,
    InputImage,
    StepOutput,
)
from gemflow.kinds.prompts import (
    ALLOW_UNKNOWN,
    MODEL,
    model_problems,
    model_warnings,
    prompt_problems,
    prompt_warnings,
    resolve_model,
)
from gemflow.models import model_info

if TYPE_CHECKING:
    from gemflow.providers.base import ApiRequest, ApiResponse
    from gemflow.workflow import Step

# Keys that `defaults:` may set for every Gemini image step.
IMAGE_DEFAULTS: Mapping[str, Field] = {
    "model": MODEL,
    "allow_unknown_model": ALLOW_UNKNOWN,
    "system": Field("str", doc="system instruction"),
    "aspect_ratio": Field("str", doc='e.g. "16:9" (quoted or not)'),
    "image_size": Field("scalar", doc='"512", "1K", "2K" or "4K" as the model allows'),
    "temperature": Field("number", minimum=0, maximum=2, doc="sampling temperature, 0 to 2"),
    "seed": Field("int", doc="a fixed seed: the same request draws the same picture"),
    **SEND_FIELDS,
}

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_mime(data: bytes) -> str | None:
    """The image type from the first bytes alone (nothing is decoded)."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "image/heic"
    return None


def _api_image(image: InputImage) -> tuple[bytes, str]:
    """(bytes, MIME type) to send for one input image, or ``InputError`` naming it.

    HEIC goes as it is: the API reads it, but Pillow cannot, so gemflow cannot check it. Any other
    input is decoded in full, then sent as it is or as a PNG: see ``imaging.for_api``.
    """
    if sniff_mime(image.data) == "image/heic":
        return image.data, "image/heic"
    from gemflow.imaging.operations import for_api

    return for_api(image.data, source=image.ref)


class GeminiImageKind(ApiKind):
    """A step that sends one request to a Gemini image model and keeps the image it returns."""

    defaults = IMAGE_DEFAULTS
    varies = True
    # generate and edit send the same request for the same parameters: one key identity for both.
    key_kind: ClassVar[str] = "gemini-image"
    images_required: ClassVar[bool] = False
    reference_fields = ("images",)

    @functools.cached_property
    def fields(self) -> Mapping[str, Field]:  # type: ignore[override]
        return {
            **IMAGE_DEFAULTS,
            "prompt": Field("text_or_json", required=True, doc="text, or a mapping sent as JSON"),
            "prompt_file": Field(
                "file", in_key=False, fills="prompt", doc="a text or Markdown file: the prompt"
            ),
            "images": Field(
                "refs", required=self.images_required, doc="step ids or files, in order"
            ),
            "description": Field("str", in_key=False, doc="a note for people; not in the key"),
            "expect": Field(
                "str",
                choices=("image", "refusal"),
                in_key=False,
                doc="refusal: the step succeeds when the model refuses (a moderation check)",
            ),
        }

    def output_format(self, params: Mapping[str, Any], suffix: str | None) -> str:
        return "png"

    def resolve(self, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
        return resolve_model(super().resolve(params, defaults))

    def check(self, params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        problems = model_problems(params) + prompt_problems(
            params, extra=params.get("system") or ""
        )
        info = model_info(params["model"]) if params.get("model") else None
        if info is None:
            return problems
        ratio = params.get("aspect_ratio")
        if ratio is not None and ratio not in info.ratios:
            problems.append(
                (
                    "aspect_ratio",
                    f"{ratio!r} is not accepted by {info.id} (accepted: {', '.join(info.ratios)})",
                )
            )
        size = params.get("image_size")
        if size is not None:
            if info.fixed_size:
                problems.append(
                    ("image_size", f"{info.id} has a fixed output size: remove image_size")
                )
            elif size not in info.sizes:
                hint = f" (did you mean {size.upper()!r}?)" if size.upper() in info.sizes else ""
                problems.append(
                    (
                        "image_size",
                        f"{size!r} is not accepted by {info.id} "
                        f"(accepted: {', '.join(info.sizes)}){hint}",
                    )
                )
        count = len(params.get("images") or ())
        if count > info.max_input_images:
            problems.append(
                ("images", f"{count} images; {info.id} takes at most {info.max_input_images}")
            )
        return problems

    def warnings(self, params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        return model_warnings(params) + prompt_warnings(params)

    def estimate(self, step: Step) -> Estimate:
        info = model_info(step.params["model"])
        if info is None:
            return Estimate(api_calls=1)
        usd = info.estimate_cost(
            prompt_chars=len(step.params["prompt"]) + len(step.params.get("system") or ""),
            input_images=len(step.refs),
            image_size=step.params.get("image_size"),
        )
        return Estimate(api_calls=1, usd=usd)

    def build_request(self, step: Step, inputs: Sequence[InputImage]) -> ApiRequest:
        from gemflow.providers.base import ApiRequest

        images = [_api_image(image) for image in inputs]  # every input checked before any is sent
        p = step.params
        return ApiRequest(
            model=p["model"],
            prompt=p["prompt"],
            images=tuple(images),
            system=p.get("system"),
            aspect_ratio=p.get("aspect_ratio"),
            image_size=p.get("image_size"),
            temperature=p.get("temperature"),
            seed=p.get("seed"),
        )

    def exchange(self, step: Step, inputs: Sequence[InputImage]) -> Exchange:
        request = self.build_request(step, inputs)
        [response] = yield [Call(request)]
        if response.image is None:  # a refusal is an answer: never retried, never cached
            reason = response.block_reason or response.finish_reason or "no image part"
            if reason == "STOP":
                reason = "text only"
            raise NoImageError(reason, " ".join(response.texts))
        return StepOutput(
            data=_as_png(response.image, response.mime_type),
            meta=_meta(request, response),
        )


def _as_png(data: bytes, mime: str | None) -> bytes:
    """API outputs are stored as PNG: a JPEG answer is converted losslessly from its pixels."""
    if mime == "image/png" or sniff_mime(data) == "image/png":
        return data
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def _meta(request: ApiRequest, response: ApiResponse) -> dict[str, Any]:
    return {
        "model_version": response.model_version,
        "response_id": response.response_id,
        "finish_reason": response.finish_reason,
        "usage": response.usage,
        "texts": response.texts,
        "mime_type": response.mime_type,
        "request": request.describe(),
    }
