"""The models the emulator serves, and what each accepts.

Image models come from ``gemflow.models``, text models from its ``[readers]`` table, and
``extra_models`` get generic image-model capabilities. A request is checked against its model the
way the real service checks it, with messages that say what would be accepted.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from gemflow.emulator.wire import ApiFailure, GenerateRequest, bad_request
from gemflow.models import ModelInfo, ReaderInfo, SizeInfo, known_models, reader_models

INPUT_TOKEN_LIMIT = 65536
OUTPUT_TOKEN_LIMIT = 32768


def find_model(model_id: str, version: str, method: str, extra_models: Container[str]) -> ModelInfo:
    """The model's capabilities, or ApiFailure(404) as the real service words it."""
    info = known_models().get(model_id)
    if info is not None:
        return info
    if model_id in extra_models:
        return _generic_model(model_id)
    reader = reader_models().get(model_id)
    if reader is not None:
        return _text_model(reader)
    raise ApiFailure(
        404,
        f"models/{model_id} is not found for API version {version}, "
        f"or is not supported for {method}. Call ListModels to see the list of available "
        f"models and their supported methods.",
    )


def is_text_model(info: ModelInfo) -> bool:
    """A model from the ``[readers]`` table: it answers with text only."""
    return info.id in reader_models()


def model_resource(model_id: str) -> dict[str, Any]:
    """The body of a getModel answer."""
    info = known_models().get(model_id)
    return {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": _display_name(model_id),
        "description": "Emulated by gemflow: deterministic images for tests.",
        "inputTokenLimit": info.input_token_limit if info is not None else INPUT_TOKEN_LIMIT,
        "outputTokenLimit": OUTPUT_TOKEN_LIMIT,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def _generic_model(model_id: str) -> ModelInfo:
    """Capabilities assumed for ``extra_models``: every known ratio, sizes 512 to 4K."""
    ratios = dict.fromkeys(r for info in known_models().values() for r in info.ratios)
    return ModelInfo(
        id=model_id,
        ratios=tuple(ratios) or ("1:1",),
        sizes={
            "512": SizeInfo(747, 0.045),
            "1K": SizeInfo(1120, 0.067),
            "2K": SizeInfo(1680, 0.101),
            "4K": SizeInfo(2520, 0.151),
        },
        default_size="1K",
        input_image_tokens=560,
        input_usd_per_mtok=0.5,
        max_input_images=14,
    )


def _text_model(reader: ReaderInfo) -> ModelInfo:
    """A text-only model from the ``[readers]`` table, in the shape validation and usage need."""
    return ModelInfo(
        id=reader.id,
        ratios=("1:1",),
        sizes={"1K": SizeInfo(0, 0.0)},
        default_size="1K",
        input_image_tokens=reader.input_image_tokens,
        input_usd_per_mtok=reader.input_usd_per_mtok,
        max_input_images=reader.max_input_images,
    )


def _display_name(model_id: str) -> str:
    return " ".join(word.capitalize() for word in model_id.split("-"))


def thinks(model_id: str) -> bool:
    """Gemini 3.x image models always think and return interim thought images."""
    return model_id.startswith("gemini-3")


def validate(info: ModelInfo, request: GenerateRequest) -> None:
    """Reject what the real service rejects, with a message that says what would be accepted."""
    if not request.has_contents:
        raise bad_request(
            "* GenerateContentRequest.contents: contents is not specified", "contents"
        )
    ratio, size = request.aspect_ratio, request.image_size
    if ratio is not None and ratio not in info.ratios:
        raise bad_request(
            f"Unsupported aspect ratio '{ratio}' for models/{info.id}. "
            f"Supported values: {', '.join(info.ratios)}.",
            "generation_config.image_config.aspect_ratio",
        )
    if size is not None:
        _validate_size(info, size)
    if len(request.images) > info.max_input_images:
        raise bad_request(
            f"Too many input images: {len(request.images)}. models/{info.id} accepts at most "
            f"{info.max_input_images} images per request.",
            "contents",
        )


def check_request(info: ModelInfo, request: GenerateRequest) -> bool:
    """Validate a generate request for its model; True if the model answers with text only."""
    validate(info, request)
    text_only = is_text_model(info)
    if text_only:
        refuse_image_modality(info, request)
    return text_only


def refuse_image_modality(info: ModelInfo, request: GenerateRequest) -> None:
    """A text model asked for images answers 400, as the real text models do."""
    if request.modalities is not None and "IMAGE" in request.modalities:
        raise bad_request(
            "The requested combination of response modalities is not supported by the model. "
            f"models/{info.id} accepts the following combination of response modalities: * TEXT",
            "generation_config.response_modalities",
        )


def _validate_size(info: ModelInfo, size: str) -> None:
    where = "generation_config.image_config.image_size"
    if info.fixed_size:
        raise bad_request(
            f"image_size is not supported for models/{info.id}: it always produces "
            f"{info.default_size} images. Remove image_size.",
            where,
        )
    if size in info.sizes:
        return
    supported = ", ".join(f"'{s}'" for s in info.sizes)
    if size.upper() in info.sizes:
        raise bad_request(
            f"Invalid image_size '{size}': use an uppercase K ('{size.upper()}'). "
            f"Supported values for models/{info.id}: {supported}.",
            where,
        )
    raise bad_request(
        f"Unsupported image_size '{size}' for models/{info.id}. Supported values: {supported}.",
        where,
    )
