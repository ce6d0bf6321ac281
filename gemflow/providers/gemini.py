"""The Gemini provider: google-genai's real client, and the one place its errors are translated.

google-genai is imported here only, and this module is imported only when an API call is about to
happen, so ``gemflow --help`` and fully cached runs never pay for importing the SDK.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import importlib
import json
import math
import os
import re
import typing
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gemflow.errors import ApiError, ConfigError
from gemflow.outside import one_line
from gemflow.providers.base import DEFAULT_TIMEOUT, ApiRequest, ApiResponse
from gemflow.providers.deadline import DeadlinePassed, Deadlines
from gemflow.providers.registry import service_of

KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # the SDK's own order
UNREADABLE = "unreadable answer from the API: "
MAX_SHOWN = 500  # characters of a server's text in an error message
READ_GRACE = 1.0  # seconds a read may wait beyond the deadline of its call (see _read_timeout)
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def api_key_from_env() -> str:
    """The API key as the SDK would find it; a missing key is one line saying what to set."""
    for name in KEY_VARIABLES:
        if value := os.environ.get(name, "").strip():
            return checked_key(value, name)
    raise ConfigError(
        "no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), "
        "or pass --emulator to run on the built-in emulator"
    )


def checked_key(key: str, source: str) -> str:
    """``key``, if an HTTP header can carry it: else a ``ConfigError`` naming ``source`` (where the
    key came from) and what is wrong, never the key.

    Checked before any request: the SDK would send a line break as a header (refused by the
    transport with the key in its message, escaped beyond redaction) or fail on non-ASCII, and
    either would be retried like a network error.
    """
    for index, char in enumerate(key, start=1):
        if " " <= char <= "~":
            continue
        if char in "\r\n":
            what = "a line break"
        elif char.isascii():
            what = "a control character"
        else:
            what = "a non-ASCII character"
        raise ConfigError(
            f"{source} holds {what} at character {index}, which an HTTP header cannot carry: "
            "set the key again"
        )
    return key


def _transport_errors(name: str = "TransportError") -> tuple[type[BaseException], ...]:
    """The HTTP transports' own errors (timeouts, refused connections), for whichever is installed."""
    found = []
    for module in ("httpx2", "httpx"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


class GeminiProvider:
    """One google-genai client for a whole run; thread-safe for concurrent steps.

    ``timeout`` is the seconds to wait for a whole answer when a call sets none (``None``: forever,
    the SDK's default): a deadline, not a per-read timeout (see ``gemflow.providers.deadline``).
    The SDK's own retries stay off: ``gemflow.providers.resilient`` retries, honouring the
    server's delay, which the SDK's retries ignore. ``service`` is who answers, for the cache key:
    by default the base URL (None, Google, when there is none).
    """

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        service: str | None = None,
    ):
        self._secrets = _secrets(api_key, base_url)
        self._timeout = timeout
        self.service = service if service is not None else service_of(base_url)
        self._deadlines = Deadlines()
        options = types.HttpOptions(
            base_url=base_url,
            timeout=_read_timeout(timeout),
            client_args={"event_hooks": {"response": [self._deadlines.hook]}},
        )
        # Keep the reference: a client that is garbage-collected closes its HTTP pool under us.
        self._client = genai.Client(api_key=api_key, http_options=options)
        self._transport_errors = _transport_errors()
        self._timeout_errors = _transport_errors("TimeoutException")

    def close(self) -> None:
        self._client.close()

    def generate(self, request: ApiRequest, *, timeout: float | None = None) -> ApiResponse:
        contents: list[Any] = [request.prompt]
        contents += [
            types.Part.from_bytes(data=data, mime_type=mime) for data, mime in request.images
        ]
        image_config = None
        if request.aspect_ratio or request.image_size:
            image_config = types.ImageConfig(
                aspect_ratio=request.aspect_ratio, image_size=request.image_size
            )
        # Per call, so each step can set its own; the client's timeout applies otherwise.
        per_call = types.HttpOptions(timeout=_read_timeout(timeout))
        config = types.GenerateContentConfig(
            response_modalities=list(request.modalities),
            image_config=image_config,
            system_instruction=request.system,
            temperature=request.temperature,
            seed=request.seed,
            http_options=per_call if timeout else None,
        )
        limit = timeout or self._timeout

        def send() -> types.GenerateContentResponse:
            return self._client.models.generate_content(
                model=request.model, contents=contents, config=config
            )

        with self.translated_errors(limit):
            response = self._deadlines.call(send, limit) if limit else send()
            return self.redacted(parse_response(response))

    @property
    def client(self) -> genai.Client:
        """The google-genai client, for the Batch API (``gemflow.providers.gemini_batch``)."""
        return self._client

    @contextlib.contextmanager
    def translated_errors(self, timeout: float | None = None) -> Iterator[None]:
        """The one boundary where the SDK's, the transport's and parsing errors become
        ``ApiError``.

        An answer that cannot be read is "unreadable answer from the API: ...": retried when it is
        not JSON at all (cut short, or an error page from something on the way), not when it is
        JSON that does not fit the API's schema (the same server would send it again). Whatever
        else the SDK refuses with a ``ValueError`` (a request it cannot build) is not retried.
        """
        try:
            yield
        except DeadlinePassed:
            raise ApiError(f"no answer within {timeout:g} s") from None
        except genai_errors.APIError as exc:
            raise self._api_error(exc) from None
        except self._transport_errors as exc:
            kind = type(exc).__name__
            waited = timeout or self._timeout
            if isinstance(exc, self._timeout_errors) and waited:
                raise ApiError(f"no answer within {waited:g} s ({kind})") from None
            raise ApiError(self.shown(f"could not reach the API ({kind}: {exc})")) from None
        except json.JSONDecodeError as exc:
            start = one_line(self.redact(exc.doc))[:60] if isinstance(exc.doc, str) else ""
            what = f"not JSON ({exc})" + (f", starting {start!r}" if start else "")
            raise ApiError(self.shown(UNREADABLE + what), retryable=True) from None
        except pydantic.ValidationError as exc:
            raise ApiError(self.shown(UNREADABLE + _schema_problem(exc)), retryable=False) from None
        except ValueError as exc:
            what = f"the SDK could not make the request or read its answer ({type(exc).__name__}"
            raise ApiError(self.shown(f"{what}: {exc})"), retryable=False) from None

    def _api_error(self, exc: genai_errors.APIError) -> ApiError:
        message = exc.message or str(exc.details) or "unknown error"
        return ApiError(
            self.shown(message),
            code=exc.code,
            status=self.shown(exc.status) if exc.status else None,
            retry_delay=server_retry_delay(exc),
        )

    def shown(self, text: str) -> str:
        """A server's text as an error message shows it: one line, no escape sequences, no key,
        and not a whole page (a proxy's HTML error page is the message of its 502)."""
        line = one_line(self.redact(text))
        return line if len(line) <= MAX_SHOWN else line[: MAX_SHOWN - 1] + "…"

    def redacted(self, response: ApiResponse) -> ApiResponse:
        """``response`` with the secrets taken out of every text the server sent back."""
        text = self.redact
        return dataclasses.replace(
            response,
            texts=[text(t) for t in response.texts],
            finish_reason=text(response.finish_reason),
            block_reason=text(response.block_reason),
            model_version=text(response.model_version),
            response_id=text(response.response_id),
        )

    @typing.overload
    def redact(self, text: str) -> str: ...
    @typing.overload
    def redact(self, text: None) -> None: ...

    def redact(self, text: str | None) -> str | None:
        """A server can echo what it was sent, in errors and answers alike: the key (and any
        credentials in the base URL) never leaves this object."""
        if text is None:
            return None
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text


