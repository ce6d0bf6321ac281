"""The wire format: requests as the emulator reads them, replies and errors as it writes them.

Requests are read liberally: every key may be camelCase or snake_case (they are normalised to
snake_case first, which is also how ``generation_config`` appears in the log), base64 may use
either alphabet with or without padding, and ``contents``/``parts`` may be a single object.
Responses are always camelCase with standard base64, like the real service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# google.rpc.Code of each HTTP status, for errors that travel inside a body (batch items, operations)
_RPC_CODE = {400: 3, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 503: 14, 504: 4}
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
        return Reply(self.code, dump({"error": error}), headers=self.headers)

    def status(self) -> dict[str, Any]:
        """This error as a ``google.rpc.Status``, the way it travels inside a body (batch items).

        The gRPC code, not the HTTP one, and no ``status`` name; ``details`` only if there are any.
        """
        status: dict[str, Any] = {"code": _RPC_CODE.get(self.code, 2), "message": self.message}
        if self.details:
            status["details"] = self.details
        return status


def error_detail(kind: str, **fields: Any) -> dict[str, Any]:
    """One entry of an error's ``details``: a ``google.rpc`` message such as ``RetryInfo``."""
    return {"@type": f"type.googleapis.com/google.rpc.{kind}", **fields}


def bad_request(message: str, field_path: str | None = None) -> ApiFailure:
    details = []
    if field_path:
        details.append(
            error_detail(
                "BadRequest", fieldViolations=[{"field": field_path, "description": message}]
            )
        )
    return ApiFailure(400, message, details=details)


@dataclass
class Reply:
    """One HTTP answer. With ``file``, the body is that file's bytes, streamed (downloads)."""

    status: int
    body: bytes
    content_type: str = _JSON
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None
    trickle: float = 0.0  # seconds between two bytes of the body (a fault); 0: all at once


def dump(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def timestamp(seconds: float) -> str:
    """A protobuf Timestamp as JSON: RFC 3339 in UTC with a Z, microseconds."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def first(mapping: Mapping[str, Any], *names: str) -> Any:
    """The value of the first of ``names`` present (a camelCase name and its snake_case twin)."""
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


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
    def has_contents(self) -> bool:
        """Some text that is not blank, or an image."""
        return any(t.strip() for t in self.texts) or bool(self.images)

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
        raise bad_request(f"Invalid value at '{where}' (TYPE_BYTES): expected a string", where)
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(
            f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed", where
        ) from None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("Invalid JSON payload received.") from None
    if not isinstance(payload, dict):
        raise bad_request("Invalid JSON payload received: expected an object.")
    return payload


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
            raise bad_request("Invalid value: content must be an object", f"contents[{ci}]")
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
        raise bad_request("generation_config must be an object", "generation_config")
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
        raise bad_request("Invalid value: part must be an object", where)
    if part.get("thought"):
        return None, None
    if "file_data" in part:
        raise bad_request(
            "file_data parts are not supported by the emulator: send the image as inline_data",
            f"{where}.file_data",
        )
    text = part.get("text")
    inline = part.get("inline_data")
    if inline is None:
        return (None if text is None else str(text)), None
    if not isinstance(inline, dict):
        raise bad_request("inline_data must be an object", f"{where}.inline_data")
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
        raise bad_request(
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
        raise bad_request(
            f"Invalid value for {key}: {value!r}", f"generation_config.{key}"
        ) from None
