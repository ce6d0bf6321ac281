"""What a valid generate request is answered with.

First latency and faults (``faults.py``), then the prompt as the model receives it (an optional
rewriter, ``rewrite.py``), then the answer: an image of what the model draws (``lettering.py``,
``render.py``), or text for text models and text-only requests, which reads back the text drawn
into images this emulator made. The rewriter's model habits (``literal``, ``invent``, ``noisy``,
``refuse``) change what is drawn and read. Answers are the camelCase bodies the SDK reads.
"""

from __future__ import annotations

import base64
import hashlib
import math
import threading
from dataclasses import replace
from typing import Any

from gemflow.emulator.catalog import thinks
from gemflow.emulator.faults import (
    BROKEN_ANSWERS,
    HANG_SECONDS,
    HTTP_FAULTS,
    RETRYABLE_WITH_DELAY,
    TRICKLE_SECONDS,
    Faults,
    broken_answer,
    content_fault_body,
)
from gemflow.emulator.lettering import NO_TEXT, drawn_text, misspell, refusal
from gemflow.emulator.readback import DrawnTexts
from gemflow.emulator.render import Scene, image_dimensions, nearest_ratio, render, render_thought
from gemflow.emulator.rewrite import Rewriter
from gemflow.emulator.takes import Takes
from gemflow.emulator.usage import THOUGHTS_TOKENS, usage_metadata
from gemflow.emulator.wire import (
    ApiFailure,
    GenerateRequest,
    Reply,
    bad_request,
    dump,
    error_detail,
)
from gemflow.models import ModelInfo

IMAGE_TEXT = "Here is your image."
EDIT_TEXT = "Here is the edited image."


class Dropped(Exception):
    """The connection is closed without an answer (a hang interrupted by stop())."""


