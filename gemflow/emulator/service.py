"""One API request in, one reply out: routing, the API key check and the endpoints.

Serves getModel, countTokens, generateContent and streamGenerateContent under ``/v1`` and
``/v1beta``; a generate request is checked against its model (``catalog.py``) and then
answered (``answer.py``).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

from gemflow.emulator.answer import Answerer
from gemflow.emulator.catalog import (
    find_model,
    is_text_model,
    model_resource,
    refuse_image_modality,
    validate,
)
from gemflow.emulator.log import describe
from gemflow.emulator.usage import token_count
from gemflow.emulator.wire import (
    ApiFailure,
    Reply,
    bad_request,
    dump,
    error_detail,
    parse_generate,
    parse_json,
)

API_VERSIONS = ("v1", "v1beta")

_ACTIONS = {
    ("POST", "generateContent"): "generateContent",
    ("POST", "streamGenerateContent"): "streamGenerateContent",
    ("POST", "countTokens"): "countTokens",
    ("GET", None): "getModel",
}
_PATH = re.compile(r"^/(?P<version>[^/]+)/models/(?P<model>[^:]+?)(?::(?P<action>[A-Za-z]+))?$")


class Service:
    """Turns one HTTP request into one reply, filling in its log record on the way."""

    def __init__(
        self, *, api_key: str | None, extra_models: Iterable[str], answerer: Answerer
    ) -> None:
        self.api_key = api_key
        self.extra_models = {m.removeprefix("models/") for m in extra_models}
        self.answerer = answerer

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
            payload = parse_json(body)
            if endpoint == "countTokens":
                return self._count_tokens(version, model, payload, record)
            return self._generate(
                version, model, payload, record, stream=endpoint == "streamGenerateContent", key=key
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
                    error_detail(
                        "ErrorInfo",
                        reason="API_KEY_INVALID",
                        domain="googleapis.com",
                        metadata={"service": "generativelanguage.googleapis.com"},
                    )
                ],
            )

    def _get_model(self, version: str, model_id: str) -> Reply:
        find_model(model_id, version, "get", self.extra_models)
        return Reply(200, dump(model_resource(model_id)))

    def _count_tokens(
        self, version: str, model_id: str, payload: dict[str, Any], record: dict[str, Any]
    ) -> Reply:
        info = find_model(model_id, version, "countTokens", self.extra_models)
        request = parse_generate(payload)
        describe(record, request)
        if not request.has_contents:
            raise bad_request(
                "* CountTokensRequest.contents: contents is not specified", "contents"
            )
        return Reply(200, dump(token_count(info, request)))

    def _generate(
        self,
        version: str,
        model_id: str,
        payload: dict[str, Any],
        record: dict[str, Any],
        *,
        stream: bool,
        key: str = "",
    ) -> Reply:
        method = "streamGenerateContent" if stream else "generateContent"
        info = find_model(model_id, version, method, self.extra_models)
        request = parse_generate(payload)
        describe(record, request)
        validate(info, request)
        text_only = is_text_model(info)
        if text_only:
            refuse_image_modality(info, request)
        answer = self.answerer.answer(info, request, record, text_only=text_only, key=key)
        if isinstance(answer, Reply):  # a broken answer, sent as it is
            return answer
        if stream:
            return Reply(200, b"data: " + dump(answer) + b"\r\n\r\n", "text/event-stream")
        return Reply(200, dump(answer))


def _route(method: str, path: str) -> tuple[str, str | None, str | None]:
    """(endpoint, api version, model id) for a request path."""
    match = _PATH.match(path)
    if not match or match["version"] not in API_VERSIONS:
        return "unknown", None, None
    model = unquote(match["model"]).removeprefix("models/")
    endpoint = _ACTIONS.get((method, match["action"]), "unknown")
    return endpoint, match["version"], model
