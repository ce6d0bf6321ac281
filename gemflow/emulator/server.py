"""A deterministic Gemini API emulator on loopback: HTTP transport, wire format and routing.

The real google-genai SDK talks to it unchanged (``HttpOptions(base_url=emulator.url)`` or
``GOOGLE_GEMINI_BASE_URL``). Three layers:

- :class:`_Handler` speaks HTTP/1.1 (keep-alive, Content-Length, chunked request bodies);
- :class:`_Service` turns one request into one reply: routing, key check, parsing, validation
  against ``gemflow.models``, faults, an optional prompt rewriter (``rewrite.py``), what the
  model draws (``lettering.py``), and the camelCase response bodies the SDK reads;
- :class:`Emulator` owns the server thread and the request log.

Requests are read liberally: every key may be camelCase or snake_case (they are normalised to
snake_case first, which is also how ``generation_config`` appears in the log), base64 may use
either alphabet with or without padding, and ``contents``/``parts`` may be a single object.
Responses are always camelCase with standard base64, like the real service.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import hmac
import itertools
import json
import math
import re
import socket
import sys
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from gemflow.emulator.faults import (
    HANG_SECONDS,
    HTTP_FAULTS,
    RETRYABLE_WITH_DELAY,
    Faults,
    content_fault_body,
)
from gemflow.emulator.lettering import NO_TEXT, drawn_text
from gemflow.emulator.render import (
    Scene,
    embedded_text,
    image_dimensions,
    nearest_ratio,
    read_mark,
    render,
    render_thought,
)
from gemflow.emulator.rewrite import Rewriter
from gemflow.models import ModelInfo, ReaderInfo, SizeInfo, known_models, reader_models

API_VERSIONS = ("v1", "v1beta")
INPUT_TOKEN_LIMIT = 65536
OUTPUT_TOKEN_LIMIT = 32768
THOUGHTS_TOKENS = 180  # what a gemini-3 image model reports for its (emulated) thinking
IMAGE_TEXT = "Here is your image."
EDIT_TEXT = "Here is the edited image."
_MEMORY_LIMIT = 20_000

_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_ACTIONS = {
    ("POST", "generateContent"): "generateContent",
    ("POST", "streamGenerateContent"): "streamGenerateContent",
    ("POST", "countTokens"): "countTokens",
    ("GET", None): "getModel",
}
_PATH = re.compile(r"^/(?P<version>[^/]+)/models/(?P<model>[^:]+?)(?::(?P<action>[A-Za-z]+))?$")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_JSON = "application/json; charset=UTF-8"


# --------------------------------------------------------------------------- errors and replies


class ApiFailure(Exception):
    """An error answer: HTTP status plus the Google error body."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        details: Iterable[dict[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})

    def reply(self) -> Reply:
        error = {
            "code": self.code,
            "message": self.message,
            "status": _STATUS.get(self.code, "UNKNOWN"),
            "details": self.details,
        }
        return Reply(self.code, _dump({"error": error}), headers=self.headers)


def _bad_request(message: str, field_path: str | None = None) -> ApiFailure:
    details = []
    if field_path:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field_path, "description": message}],
            }
        )
    return ApiFailure(400, message, details=details)


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = _JSON
    headers: dict[str, str] = field(default_factory=dict)