class Answerer:
    """Answers validated generate requests, filling in the fault of their log record."""

    def __init__(
        self,
        *,
        faults: Faults,
        scale: float,
        stopping: threading.Event,
        rewriter: Rewriter | None = None,
        vary_takes: bool = True,
    ) -> None:
        self.faults = faults
        self.rewriter = rewriter
        self.scale = scale
        self.stopping = stopping
        self.vary_takes = vary_takes
        self._drawn = DrawnTexts()
        self.takes = Takes()
        self._asked = Takes()  # identical requests so far, for the habits that vary (rewrite.py)

    def answer(
        self,
        info: ModelInfo,
        request: GenerateRequest,
        record: dict[str, Any],
        *,
        text_only: bool,
        batch: bool = False,
        key: str = "",
    ) -> dict[str, Any] | Reply:
        """The generate answer body, or a whole reply for a broken answer. Raises ApiFailure for
        HTTP faults, Dropped when stopped. ``key`` is the request's API key, for a fault that
        echoes it (never logged).

        A ``batch`` item is answered like an interactive request (same picture, same takes), but
        only a marker in its prompt gives it a fault, and neither latency nor ``hang`` delay it:
        a batch job has timings and faults of its own (``batch_faults.py``).
        """
        if not batch and self.faults.latency and self.stopping.wait(self.faults.latency):
            raise Dropped
        fault = self._fault(request, record, markers_only=batch)
        if fault == "hang":
            if not batch and self.stopping.wait(HANG_SECONDS):
                raise Dropped
            fault = None
        if fault in HTTP_FAULTS:
            raise self._http_fault(fault)
        if fault == "trickle":
            return Reply(200, dump(self._image_answer(info, request)), trickle=TRICKLE_SECONDS)
        if fault in BROKEN_ANSWERS:
            body, content_type = broken_answer(fault, self._image_answer(info, request))
            return Reply(200, body, content_type)
        if fault:
            return self._content_fault(info, request, fault, key)
        if text_only or not request.wants_image:
            return self._text_answer(info, request)
        return self._image_answer(info, request)

    def _fault(
        self, request: GenerateRequest, record: dict[str, Any], *, markers_only: bool
    ) -> str | None:
        try:
            choice = self.faults.choose(request.prompt, markers_only=markers_only)
        except ValueError as exc:
            raise bad_request(f"Unknown emulator fault marker: {exc}", "contents") from None
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
            details=[error_detail("RetryInfo", retryDelay=self.faults.retry_delay_text())],
            headers={"Retry-After": self.faults.retry_after_header()},
        )

    def _content_fault(
        self, info: ModelInfo, request: GenerateRequest, fault: str, key: str = ""
    ) -> dict[str, Any]:
        thoughts = THOUGHTS_TOKENS if thinks(info.id) and fault != "blocked" else 0
        usage = usage_metadata(info, request, output=[], thoughts=thoughts)
        envelope = _envelope(info, self._scene(info, request), request, usage)
        return {**content_fault_body(fault, key), **envelope}

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

    def _nth(self, info: ModelInfo, request: GenerateRequest) -> int:
        """How many requests like this one (model, texts, system, images) have come, this one
        included; always 1 when takes do not vary."""
        if not self.vary_takes:
            return 1
        basis = hashlib.sha256(repr((info.id, request.texts, request.system)).encode())
        for image in request.images:
            basis.update(hashlib.sha256(image.data).digest())
        return self._asked.next(basis.digest())

    def _image_answer(self, info: ModelInfo, request: GenerateRequest) -> dict[str, Any]:
        received = self._received(request)
        habits = self.rewriter or Rewriter()
        nth = self._nth(info, request)
        refused = refusal(request.prompt, nth) if habits.refuse else None
        if refused is not None:
            return self._content_fault(info, received, refused)
        drawn = drawn_text(request.prompt, received.prompt, received.system, habits.lettering, nth)
        if drawn is None:  # asked for something that does not exist: no image, like real models
            return self._content_fault(info, received, "no_image")
        drawn = misspell(drawn, habits.noise, f"lettered {nth}")
        scene = self._take(self._scene(info, received, None if drawn == received.prompt else drawn))
        parts = self._image_parts(scene, with_thoughts=thinks(info.id))
        tokens = info.size_info(scene.image_size).output_tokens
        return self._answer(
            info, received, scene, parts, [{"modality": "IMAGE", "tokenCount": tokens}]
        )

    def _take(self, scene: Scene) -> Scene:
        """``scene`` as the next take of its request (see ``takes.py``): seeded ones stay 1."""
        if not self.vary_takes or scene.seed is not None:
            return scene
        return replace(scene, take=self.takes.next(scene.digest))

    def _text_answer(self, info: ModelInfo, request: GenerateRequest) -> dict[str, Any]:
        drawn = self._drawn.read_back(request.images)
        if drawn is not None and self.rewriter is not None and self.rewriter.noise:
            drawn = misspell(drawn, self.rewriter.noise, f"read {self._nth(info, request)}")
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
        thoughts = THOUGHTS_TOKENS if thinks(info.id) else 0
        usage = usage_metadata(info, request, output=output, thoughts=thoughts)
        return {"candidates": [candidate], **_envelope(info, scene, request, usage)}

    def _image_parts(self, scene: Scene, *, with_thoughts: bool) -> list[dict[str, Any]]:
        picture = render(scene, self.scale)
        self._drawn.remember(scene.mark, scene.text)
        parts: list[dict[str, Any]] = []
        if with_thoughts:
            parts.append(
                {"inlineData": _inline(render_thought(scene, self.scale)), "thought": True}
            )
        parts.append({"text": EDIT_TEXT if scene.images else IMAGE_TEXT})
        final: dict[str, Any] = {"inlineData": _inline(picture.png)}
        if with_thoughts:
            final["thoughtSignature"] = base64.b64encode(scene.digest[:24]).decode()
        parts.append(final)
        return parts


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


def _default_ratio(info: ModelInfo, request: GenerateRequest) -> str:
    """Like the real models: the first input image's shape, else square."""
    fallback = "1:1" if "1:1" in info.ratios else info.ratios[0]
    if not request.images:
        return fallback
    size = image_dimensions(request.images[0].data)
    if size is None or 0 in size:
        return fallback
    return nearest_ratio(size[0], size[1], info.ratios)
