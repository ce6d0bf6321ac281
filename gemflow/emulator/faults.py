"""Fault injection for the emulator: which request fails, and how each fault looks on the wire.

A generate request gets at most one fault, chosen in this order:

1. a marker ``[[emulator:NAME]]`` in the prompt (deterministic triggers for workflow tests);
2. the FIFO queue filled by :meth:`Faults.push`;
3. the random ``rates``, drawn from ``random.Random(seed)``: one draw per request that reaches
   this step, so a given sequence of requests always meets the same sequence of faults.

Fault names::

    429           HTTP 429 RESOURCE_EXHAUSTED, RetryInfo detail and Retry-After header
    500           HTTP 500 INTERNAL
    503           HTTP 503 UNAVAILABLE, RetryInfo detail and Retry-After header
    escapes       HTTP 400 whose message holds terminal escape sequences and a line break
    image_safety  200, finishReason IMAGE_SAFETY, a text part and no image
    prohibited    200, finishReason PROHIBITED_CONTENT and no content
    no_image      200, finishReason NO_IMAGE and no content
    text_only     200, finishReason STOP with only a text refusal
    blocked       200, no candidates, promptFeedback.blockReason SAFETY
    echo_key      200, finishReason STOP, a text part quoting the API key the request carried
    hang          no answer for 30 s (or until the emulator stops), then a normal answer
    trickle       a normal answer whose body is sent one byte every 0.05 s (minutes for an image)

Broken answers, each a 200 to an image request (what a faulty proxy or server might send)::

    html          an HTML error page
    truncated     the JSON body cut in half (its Content-Length says so: a whole HTTP message)
    bad_base64    the image's data is not base64
    bad_usage     a string where usageMetadata has a token count
    not_an_image  the image's bytes, labelled image/png, are not an image
"""

from __future__ import annotations

import base64
import copy
import json
import math
import random
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

HTTP_FAULTS: dict[str, tuple[int, str, str]] = {
    "429": (
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. "
        "(emulated fault)",
    ),
    "500": (
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting (emulated fault)",
    ),
    "503": (
        503,
        "UNAVAILABLE",
        "The model is overloaded. Please try again later. (emulated fault)",
    ),
    "escapes": (  # a hostile server: terminal escape sequences, a line break, a bidi override
        400,
        "INVALID_ARGUMENT",
        "Bad request \x1b[2J\x1b]0;pwned\x07\x1b[31mred\x1b[0m\r\nfake line\u202e (emulated fault)",
    ),
}
RETRYABLE_WITH_DELAY = frozenset({"429", "503"})
CONTENT_FAULTS = (
    "image_safety",
    "prohibited",
    "no_image",
    "text_only",
    "blocked",
    "echo_key",
)
BROKEN_ANSWERS = ("html", "truncated", "bad_base64", "bad_usage", "not_an_image")
FAULT_NAMES: tuple[str, ...] = (*HTTP_FAULTS, *CONTENT_FAULTS, *BROKEN_ANSWERS, "hang", "trickle")
HANG_SECONDS = 30.0
TRICKLE_SECONDS = 0.05  # between two bytes of a trickled body: no read waits long, the whole does

MARKER = re.compile(r"\[\[emulator:([A-Za-z0-9_]+)\]\]")

_REFUSAL = (
    "I can't create that image because it may violate the safety policies. "
    "Try rephrasing your request. (emulated fault)"
)