def _dump(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- request parsing


@dataclass(frozen=True)
class InputImage:
    mime_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class GenerateRequest:
    """A generateContent body, reduced to what the emulator looks at."""

    texts: tuple[str, ...]
    system: str | None
    images: tuple[InputImage, ...]
    config: dict[str, Any]
    modalities: tuple[str, ...] | None
    aspect_ratio: str | None
    image_size: str | None
    temperature: float | None
    seed: int | None

    @property
    def prompt(self) -> str:
        return "\n".join(self.texts)

    @property
    def wants_image(self) -> bool:
        return self.modalities is None or "IMAGE" in self.modalities


def snake_keys(value: Any) -> Any:
    """Rename every dict key from camelCase to snake_case, recursively; values are untouched."""
    if isinstance(value, dict):
        return {_CAMEL.sub(r"_\1", str(k)).lower(): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def decode_base64(text: Any, where: str) -> bytes:
    """Standard or URL-safe alphabet, padding optional, whitespace ignored."""
    if not isinstance(text, str):
        raise _bad_request(f"Invalid value at '{where}' (TYPE_BYTES): expected a string", where)
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _bad_request(
            f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed", where
        ) from None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_generate(body: dict[str, Any]) -> GenerateRequest:
    """Read a generateContent (or countTokens) body. Raises ApiFailure(400) on malformed input."""
    body = snake_keys(body)
    if isinstance(body.get("generate_content_request"), dict):  # countTokens' other form
        body = body["generate_content_request"]
    texts: list[str] = []
    images: list[InputImage] = []
    for ci, content in enumerate(_as_list(body.get("contents"))):
        if isinstance(content, str):
            content = {"parts": [{"text": content}]}
        if not isinstance(content, dict):
            raise _bad_request("Invalid value: content must be an object", f"contents[{ci}]")
        # In multi-turn edits the model's earlier words are not prompt, but its images are inputs.
        from_model = content.get("role") == "model"
        for pi, part in enumerate(_as_list(content.get("parts"))):
            where = f"contents[{ci}].parts[{pi}]"
            text, image = _read_part(part, where)
            if text is not None and not from_model:
                texts.append(text)
            if image is not None:
                images.append(image)
    config = body.get("generation_config") or {}
    if not isinstance(config, dict):
        raise _bad_request("generation_config must be an object", "generation_config")
    return GenerateRequest(
        texts=tuple(texts),
        system=_system_text(body.get("system_instruction")),
        images=tuple(images),
        config=config,
        modalities=_modalities(config),
        aspect_ratio=_image_option(config, "aspect_ratio"),
        image_size=_image_option(config, "image_size"),
        temperature=_number(config, "temperature", float),
        seed=_number(config, "seed", int),
    )


def _read_part(part: Any, where: str) -> tuple[str | None, InputImage | None]:
    """(text, image) of one part. Thought parts (model history) and non-image data are skipped."""
    if isinstance(part, str):
        return part, None
    if not isinstance(part, dict):
        raise _bad_request("Invalid value: part must be an object", where)
    if part.get("thought"):
        return None, None
    if "file_data" in part:
        raise _bad_request(
            "file_data parts are not supported by the emulator: send the image as inline_data",
            f"{where}.file_data",
        )
    text = part.get("text")
    inline = part.get("inline_data")
    if inline is None:
        return (None if text is None else str(text)), None
    if not isinstance(inline, dict):
        raise _bad_request("inline_data must be an object", f"{where}.inline_data")
    data = decode_base64(inline.get("data"), f"{where}.inline_data.data")
    mime_type = str(inline.get("mime_type") or "image/png")
    image = InputImage(mime_type, data) if mime_type.startswith("image/") else None
    return (None if text is None else str(text)), image


def _system_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    parts = value.get("parts") if isinstance(value, dict) else value
    texts = [
        str(p["text"]) if isinstance(p, dict) else str(p)
        for p in _as_list(parts)
        if isinstance(p, str) or (isinstance(p, dict) and "text" in p)
    ]
    return "\n".join(texts) if texts else None


def _modalities(config: dict[str, Any]) -> tuple[str, ...] | None:
    value = config.get("response_modalities")
    if value is None:
        return None
    modalities = tuple(str(m).upper() for m in _as_list(value))
    unsupported = [m for m in modalities if m not in ("TEXT", "IMAGE")]
    if unsupported:
        raise _bad_request(
            f"Model does not support the requested response modalities: "
            f"{', '.join(m.lower() for m in unsupported)}",
            "generation_config.response_modalities",
        )
    return modalities


def _image_option(config: dict[str, Any], key: str) -> str | None:
    """From ``image_config`` or, as newer docs show, ``response_format.image``."""
    response_format = config.get("response_format")
    holders = (
        config.get("image_config"),
        response_format.get("image") if isinstance(response_format, dict) else None,
    )
    for holder in holders:
        if isinstance(holder, dict) and holder.get(key) is not None:
            return str(holder[key])
    return None


def _number(config: dict[str, Any], key: str, kind: type[float] | type[int]) -> Any:
    value = config.get(key)
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise _bad_request(
            f"Invalid value for {key}: {value!r}", f"generation_config.{key}"
        ) from None


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _bad_request("Invalid JSON payload received.") from None
    if not isinstance(payload, dict):
        raise _bad_request("Invalid JSON payload received: expected an object.")
    return payload


# --------------------------------------------------------------------------- models


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


def _thinks(model_id: str) -> bool:
    """Gemini 3.x image models always think and return interim thought images."""
    return model_id.startswith("gemini-3")


def validate(info: ModelInfo, request: GenerateRequest) -> None:
    """Reject what the real service rejects, with a message that says what would be accepted."""
    if not any(t.strip() for t in request.texts) and not request.images:
        raise _bad_request(
            "* GenerateContentRequest.contents: contents is not specified", "contents"
        )
    ratio, size = request.aspect_ratio, request.image_size
    if ratio is not None and ratio not in info.ratios:
        raise _bad_request(
            f"Unsupported aspect ratio '{ratio}' for models/{info.id}. "
            f"Supported values: {', '.join(info.ratios)}.",
            "generation_config.image_config.aspect_ratio",
        )
    if size is not None:
        _validate_size(info, size)
    if len(request.images) > info.max_input_images:
        raise _bad_request(
            f"Too many input images: {len(request.images)}. models/{info.id} accepts at most "
            f"{info.max_input_images} images per request.",
            "contents",
        )


def _refuse_image_modality(info: ModelInfo, request: GenerateRequest) -> None:
    """A text model asked for images answers 400, as the real text models do."""
    if request.modalities is not None and "IMAGE" in request.modalities:
        raise _bad_request(
            "The requested combination of response modalities is not supported by the model. "
            f"models/{info.id} accepts the following combination of response modalities: * TEXT",
            "generation_config.response_modalities",
        )


def _validate_size(info: ModelInfo, size: str) -> None:
    where = "generation_config.image_config.image_size"
    if info.fixed_size:
        raise _bad_request(
            f"image_size is not supported for models/{info.id}: it always produces "
            f"{info.default_size} images. Remove image_size.",
            where,
        )
    if size in info.sizes:
        return
    supported = ", ".join(f"'{s}'" for s in info.sizes)
    if size.upper() in info.sizes:
        raise _bad_request(
            f"Invalid image_size '{size}': use an uppercase K ('{size.upper()}'). "
            f"Supported values for models/{info.id}: {supported}.",
            where,
        )
    raise _bad_request(
        f"Unsupported image_size '{size}' for models/{info.id}. Supported values: {supported}.",
        where,
    )


# --------------------------------------------------------------------------- the service


class _Dropped(Exception):
    """The connection is closed without an answer (a hang interrupted by stop())."""


class _Service:
    """Turns one HTTP request into one reply, filling in its log record on the way."""

    def __init__(
        self,
        *,
        faults: Faults,
        api_key: str | None,
        scale: float,
        extra_models: Iterable[str],
        stopping: threading.Event,
        rewriter: Rewriter | None = None,
    ) -> None:
        self.faults = faults
        self.rewriter = rewriter
        self.api_key = api_key
        self.scale = scale
        self.extra_models = {m.removeprefix("models/") for m in extra_models}
        self.stopping = stopping
        self._drawn: OrderedDict[bytes, str] = OrderedDict()  # stripe mark -> drawn text
        self._drawn_lock = threading.Lock()

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
        record: dict[str, Any],
    ) -> Reply:
        """Answer one request. ``headers`` has lowercase names."""
        endpoint, version, model = _route(method, path)
        record.update(endpoint=endpoint, api_version=version, model=model)
        key = (headers.get("x-goog-api-key") or query.get("key") or "").strip()
        record["api_key_present"] = bool(key)
        try:
            self._check_key(key)
            if endpoint == "unknown" or model is None or version is None:
                raise ApiFailure(404, f"Method not found: {method} {path}")
            if endpoint == "getModel":
                return self._get_model(version, model)
            payload = _parse_json(body)
            if endpoint == "countTokens":
                return self._count_tokens(version, model, payload, record)
            return self._generate(
                version, model, payload, record, stream=endpoint == "streamGenerateContent"
            )
        except ApiFailure as failure:
            return failure.reply()

    def _check_key(self, key: str) -> None:
        if not key:
            raise ApiFailure(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
            )
        if self.api_key is not None and not hmac.compare_digest(key, self.api_key):
            raise ApiFailure(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )

    def _model(self, model_id: str, version: str, method: str) -> ModelInfo:
        info = known_models().get(model_id)
        if info is not None:
            return info
        if model_id in self.extra_models:
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

    def _get_model(self, version: str, model_id: str) -> Reply:
        self._model(model_id, version, "get")
        return Reply(
            200,
            _dump(
                {
                    "name": f"models/{model_id}",
                    "version": "001",
                    "displayName": _display_name(model_id),
                    "description": "Emulated by gemflow: deterministic images for tests.",
                    "inputTokenLimit": INPUT_TOKEN_LIMIT,
                    "outputTokenLimit": OUTPUT_TOKEN_LIMIT,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                }
            ),
        )

    def _count_tokens(
        self, version: str, model_id: str, payload: dict[str, Any], record: dict[str, Any]
    ) -> Reply:
        info = self._model(model_id, version, "countTokens")
        request = parse_generate(payload)
        _describe(record, request)
        if not any(t.strip() for t in request.texts) and not request.images:
            raise _bad_request(
                "* CountTokensRequest.contents: contents is not specified", "contents"
            )
        text_tokens, image_tokens = _prompt_tokens(info, request)
        return Reply(
            200,
            _dump(
                {
                    "totalTokens": text_tokens + image_tokens,
                    "promptTokensDetails": _modality_counts(text_tokens, image_tokens),
                }
            ),
        )

    def _generate(
        self,
        version: str,
        model_id: str,
        payload: dict[str, Any],
        record: dict[str, Any],
        *,
        stream: bool,
    ) -> Reply:
        method = "streamGenerateContent" if stream else "generateContent"
        info = self._model(model_id, version, method)
        request = parse_generate(payload)
        _describe(record, request)
        validate(info, request)
        text_only = info.id in reader_models()
        if text_only:
            _refuse_image_modality(info, request)
        if self.faults.latency and self.stopping.wait(self.faults.latency):
            raise _Dropped
        fault = self._fault(request, record)
        if fault == "hang":
            if self.stopping.wait(HANG_SECONDS):
                raise _Dropped
            fault = None
        if fault in HTTP_FAULTS:
            raise self._http_fault(fault)
        if fault:
            answer = self._content_fault(info, request, fault)
        elif text_only or not request.wants_image:
            answer = self._text_answer(info, request)
        else:
            answer = self._image_answer(info, request)
        if stream:
            return Reply(200, b"data: " + _dump(answer) + b"\r\n\r\n", "text/event-stream")
        return Reply(200, _dump(answer))

    def _fault(self, request: GenerateRequest, record: dict[str, Any]) -> str | None:
        try:
            choice = self.faults.choose(request.prompt)
        except ValueError as exc:
            raise _bad_request(f"Unknown emulator fault marker: {exc}", "contents") from None
        if choice is None:
            return None
        record["fault"], record["fault_source"] = choice
        return choice[0]

    def _http_fault(self, fault: str) -> ApiFailure:
        code, _status, message = HTTP_FAULTS[fault]
        if fault not in RETRYABLE_WITH_DELAY:
            return ApiFailure(code, message)
        return ApiFailure(
            code,
            message,
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": self.faults.retry_delay_text(),
                }
            ],
            headers={"Retry-After": self.faults.retry_after_header()},
        )

    def _content_fault(
        self, info: ModelInfo, request: GenerateRequest, fault: str
    ) -> dict[str, Any]:
        thoughts = THOUGHTS_TOKENS if _thinks(info.id) and fault != "blocked" else 0
        usage = _usage(info, request, output=[], thoughts=thoughts)
        envelope = _envelope(info, self._scene(info, request), request, usage)
        return {**content_fault_body(fault), **envelope}

    def _scene(self, info: ModelInfo, request: GenerateRequest, drawn: str | None = None) -> Scene:
        return Scene(
            model=info.id,
            texts=request.texts,
            system=request.system,
            images=tuple(image.data for image in request.images),
            aspect_ratio=request.aspect_ratio or _default_ratio(info, request),
            image_size=request.image_size or info.default_size,
            temperature=request.temperature,
            seed=request.seed,
            drawn=drawn,
        )

    def _received(self, request: GenerateRequest) -> GenerateRequest:
        """The image request as the model receives it: rewritten when the service rewrites."""
        if self.rewriter is None:
            return request
        return replace(
            request,
            texts=self.rewriter.texts(request.texts),
            system=self.rewriter.context(request.system),
        )

    def _image_answer(self, info: ModelInfo, request: GenerateRequest) -> dict[str, Any]:
        received = self._received(request)
        drawn = drawn_text(request.prompt, received.prompt, received.system)
        if drawn is None:  # asked for something that does not exist: no image, like real models
            return self._content_fault(info, received, "no_image")
        scene = self._scene(info, received, None if drawn == received.prompt else drawn)
        parts = self._image_parts(scene, thinks=_thinks(info.id))
        tokens = info.size_info(scene.image_size).output_tokens
        return self._answer(
            info, received, scene, parts, [{"modality": "IMAGE", "tokenCount": tokens}]
        )

    def _text_answer(self, info: ModelInfo, request: GenerateRequest) -> dict[str, Any]:
        drawn = self._read_back(request)
        text = _default_text(request) if drawn is None else drawn.strip() or NO_TEXT
        output = [{"modality": "TEXT", "tokenCount": math.ceil(len(text) / 4)}]
        scene = self._scene(info, request)
        return self._answer(info, request, scene, [{"text": text}], output)

    def _answer(
        self,
        info: ModelInfo,
        request: GenerateRequest,
        scene: Scene,
        parts: list[dict[str, Any]],
        output: list[dict[str, Any]],
    ) -> dict[str, Any]:
        candidate = {
            "content": {"role": "model", "parts": parts},
            "finishReason": "STOP",
            "index": 0,
        }
        thoughts = THOUGHTS_TOKENS if _thinks(info.id) else 0
        usage = _usage(info, request, output=output, thoughts=thoughts)
        return {"candidates": [candidate], **_envelope(info, scene, request, usage)}

    def _image_parts(self, scene: Scene, *, thinks: bool) -> list[dict[str, Any]]:
        picture = render(scene, self.scale)
        self._remember(scene.mark, scene.text)
        parts: list[dict[str, Any]] = []
        if thinks:
            parts.append(
                {"inlineData": _inline(render_thought(scene, self.scale)), "thought": True}
            )
        parts.append({"text": EDIT_TEXT if scene.images else IMAGE_TEXT})
        final: dict[str, Any] = {"inlineData": _inline(picture.png)}
        if thinks:
            final["thoughtSignature"] = base64.b64encode(scene.digest[:24]).decode()
        parts.append(final)
        return parts

    def _remember(self, mark: bytes, text: str) -> None:
        with self._drawn_lock:
            self._drawn[mark] = text
            self._drawn.move_to_end(mark)
            while len(self._drawn) > _MEMORY_LIMIT:
                self._drawn.popitem(last=False)

    def _read_back(self, request: GenerateRequest) -> str | None:
        """The text drawn into the request's images, if this emulator drew them.

        First the PNG text chunk (survives restarts), then the colour stripe looked up among the
        images this emulator made (survives lossless re-encoding, e.g. the SDK's PIL handling).
        """
        found = []
        for image in request.images:
            text = embedded_text(image.data)
            if text is None:
                mark = read_mark(image.data)
                with self._drawn_lock:
                    text = self._drawn.get(mark) if mark is not None else None
            if text is not None:
                found.append(text)
        return "\n".join(found) if found else None


