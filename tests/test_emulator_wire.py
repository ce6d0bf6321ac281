"""The emulator's wire format, checked with raw HTTP (no SDK in between)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import socket
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

import gemflow.emulator.server
from gemflow.emulator import Emulator, Faults
from gemflow.emulator.render import pixel_size
from gemflow.models import known_models

MODEL = "gemini-3.1-flash-image"
SCALE = 1 / 16
# 0xfb 0xff 0xbf encodes to "+/+/" in the standard alphabet and "-_-_" in the URL-safe one
AWKWARD_BYTES = b"\x89PNG fake " + bytes([0xFB, 0xFF, 0xBF]) * 8 + b"!"


@pytest.fixture
def emu(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    vary_takes = request.node.get_closest_marker("same_takes") is None  # see tests/conftest.py
    with Emulator(scale=SCALE, vary_takes=vary_takes) as emulator:
        yield emulator


def call(
    emu: Emulator,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    key: str | None = "test-key",
    method: str | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, headers, JSON body) of one request; HTTP errors are answers, not exceptions."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emu.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("x-goog-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.loads(error.read())


def generate_path(model: str = MODEL, version: str = "v1") -> str:
    return f"/{version}/models/{model}:generateContent"


def image_request(encoded: str, *, camel: bool = True) -> dict[str, Any]:
    if camel:
        return {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "Edit"},
                        {"inlineData": {"mimeType": "image/png", "data": encoded}},
                    ],
                }
            ],
            "generationConfig": {"responseModalities": ["IMAGE"]},
        }
    return {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Edit"},
                    {"inline_data": {"mime_type": "image/png", "data": encoded}},
                ],
            }
        ],
        "generation_config": {"response_modalities": ["IMAGE"]},
    }


def final_image(payload: dict[str, Any]) -> bytes:
    parts = payload["candidates"][0]["content"]["parts"]
    images = [p for p in parts if "inlineData" in p and not p.get("thought")]
    return base64.b64decode(images[-1]["inlineData"]["data"], validate=True)


@pytest.mark.parametrize(
    "encode",
    [
        lambda b: base64.b64encode(b).decode(),
        lambda b: base64.urlsafe_b64encode(b).decode(),
        lambda b: base64.b64encode(b).decode().rstrip("="),
        lambda b: base64.urlsafe_b64encode(b).decode().rstrip("="),
    ],
    ids=["standard", "url-safe", "standard-unpadded", "url-safe-unpadded"],
)
def test_both_base64_alphabets_with_or_without_padding_are_accepted(
    emu: Emulator, encode: Any
) -> None:
    status, _, _ = call(emu, generate_path(), image_request(encode(AWKWARD_BYTES)))
    assert status == 200
    (record,) = emu.api_calls()
    assert record["images"][0]["sha256"] == hashlib.sha256(AWKWARD_BYTES).hexdigest()


@pytest.mark.same_takes  # the same request twice: the second would otherwise be take 2
def test_snake_case_and_camel_case_requests_get_the_same_answer(emu: Emulator) -> None:
    encoded = base64.b64encode(AWKWARD_BYTES).decode()
    _, _, camel = call(emu, generate_path(), image_request(encoded, camel=True))
    _, _, snake = call(emu, generate_path(), image_request(encoded, camel=False))
    assert camel == snake
    assert [r["image_count"] for r in emu.api_calls()] == [1, 1]


def test_image_config_in_snake_case_is_honoured(emu: Emulator) -> None:
    body = {
        "contents": [{"parts": [{"text": "Wide"}]}],
        "generation_config": {"image_config": {"aspect_ratio": "16:9"}},
        "system_instruction": {"parts": [{"text": "Be wide"}]},
    }
    status, _, payload = call(emu, generate_path(), body)
    assert status == 200
    with Image.open(io.BytesIO(final_image(payload))) as im:
        assert im.size == pixel_size("16:9", "1K", SCALE)
    assert emu.api_calls()[0]["system"] == "Be wide"


def test_response_format_image_is_accepted_like_image_config(emu: Emulator) -> None:
    body = {
        "contents": [{"parts": [{"text": "Tall"}]}],
        "generationConfig": {"responseFormat": {"image": {"aspectRatio": "9:16"}}},
    }
    _, _, payload = call(emu, generate_path(), body)
    with Image.open(io.BytesIO(final_image(payload))) as im:
        assert im.size == pixel_size("9:16", "1K", SCALE)


def test_contents_may_be_a_single_object(emu: Emulator) -> None:
    status, _, _ = call(emu, generate_path(), {"contents": {"parts": [{"text": "Alone"}]}})
    assert status == 200
    assert emu.api_calls()[0]["prompt"] == "Alone"


def test_prompt_joins_all_user_text_parts_with_newlines(emu: Emulator) -> None:
    body = {"contents": [{"parts": [{"text": "one"}, {"text": "two"}]}, {"parts": [{"text": "3"}]}]}
    call(emu, generate_path(), body)
    assert emu.api_calls()[0]["prompt"] == "one\ntwo\n3"


def camel_case_violations(value: Any, where: str = "") -> list[str]:
    if isinstance(value, dict):
        bad = [f"{where}.{k}" for k in value if "_" in k]
        return bad + [v for k, x in value.items() for v in camel_case_violations(x, f"{where}.{k}")]
    if isinstance(value, list):
        return [v for i, x in enumerate(value) for v in camel_case_violations(x, f"{where}[{i}]")]
    return []


def test_response_is_camel_case_at_every_level(emu: Emulator) -> None:
    _, _, payload = call(emu, generate_path(), {"contents": [{"parts": [{"text": "A cat"}]}]})
    assert camel_case_violations(payload) == []
    assert set(payload) == {"candidates", "usageMetadata", "modelVersion", "responseId"}
    assert payload["candidates"][0]["finishReason"] == "STOP"
    assert payload["candidates"][0]["content"]["role"] == "model"
    assert payload["usageMetadata"]["candidatesTokensDetails"][0]["modality"] == "IMAGE"


def test_image_data_is_standard_base64(emu: Emulator) -> None:
    _, _, payload = call(emu, generate_path(), {"contents": [{"parts": [{"text": "Std"}]}]})
    for part in payload["candidates"][0]["content"]["parts"]:
        if "inlineData" in part:
            data = part["inlineData"]["data"]
            assert base64.b64encode(base64.b64decode(data, validate=True)).decode() == data


def test_v1beta_is_served_as_well_as_v1(emu: Emulator) -> None:
    body = {"contents": [{"parts": [{"text": "Beta"}]}]}
    assert call(emu, generate_path(version="v1beta"), body)[0] == 200
    assert emu.api_calls()[0]["api_version"] == "v1beta"


def test_model_path_with_models_prefix_is_normalised(emu: Emulator) -> None:
    path = f"/v1/models/models/{MODEL}:generateContent"
    status, _, payload = call(emu, path, {"contents": [{"parts": [{"text": "Prefixed"}]}]})
    assert status == 200
    assert payload["modelVersion"] == MODEL
    assert emu.api_calls()[0]["model"] == MODEL


def test_stream_answer_is_one_server_sent_event(emu: Emulator) -> None:
    request = urllib.request.Request(
        f"{emu.url}/v1/models/{MODEL}:streamGenerateContent?alt=sse",
        data=json.dumps({"contents": [{"parts": [{"text": "Stream"}]}]}).encode(),
        headers={"x-goog-api-key": "k", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        text = response.read().decode()
    assert text.startswith("data: {")
    assert text.endswith("\r\n\r\n")
    assert text.count("data: ") == 1
    assert json.loads(text.removeprefix("data: "))["candidates"]


def test_missing_api_key_is_403_permission_denied(emu: Emulator) -> None:
    status, _, payload = call(emu, generate_path(), {"contents": "x"}, key=None)
    assert status == 403
    assert payload["error"]["code"] == 403
    assert payload["error"]["status"] == "PERMISSION_DENIED"
    assert emu.requests[0]["api_key_present"] is False


def test_key_in_query_parameter_is_accepted_and_kept_out_of_the_log(emu: Emulator) -> None:
    path = generate_path() + "?key=query-secret"
    status, _, _ = call(emu, path, {"contents": "x"}, key=None)
    assert status == 200
    (record,) = emu.requests
    assert record["api_key_present"] is True
    assert "query-secret" not in json.dumps(record)


def test_unknown_path_is_404_with_the_error_body(emu: Emulator) -> None:
    status, _, payload = call(emu, "/v1/cachedContents", method="GET")
    assert status == 404
    assert set(payload["error"]) == {"code", "message", "status", "details"}
    assert payload["error"]["status"] == "NOT_FOUND"
    assert emu.requests[0]["endpoint"] == "unknown"


def test_invalid_ratio_error_names_the_field(emu: Emulator) -> None:
    body = {"contents": "x", "generationConfig": {"imageConfig": {"aspectRatio": "3:1"}}}
    status, _, payload = call(emu, generate_path(), body)
    assert status == 400
    (violation,) = payload["error"]["details"][0]["fieldViolations"]
    assert violation["field"] == "generation_config.image_config.aspect_ratio"


def test_invalid_base64_is_400(emu: Emulator) -> None:
    status, _, payload = call(emu, generate_path(), image_request("@@not base64@@"))
    assert status == 400
    assert "Base64 decoding failed" in payload["error"]["message"]


def test_invalid_json_is_400(emu: Emulator) -> None:
    request = urllib.request.Request(
        emu.url + generate_path(), data=b"{not json", headers={"x-goog-api-key": "k"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    with caught.value as error:
        assert error.code == 400
        assert json.loads(error.read())["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(("fault", "code"), [("429", 429), ("503", 503)])
def test_retryable_faults_send_retry_after_and_retry_info(fault: str, code: int) -> None:
    with Emulator(scale=SCALE, faults=Faults(retry_delay=2.5)) as emu:
        emu.faults.push(fault)
        status, headers, payload = call(emu, generate_path(), {"contents": "x"})
    assert status == code
    assert headers["Retry-After"] == "3"
    assert payload["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}
    ]


def test_chunked_request_body_is_read(emu: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(emu.url.rsplit(":", 1)[1]), timeout=10)
    try:
        body = json.dumps({"contents": [{"parts": [{"text": "Chunked"}]}]}).encode()
        connection.request(
            "POST",
            generate_path(),
            body=iter([body[:10], body[10:]]),
            headers={"x-goog-api-key": "k", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 200
        response.read()
    finally:
        connection.close()
    assert emu.api_calls()[0]["prompt"] == "Chunked"


def test_keep_alive_connection_serves_several_requests(emu: Emulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", int(emu.url.rsplit(":", 1)[1]), timeout=10)
    try:
        for _ in range(3):
            connection.request("GET", f"/v1/models/{MODEL}", headers={"x-goog-api-key": "k"})
            response = connection.getresponse()
            assert response.status == 200
            assert int(response.headers["Content-Length"]) == len(response.read())
    finally:
        connection.close()


def test_count_tokens_counts_text_and_images(emu: Emulator) -> None:
    body = {
        "contents": [
            {
                "parts": [
                    {"text": "12345678"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                ]
            }
        ]
    }
    status, _, payload = call(emu, f"/v1/models/{MODEL}:countTokens", body)
    assert status == 200
    assert payload["totalTokens"] == 2 + known_models()[MODEL].input_image_tokens


# --- hostile clients -----------------------------------------------------------------------------


def raw_post(emu: Emulator, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", int(emu.url.rsplit(":", 1)[1]), timeout=10)
    try:
        connection.request(
            "POST", generate_path(), body=body, headers={"x-goog-api-key": "k", **headers}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def zeros_gzipped(size: int) -> bytes:
    """``size`` zero bytes, gzipped a megabyte at a time (a thousand to one)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [
        packer.compress(chunk[: min(len(chunk), size - done)])
        for done in range(0, size, len(chunk))
    ]
    return b"".join([*parts, packer.flush()])