def _schema_problem(exc: pydantic.ValidationError) -> str:
    """The first thing in an answer that does not fit the schema: where, and what is wrong."""
    problems = exc.errors(include_url=False, include_input=False)
    if not problems:
        return "it does not fit the API's schema"
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"]) or "the answer"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _secrets(api_key: str, base_url: str | None) -> tuple[str, ...]:
    """Every form in which a secret may come back, longest first: the key as it is and as a repr
    escapes it, and the credentials and query values written into the base URL. Anything under
    4 characters is left out: replacing it everywhere would garble texts and hide nothing."""
    found = {api_key, repr(api_key)[1:-1], repr(api_key.encode("utf-8", "replace"))[2:-1]}
    if base_url:
        url = urlsplit(base_url)
        userinfo = url.netloc.rpartition("@")[0]
        found |= {userinfo, url.password or "", *(value for _, value in parse_qsl(url.query))}
    return tuple(sorted((s for s in found if len(s) >= 4), key=len, reverse=True))


def _read_timeout(deadline: float | None) -> int | None:
    """The SDK's timeout (whole milliseconds), which bounds each network operation, for a call
    whose whole answer has ``deadline`` seconds: a little longer, so that the deadline, not a
    read, ends a call that goes quiet, and an abandoned call's worker still ends on its own."""
    return round((deadline + READ_GRACE) * 1000) if deadline else None