@dataclass
class Faults:
    """What goes wrong, and how slowly: latency, random fault rates and a queue of forced faults."""

    latency: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    retry_delay: float = 1.0
    seed: int = 0
    _queue: deque[str] = field(default_factory=deque, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_rates(self.rates)
        if self.latency < 0 or self.retry_delay < 0:
            raise ValueError("latency and retry_delay must not be negative")
        self._rng = random.Random(self.seed)

    def push(self, fault: str, count: int = 1) -> None:
        """Make the next ``count`` generate requests fail with ``fault`` (after any queued ones)."""
        _check_name(fault)
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            self._queue.extend([fault] * count)

    @classmethod
    def parse(cls, spec: str) -> dict[str, float]:
        """Parse ``"429=0.1,503=0.05"`` into rates. Raises ValueError on anything else."""
        rates: dict[str, float] = {}
        for item in filter(None, (s.strip() for s in spec.split(","))):
            name, sep, value = (s.strip() for s in item.partition("="))
            if not sep:
                raise ValueError(f"expected NAME=PROBABILITY, got {item!r}")
            _check_name(name)
            if name in rates:
                raise ValueError(f"fault {name!r} given twice")
            try:
                rates[name] = float(value)
            except ValueError:
                raise ValueError(f"not a probability for {name!r}: {value!r}") from None
        _check_rates(rates)
        return rates

    def choose(self, prompt: str, *, markers_only: bool = False) -> tuple[str, str] | None:
        """The fault for one generate request as ``(name, source)``, or None.

        ``source`` is "marker", "queue" or "rate". An unknown marker name raises ValueError.
        ``markers_only`` (batch items, which have faults of their own) leaves the queue and the
        random draws to interactive requests.
        """
        marker = MARKER.search(prompt)
        if marker:
            _check_name(marker.group(1))
            return marker.group(1), "marker"
        if markers_only:
            return None
        with self._lock:
            if self._queue:
                return self._queue.popleft(), "queue"
            if not self.rates:
                return None
            draw = self._rng.random()
        threshold = 0.0
        for name, rate in self.rates.items():
            threshold += rate
            if draw < threshold:
                return name, "rate"
        return None

    def retry_delay_text(self) -> str:
        """``retryDelay`` as a protobuf Duration string: "7s", "0.5s"."""
        return f"{self.retry_delay:g}s"

    def retry_after_header(self) -> str:
        """Retry-After takes whole seconds; round up so clients never retry early."""
        return str(math.ceil(self.retry_delay))


def _check_name(name: str) -> None:
    if name not in FAULT_NAMES:
        raise ValueError(f"unknown fault {name!r}; known faults: {', '.join(FAULT_NAMES)}")


def _check_rates(rates: dict[str, float]) -> None:
    for name, rate in rates.items():
        _check_name(name)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate for {name!r} must be between 0 and 1, got {rate}")
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"fault rates add up to more than 1: {sum(rates.values()):g}")


def content_fault_body(fault: str, key: str = "") -> dict[str, Any]:
    """The 200 body (without usage and ids) for a fault that answers without an image; ``key`` is
    the API key the request carried (what ``echo_key`` quotes)."""
    if fault == "blocked":
        return {"promptFeedback": {"blockReason": "SAFETY"}}
    candidate: dict[str, Any] = {"index": 0}
    if fault == "image_safety":
        candidate["content"] = {"role": "model", "parts": [{"text": _REFUSAL}]}
        candidate["finishReason"] = "IMAGE_SAFETY"
    elif fault == "prohibited":
        candidate["finishReason"] = "PROHIBITED_CONTENT"
    elif fault == "no_image":
        candidate["finishReason"] = "NO_IMAGE"
    elif fault == "text_only":
        candidate["content"] = {"role": "model", "parts": [{"text": _REFUSAL}]}
        candidate["finishReason"] = "STOP"
    elif fault == "echo_key":
        text = f"Your request with API key {key} cannot be drawn. (emulated fault)"
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
        candidate["finishReason"] = "STOP"
    else:
        raise ValueError(f"{fault!r} is not a content fault")
    return {"candidates": [candidate]}


def broken_answer(fault: str, body: dict[str, Any]) -> tuple[bytes, str]:
    """(bytes, content type) of the 200 answer that ``fault`` makes of ``body``, an image answer."""
    if fault == "html":
        page = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>(emulated fault)</body></html>"
        return page.encode(), "text/html; charset=UTF-8"
    body = copy.deepcopy(body)
    image = next(
        part["inlineData"]
        for part in body["candidates"][0]["content"]["parts"]
        if "inlineData" in part and not part.get("thought")
    )
    if fault == "bad_base64":
        image["data"] = "!!! not base64 (emulated fault) !!!"
    elif fault == "bad_usage":
        body["usageMetadata"]["promptTokenCount"] = "many (emulated fault)"
    elif fault == "not_an_image":
        image["data"] = base64.b64encode(b"<html>not an image (emulated fault)</html>").decode()
    elif fault != "truncated":
        raise ValueError(f"{fault!r} is not a broken answer")
    data = json.dumps(body, separators=(",", ":")).encode()
    return (data[: len(data) // 2] if fault == "truncated" else data), "application/json"