def test_a_gzip_bomb_is_refused_without_inflating_it(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gemflow.emulator.server, "MAX_BODY_BYTES", 1024 * 1024)
    bomb = zeros_gzipped(64 * 1024 * 1024)  # 64 MiB of zeros in some 64 KB
    status, payload = raw_post(emu, bomb, {"Content-Encoding": "gzip"})
    assert status == 400
    assert payload["error"]["message"] == "Request payload size exceeds the limit: 1048576 bytes."


def test_a_body_over_the_limit_is_refused_unread(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gemflow.emulator.server, "MAX_BODY_BYTES", 1024)
    status, payload = raw_post(emu, b"{" + b" " * 2048 + b"}", {})
    assert status == 400
    assert payload["error"]["message"] == "Request payload size exceeds the limit: 1024 bytes."


def test_a_gzipped_body_within_the_limit_is_read(emu: Emulator) -> None:
    body = json.dumps({"contents": [{"parts": [{"text": "Zipped"}]}]}).encode()
    status, _ = raw_post(emu, gzip.compress(body), {"Content-Encoding": "gzip"})
    assert status == 200
    assert emu.api_calls()[0]["prompt"] == "Zipped"


@pytest.mark.parametrize("pause", [0.1, None], ids=["trickling", "stalled"])
def test_a_client_slow_to_send_its_request_is_cut_off(
    monkeypatch: pytest.MonkeyPatch, pause: float | None
) -> None:
    monkeypatch.setattr(gemflow.emulator.server, "REQUEST_SECONDS", 1.0)
    request = f"POST {generate_path()} HTTP/1.1\r\nHost: x\r\nX-Slow: {'a' * 200}".encode()
    with Emulator(scale=SCALE) as emu:
        client = socket.create_connection(("127.0.0.1", int(emu.url.rsplit(":", 1)[1])))
        client.settimeout(0.1)
        started = time.monotonic()
        try:
            if pause is None:
                client.sendall(request[:40])
            for index in range(len(request)):
                if pause is not None:
                    client.sendall(request[index : index + 1])
                try:
                    if client.recv(1024) == b"":
                        break  # the emulator closed the connection
                except TimeoutError:
                    pass
                except OSError:
                    break
                assert time.monotonic() - started < 5, "the emulator still waits for the request"
        finally:
            client.close()
    assert 0.9 < time.monotonic() - started < 2.5
