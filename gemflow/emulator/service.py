"""One API request in, one reply out: routing, the API key check and the endpoints.

Serves, under ``/v1`` and ``/v1beta`` (endpoint names as in the request log)::

    POST   /{v}/models/{m}:generateContent        generateContent
    POST   /{v}/models/{m}:streamGenerateContent  streamGenerateContent
    POST   /{v}/models/{m}:countTokens            countTokens
    GET    /{v}/models/{m}                        getModel
    POST   /{v}/models/{m}:batchGenerateContent   batchGenerateContent   (batches.py)
    GET    /{v}/batches/{id}                      getBatch
    GET    /{v}/batches?pageSize&pageToken        listBatches
    POST   /{v}/batches/{id}:cancel               cancelBatch
    DELETE /{v}/batches/{id}                      deleteBatch
    POST   /upload/{v}/files                      uploadFile             (files.py)
    POST   /upload/{v}/files?upload_id=...        uploadChunk (no key: the URL is the credential)
    GET    /{v}/files/{id}                        getFile
    GET    /{v}/files?pageSize&pageToken          listFiles
    DELETE /{v}/files/{id}                        deleteFile
    GET    /{v}/files/{id}:download?alt=media     downloadFile (the SDK's URL; the REST docs'
    GET    /download/{v}/files/{id}:download?...  downloadFile  /download/ prefix works too)

A generate request is checked against its model (``catalog.py``) and then answered
(``answer.py``); a batch item goes the same way.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from gemflow.emulator.answer import Answerer
from gemflow.emulator.batches import Batches
from gemflow.emulator.catalog import check_request, find_model, model_resource
from gemflow.emulator.files import FileStore
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

_MODEL_ACTIONS = {
    ("POST", "generateContent"): "generateContent",
    ("POST", "streamGenerateContent"): "streamGenerateContent",
    ("POST", "countTokens"): "countTokens",
    ("POST", "batchGenerateContent"): "batchGenerateContent",
    ("GET", None): "getModel",
}
# (method, has an id, action) -> endpoint, for /{v}/batches..., /{v}/files... and their prefixes
_BATCH_ACTIONS = {
    ("GET", False, None): "listBatches",
    ("GET", True, None): "getBatch",
    ("POST", True, "cancel"): "cancelBatch",
    ("DELETE", True, None): "deleteBatch",
}
_FILE_ACTIONS = {
    ("", "GET", False, None): "listFiles",
    ("", "GET", True, None): "getFile",
    ("", "DELETE", True, None): "deleteFile",
    ("", "GET", True, "download"): "downloadFile",
    ("download/", "GET", True, "download"): "downloadFile",
    ("upload/", "POST", False, None): "uploadFile",
}
_MODEL_PATH = re.compile(
    r"^/(?P<version>[^/]+)/models/(?P<model>[^:]+?)(?::(?P<action>[A-Za-z]+))?$"
)
_COLLECTION_PATH = re.compile(
    r"^/(?P<prefix>upload/|download/)?(?P<version>[^/]+)/(?P<collection>batches|files)"
    r"(?:/(?P<id>[^/:]+)(?::(?P<action>[A-Za-z]+))?)?$"
)


@dataclass(frozen=True)
class Route:
    endpoint: str
    version: str | None = None
    model: str | None = None
    resource: str | None = None  # "batches/ID" or "files/ID"

    @property
    def resource_id(self) -> str:
        return (self.resource or "").partition("/")[2]


class Service:
    """Turns one HTTP request into one reply, filling in its log record on the way."""

    def __init__(
        self,
        *,
        api_key: str | None,
        extra_models: Iterable[str],
        answerer: Answerer,
        batches: Batches,
        files: FileStore,
    ) -> None:
        self.api_key = api_key
        self.extra_models = {m.removeprefix("models/") for m in extra_models}
        self.answerer = answerer
        self.batches = batches
        self.files = files

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
        route = _route(method, path, query)
        record.update(
            endpoint=route.endpoint,
            api_version=route.version,
            model=route.model,
            resource=route.resource,
        )
        key = (headers.get("x-goog-api-key") or query.get("key") or "").strip()
        record["api_key_present"] = bool(key)
        # The upload URL the SDK is given must be absolute; it does not rewrite it to base_url.
        origin = f"http://{headers.get('host') or '127.0.0.1'}"
        try:
            if route.endpoint == "uploadChunk":  # the session's URL is its credential, no key
                return self.files.upload_chunk(query["upload_id"], headers, body, origin)
            self._check_key(key)
            if route.endpoint == "unknown" or route.version is None:
                raise ApiFailure(404, f"Method not found: {method} {path}")
            if route.model is not None:
                return self._model_endpoint(route, body, record, key)
            return self._collection_endpoint(route, query, headers, body, record, origin)
        except ApiFailure as failure:
            return failure.reply()

    def _model_endpoint(
        self, route: Route, body: bytes, record: dict[str, Any], key: str = ""
    ) -> Reply:
        version, model = route.version or "", route.model or ""
        if route.endpoint == "getModel":
            return self._get_model(version, model)
        payload = parse_json(body)
        if route.endpoint == "countTokens":
            return self._count_tokens(version, model, payload, record)
        if route.endpoint == "batchGenerateContent":
            info = find_model(model, version, "batchGenerateContent", self.extra_models)
            operation = self.batches.create(info, payload, len(body))
            record["resource"] = operation["name"]
            return Reply(200, dump(operation))
        return self._generate(
            version,
            model,
            payload,
            record,
            stream=route.endpoint == "streamGenerateContent",
            key=key,
        )

    def _collection_endpoint(
        self,
        route: Route,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
        record: dict[str, Any],
        origin: str,
    ) -> Reply:
        version, endpoint, resource_id = route.version or "", route.endpoint, route.resource_id
        if endpoint == "uploadFile":
            return self.files.start_upload(version, parse_json(body), headers, origin)
        if endpoint == "downloadFile":
            return self.files.download(resource_id, query)
        answer: dict[str, Any]
        if endpoint == "getFile":
            answer = self.files.get(resource_id).resource(origin, version)
        elif endpoint == "listFiles":
            answer = self.files.page(query, origin, version)
        elif endpoint == "deleteFile":
            self.files.delete(resource_id)
            answer = {}
        elif endpoint == "getBatch":
            answer = self.batches.get(resource_id)
        elif endpoint == "listBatches":
            answer = self.batches.page(query)
        elif endpoint == "cancelBatch":
            answer = self.batches.cancel(resource_id)
        else:
            answer = self.batches.delete(resource_id)
        return Reply(200, dump(answer))

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
        text_only = check_request(info, request)
        answer = self.answerer.answer(info, request, record, text_only=text_only, key=key)
        if isinstance(answer, Reply):  # a broken answer, sent as it is
            return answer
        if stream:
            return Reply(200, b"data: " + dump(answer) + b"\r\n\r\n", "text/event-stream")
        return Reply(200, dump(answer))


def _route(method: str, path: str, query: Mapping[str, str]) -> Route:
    """Which endpoint a request is for, and what it names."""
    match = _MODEL_PATH.match(path)
    if match and match["version"] in API_VERSIONS:
        model = unquote(match["model"]).removeprefix("models/")
        endpoint = _MODEL_ACTIONS.get((method, match["action"]), "unknown")
        return Route(endpoint, match["version"], model)
    match = _COLLECTION_PATH.match(path)
    if not match or match["version"] not in API_VERSIONS:
        return Route("unknown")
    has_id, action = match["id"] is not None, match["action"]
    found: str | None
    if match["collection"] == "batches":
        found = None if match["prefix"] else _BATCH_ACTIONS.get((method, has_id, action))
    else:
        found = _FILE_ACTIONS.get((match["prefix"] or "", method, has_id, action))
        if found == "uploadFile" and "upload_id" in query:
            found = "uploadChunk"
    resource = f"{match['collection']}/{unquote(match['id'])}" if has_id else None
    return Route(found or "unknown", match["version"], None, resource)