def _route(method: str, path: str) -> tuple[str, str | None, str | None]:
    """(endpoint, api version, model id) for a request path."""
    match = _PATH.match(path)
    if not match or match["version"] not in API_VERSIONS:
        return "unknown", None, None
    model = unquote(match["model"]).removeprefix("models/")
    endpoint = _ACTIONS.get((method, match["action"]), "unknown")
    return endpoint, match["version"], model


def _describe(record: dict[str, Any], request: GenerateRequest) -> None:
    """Fill the log record from a parsed request: never image bytes."""
    record.update(
        prompt=request.prompt,
        system=request.system,
        images=[
            {"mime_type": image.mime_type, "sha256": image.sha256, "bytes": len(image.data)}
            for image in request.images
        ],
        image_count=len(request.images),
        generation_config=request.config,
    )


def _default_ratio(info: ModelInfo, request: GenerateRequest) -> str:
    """Like the real models: the first input image's shape, else square."""
    fallback = "1:1" if "1:1" in info.ratios else info.ratios[0]
    if not request.images:
        return fallback
    size = image_dimensions(request.images[0].data)
    if size is None or 0 in size:
        return fallback
    return nearest_ratio(size[0], size[1], info.ratios)


def _prompt_tokens(info: ModelInfo, request: GenerateRequest) -> tuple[int, int]:
    """(text tokens, image tokens): about 4 characters a token, system instruction included."""
    chars = sum(len(t) for t in request.texts) + len(request.system or "")
    return math.ceil(chars / 4), len(request.images) * info.input_image_tokens