def server_retry_delay(exc: genai_errors.APIError, now: datetime | None = None) -> float | None:
    """How long the server asked us to wait, in seconds: the body's RetryInfo.retryDelay, else the
    ``Retry-After`` header (seconds or an HTTP date). The SDK reads neither; None when absent."""
    delay = _retry_info_delay(exc.details)
    if delay is not None:
        return delay
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    return _retry_after(value, now or datetime.now(UTC)) if value else None


def _retry_after(value: str, now: datetime) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date (a date in the past means now); None
    for anything else (a server's malformed header is ignored, never a crash)."""
    if _SECONDS.fullmatch(value.strip()):
        return _finite(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _retry_info_delay(details: Any) -> float | None:
    """The server's RetryInfo.retryDelay in seconds, if the error body carries a well-formed one
    (a protobuf Duration: "1.5s"); a body of any other shape asks for nothing."""
    error = details.get("error", details) if isinstance(details, dict) else None
    items = error.get("details") if isinstance(error, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("RetryInfo"):
            delay = item.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s") and _SECONDS.fullmatch(delay[:-1]):
                return _finite(delay[:-1])
    return None


def _finite(text: str) -> float | None:
    """``text`` (digits, perhaps a fraction) in seconds; None when too large to be a number."""
    seconds = float(text)
    return seconds if math.isfinite(seconds) else None


def parse_response(response: types.GenerateContentResponse) -> ApiResponse:
    """What gemflow keeps of an answer; an answer with neither a candidate nor prompt feedback
    (an empty body, say) is unreadable."""
    if not response.candidates and response.prompt_feedback is None:
        raise ApiError(UNREADABLE + "it holds no candidates and no prompt feedback", retryable=True)
    candidate = response.candidates[0] if response.candidates else None
    image = mime = None
    texts: list[str] = []
    parts = candidate.content.parts if candidate and candidate.content else None
    for part in parts or []:
        if part.thought:  # Gemini 3 sends interim "thinking" images before the final one
            continue
        if part.inline_data is not None and part.inline_data.data is not None:
            image, mime = part.inline_data.data, part.inline_data.mime_type
        elif part.text:
            texts.append(part.text)
    if image is not None:
        _check_image(image, mime)
    feedback = response.prompt_feedback
    return ApiResponse(
        image=image,
        mime_type=mime,
        texts=texts,
        finish_reason=_enum_name(candidate.finish_reason) if candidate else None,
        block_reason=_enum_name(feedback.block_reason) if feedback else None,
        model_version=response.model_version,
        response_id=response.response_id,
        usage=_usage(response.usage_metadata),
    )


def _check_image(data: bytes, mime: str | None) -> None:
    """The image of an answer must be a whole picture of the type it is labelled: anything else
    would be stored and written as a picture. Not retried: the server meant it as an image."""
    from gemflow.errors import InputError
    from gemflow.imaging.operations import API_MIME_TYPES, image_format

    if not data:
        raise ApiError(UNREADABLE + "the image is empty", retryable=False)
    try:
        found = image_format(data, source="the image")
    except InputError as exc:
        raise ApiError(UNREADABLE + str(exc), retryable=False) from None
    labelled = "image/jpeg" if mime == "image/jpg" else mime
    if API_MIME_TYPES.get(found) != labelled:
        raise ApiError(
            UNREADABLE + f"the image is labelled {mime} but is a {found}", retryable=False
        )


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    return getattr(value, "value", None) or str(value)


def _usage(meta: types.GenerateContentResponseUsageMetadata | None) -> dict[str, int]:
    if meta is None:
        return {}
    fields = {
        "input": meta.prompt_token_count,
        "output": meta.candidates_token_count,
        "thoughts": meta.thoughts_token_count,
        "total": meta.total_token_count,
    }
    return {name: int(value) for name, value in fields.items() if value is not None}
