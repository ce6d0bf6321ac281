"""The provider interface: the one small seam between gemflow and an image API.

The real provider wraps google-genai (``gemflow.providers.gemini``); tests run that same provider
against gemflow's emulator over loopback, so there is no second, fake implementation to drift.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

# Seconds to wait for one answer when a step sets no ``timeout``. The SDK waits forever by default;
# an image (a 4K Pro image with thinking, on a busy day) can take a couple of minutes, so 180 s
# allows for slow answers while a dead connection still fails, and is retried, within minutes.
DEFAULT_TIMEOUT = 180.0

GOOGLE = "google"  # Google's own API, as runs name it (its keys record no service)


def service_name(service: str | None) -> str:
    """A connection's service as people read it: Google's API has none in the keys."""
    return service or GOOGLE


# The states that end a Batch API job; it is pending in any other.
JOB_ENDED = frozenset(
    {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)


@dataclass(frozen=True)
class ApiRequest:
    """One generateContent call, exactly as it will be sent (an image request unless modalities
    say otherwise)."""

    model: str
    prompt: str
    images: tuple[tuple[bytes, str], ...] = ()  # (bytes, mime type), in order
    system: str | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None
    temperature: float | None = None
    seed: int | None = None
    modalities: tuple[str, ...] = ("TEXT", "IMAGE")

    def describe(self) -> dict[str, Any]:
        """The request as recorded in the cache: every field, images by digest (never the key)."""
        return {
            "model": self.model,
            "prompt": self.prompt,
            "system": self.system,
            "aspect_ratio": self.aspect_ratio,
            "image_size": self.image_size,
            "temperature": self.temperature,
            "seed": self.seed,
            "response_modalities": list(self.modalities),
            "images": [
                {"mime_type": mime, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                for data, mime in self.images
            ],
        }


@dataclass
class ApiResponse:
    """What came back. ``image`` is None when the service answered without one (or was asked for text)."""

    image: bytes | None
    mime_type: str | None
    texts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    block_reason: str | None = None
    model_version: str | None = None
    response_id: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SendSettings:
    """How to send a step's requests, never what: none of this can change a picture, so none of it
    is in a key. ``None``: the default (see ``gemflow.providers.resilient``, ``DEFAULT_TIMEOUT``)."""

    retries: int | None = None  # retries after a 429, 5xx, timeout or lost connection
    rpm: float | None = None  # requests per minute to one model, across the run
    timeout: float | None = None  # seconds to wait for one answer

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> SendSettings:
        """The settings a step's resolved parameters ask for."""
        return cls(params.get("retries"), params.get("rpm"), params.get("timeout"))


class Provider(Protocol):
    """Sends requests to one API. ``generate`` raises ``ApiError`` when the API refuses or cannot be
    reached (its ``retryable`` and ``retry_delay`` say whether and when to try again); an answer
    without an image is returned, not raised. ``gemflow.providers.resilient`` adds retries and
    rate limits.

    ``service`` is who answers, as the cache key records it: None for Google's own endpoint, else
    a name ("emulator") or the endpoint's URL. A provider owns it, so that answers from one service
    can never be stored as another's.
    """

    @property
    def service(self) -> str | None: ...

    def generate(self, request: ApiRequest, *, timeout: float | None = None) -> ApiResponse: ...

    def close(self) -> None: ...