def _modality_counts(text_tokens: int, image_tokens: int) -> list[dict[str, Any]]:
    counts = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if image_tokens:
        counts.append({"modality": "IMAGE", "tokenCount": image_tokens})
    return counts


def _usage(
    info: ModelInfo, request: GenerateRequest, *, output: list[dict[str, Any]], thoughts: int
) -> dict[str, Any]:
    """usageMetadata: prompt tokens from the request, ``output`` per modality, thinking."""
    text_tokens, image_tokens = _prompt_tokens(info, request)
    prompt = text_tokens + image_tokens
    candidates = sum(detail["tokenCount"] for detail in output)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "thoughtsTokenCount": thoughts,
        "promptTokensDetails": _modality_counts(text_tokens, image_tokens),
    }
    if output:
        usage["candidatesTokensDetails"] = output
    return usage


def _envelope(
    info: ModelInfo, scene: Scene, request: GenerateRequest, usage: dict[str, Any]
) -> dict[str, Any]:
    """What every 200 generate answer carries besides candidates or promptFeedback."""
    basis = scene.digest + repr(request.modalities).encode()
    response_id = base64.urlsafe_b64encode(hashlib.sha256(basis).digest()[:16]).decode()
    return {"usageMetadata": usage, "modelVersion": info.id, "responseId": response_id.rstrip("=")}


def _inline(png: bytes) -> dict[str, str]:
    return {"mimeType": "image/png", "data": base64.b64encode(png).decode()}


def _default_text(request: GenerateRequest) -> str:
    words = len(request.prompt.split())
    return f"(emulated answer) I read a {words}-word prompt and {len(request.images)} image(s)."


# --------------------------------------------------------------------------- HTTP transport


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections, so no handler serves after stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # the client went away: not our problem
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gemflow-emulator"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's access log on stderr; the emulator keeps its own log."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        emulator = self.server.emulator
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        record = emulator._begin(self.command, _path_for_log(url.path, query))
        reply: Reply | None
        try:
            body = self._read_body()
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = emulator._service.handle(self.command, url.path, query, headers, body, record)
        except _Dropped:
            reply = None
        except ApiFailure as failure:
            reply = failure.reply()
        except Exception:
            traceback.print_exc()
            reply = ApiFailure(500, "Internal error in the gemflow emulator.").reply()
        # Record before sending: a client that has its answer must find the request logged.
        emulator._finish(record, reply.status if reply else None)
        if reply is None:
            self.close_connection = True
        else:
            self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.close_connection = True  # we can't tell where this body ends
                raise _bad_request("Invalid Content-Length header.") from None
            body = self.rfile.read(length) if length > 0 else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                raise _bad_request("Request body is not valid gzip.") from None
        return body

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True


def _path_for_log(path: str, query: dict[str, str]) -> str:
    """The request path with its query, minus any ``key`` parameter."""
    rest = {k: v for k, v in query.items() if k != "key"}
    return f"{path}?{urlencode(rest)}" if rest else path


# --------------------------------------------------------------------------- the emulator


class Emulator:
    """A Gemini API emulator serving on loopback in a daemon thread.

    Use as a context manager (``with Emulator() as emu: ...``) or call :meth:`start` and
    :meth:`stop`. Every request is recorded (see :attr:`requests`); with ``log_path`` the records
    are also appended to that file as JSON lines. Neither ever holds image bytes or the API key.

    ``rewrite`` makes it behave like a service that rewrites prompts before its image model sees
    them: a :class:`~gemflow.emulator.rewrite.Rewriter`, or its modes as text
    (``"system,prefix,paraphrase"``, any subset). Without it prompts reach the model as sent.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
        faults: Faults | None = None,
        api_key: str | None = None,
        scale: float = 1.0,
        extra_models: Iterable[str] = (),
        rewrite: Rewriter | str | None = None,
    ) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.host = host
        self.port = port
        self.log_path = Path(log_path) if log_path is not None else None
        self._stopping = threading.Event()
        self._service = _Service(
            faults=faults if faults is not None else Faults(),
            api_key=api_key,
            scale=scale,
            extra_models=extra_models,
            stopping=self._stopping,
            rewriter=Rewriter.parse(rewrite) if isinstance(rewrite, str) else rewrite,
        )
        self._records: list[dict[str, Any]] = []
        self._records_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._log_file: IO[str] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    @property
    def faults(self) -> Faults:
        """The live fault settings: ``emu.faults.push("429")`` affects the next request."""
        return self._service.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._service.faults = faults

    @property
    def url(self) -> str:
        """``http://HOST:PORT``; only known once started (``port=0`` picks a free port)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the request records so far, in the order the requests finished."""
        with self._records_lock:
            return [dict(record) for record in self._records]

    def api_calls(self, endpoint: str = "generateContent") -> list[dict[str, Any]]:
        return [record for record in self.requests if record["endpoint"] == endpoint]

    def start(self) -> Emulator:
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("the emulator is already running")
            self._stopping.clear()
            server = _Server((self.host, self.port), self)
            if self.log_path is not None:
                self._log_file = self.log_path.open("a", encoding="utf-8")
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"gemflow-emulator-{server.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving. Requests sleeping in latency or ``hang`` are dropped, not waited for."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            self._stopping.set()
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join()
            self._server = self._thread = None
            with self._records_lock:
                if self._log_file is not None:
                    self._log_file.close()
                    self._log_file = None

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called from another thread or Ctrl-C; then stop."""
        if self._server is None:
            self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        finally:
            self.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _begin(self, method: str, path: str) -> dict[str, Any]:
        return {
            "seq": next(self._seq),
            "method": method,
            "path": path,
            "endpoint": "unknown",
            "api_version": None,
            "model": None,
            "prompt": None,
            "system": None,
            "images": [],
            "image_count": 0,
            "generation_config": None,
            "api_key_present": False,
            "status": None,
            "fault": None,
            "fault_source": None,
            "started": time.time(),
            "finished": None,
        }

    def _finish(self, record: dict[str, Any], status: int | None) -> None:
        record.update(status=status, finished=time.time())
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._records_lock:
            self._records.append(record)
            if self._log_file is not None:
                self._log_file.write(line)
                self._log_file.flush()
