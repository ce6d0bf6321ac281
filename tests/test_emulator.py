"""The Gemini API emulator, spoken to by the real google-genai client over loopback."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

import gemflow.emulator
from gemflow.emulator import Emulator, Faults
from gemflow.emulator.render import TEXT_CHUNK, pixel_size
from gemflow.emulator.server import THOUGHTS_TOKENS
from gemflow.models import known_models

MODEL = "gemini-3.1-flash-image"  # a thinking (3.x) model
LEGACY = "gemini-2.5-flash-image"  # fixed size, no thinking, at most 3 input images
SMALL = 1 / 16  # 1K becomes 64 px: fast, for tests where the pixel size does not matter


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with any settings (small images by default); all stop at teardown."""
    started: list[Emulator] = []

    def start(**settings: Any) -> Emulator:
        settings.setdefault("scale", SMALL)
        emulator = Emulator(**settings).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def connect() -> Iterator[Callable[..., genai.Client]]:
    """SDK clients for an emulator; all closed at teardown."""
    clients: list[genai.Client] = []

    def connect(emulator: Emulator, api_key: str = "test-key", **http: Any) -> genai.Client:
        options = types.HttpOptions(base_url=emulator.url, **http)
        client = genai.Client(api_key=api_key, http_options=options)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def emu(start_emulator: Callable[..., Emulator]) -> Emulator:
    """A fresh emulator, for tests that read its log or push faults."""
    return start_emulator()


@pytest.fixture
def client(emu: Emulator, connect: Callable[..., genai.Client]) -> genai.Client:
    return connect(emu)


def _shared(scale: float, *, vary_takes: bool = True) -> Iterator[genai.Client]:
    with Emulator(scale=scale, vary_takes=vary_takes) as emulator:
        client = genai.Client(
            api_key="test-key", http_options=types.HttpOptions(base_url=emulator.url)
        )
        yield client
        client.close()


@pytest.fixture(scope="module")
def shared_client() -> Iterator[genai.Client]:
    """One client and emulator for tests that neither read the log nor inject faults.

    Sharing matters: each genai.Client costs ~60 ms (the SDK loads the CA bundle twice).
    """
    yield from _shared(SMALL)


@pytest.fixture(scope="module")
def full_size_client() -> Iterator[genai.Client]:
    yield from _shared(1.0)


@pytest.fixture(scope="module")
def steady_client() -> Iterator[genai.Client]:
    """An emulator that answers identical requests with identical bytes (take 1 every time)."""
    yield from _shared(SMALL, vary_takes=False)


@pytest.fixture(scope="module")
def steady_full_size_client() -> Iterator[genai.Client]:
    yield from _shared(1.0, vary_takes=False)


def generate(
    client: genai.Client,
    prompt: str = "A lighthouse at dusk",
    *,
    model: str = MODEL,
    images: tuple[bytes, ...] = (),
    aspect_ratio: str | None = None,
    image_size: str | None = None,
    **config: Any,
) -> types.GenerateContentResponse:
    image_config = None
    if aspect_ratio or image_size:
        image_config = types.ImageConfig(aspect_ratio=aspect_ratio, image_size=image_size)
    config.setdefault("response_modalities", ["IMAGE"])
    return client.models.generate_content(
        model=model,
        contents=[prompt, *(types.Part.from_bytes(data=b, mime_type="image/png") for b in images)],
        config=types.GenerateContentConfig(image_config=image_config, **config),
    )


def final_image(response: types.GenerateContentResponse) -> bytes:
    """The last non-thought image, as a careful client would pick it."""
    images = [p for p in response.parts or [] if p.inline_data and not p.thought]
    assert images, "no image in the response"
    data = images[-1].inline_data.data
    assert isinstance(data, bytes)
    return data


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("aspect_ratio", "image_size"), [("1:1", "1K"), ("16:9", "512"), ("9:16", "2K"), ("21:9", "1K")]
)
def test_image_has_the_pixel_size_of_the_requested_ratio_and_size(
    full_size_client: genai.Client, aspect_ratio: str, image_size: str
) -> None:
    response = generate(full_size_client, aspect_ratio=aspect_ratio, image_size=image_size)
    with Image.open(io.BytesIO(final_image(response))) as im:
        width, height = im.size
        assert im.format == "PNG"
    assert (width, height) == pixel_size(aspect_ratio, image_size)
    rw, rh = map(int, aspect_ratio.split(":"))
    assert width / height == pytest.approx(rw / rh, rel=0.03)
    base = {"512": 512, "1K": 1024, "2K": 2048}[image_size]
    assert width * height == pytest.approx(base * base, rel=0.03)


def test_default_size_is_1k_square(full_size_client: genai.Client) -> None:
    with Image.open(io.BytesIO(final_image(generate(full_size_client)))) as im:
        assert im.size == (1024, 1024)


def test_scale_shrinks_the_pixel_size(shared_client: genai.Client) -> None:
    with Image.open(io.BytesIO(final_image(generate(shared_client, aspect_ratio="16:9")))) as im:
        assert im.size == pixel_size("16:9", "1K", SMALL)


def test_default_ratio_follows_the_first_input_image(shared_client: genai.Client) -> None:
    response = generate(shared_client, "Make it night", images=(png(320, 180, (0, 0, 255)),))
    with Image.open(io.BytesIO(final_image(response))) as im:
        assert im.size == pixel_size("16:9", "1K", SMALL)


def test_thinking_model_sends_a_thought_image_first(shared_client: genai.Client) -> None:
    parts = generate(shared_client, model=MODEL).parts
    assert parts is not None
    assert parts[0].thought is True
    assert parts[0].inline_data is not None
    assert [bool(p.thought) for p in parts[1:]] == [False] * (len(parts) - 1)
    assert parts[-1].inline_data is not None
    assert parts[-1].inline_data.mime_type == "image/png"
    assert any(p.text for p in parts)


def test_legacy_model_sends_text_and_image_without_thoughts(shared_client: genai.Client) -> None:
    parts = generate(shared_client, model=LEGACY).parts
    assert parts is not None
    assert not any(p.thought for p in parts)
    assert [p.text is not None for p in parts] == [True, False]
    assert parts[1].inline_data is not None


def test_png_carries_the_prompt_in_a_text_chunk(shared_client: genai.Client) -> None:
    with Image.open(io.BytesIO(final_image(generate(shared_client, "A red fox in snow")))) as im:
        assert im.info[TEXT_CHUNK] == "A red fox in snow"


def test_same_request_gives_the_same_bytes_even_from_another_emulator(
    start_emulator: Callable[..., Emulator], connect: Callable[..., genai.Client]
) -> None:
    first, second = connect(start_emulator()), connect(start_emulator())
    image = final_image(generate(first, seed=7, temperature=0.4))
    assert final_image(generate(first, seed=7, temperature=0.4)) == image
    assert final_image(generate(second, seed=7, temperature=0.4)) == image


def test_concurrent_identical_requests_get_identical_bytes(
    steady_full_size_client: genai.Client,
) -> None:
    client = steady_full_size_client
    with ThreadPoolExecutor(max_workers=16) as pool:
        images = set(pool.map(lambda _: final_image(generate(client, "Same")), range(16)))
    assert len(images) == 1


def test_identical_requests_get_a_new_take_each(client: genai.Client) -> None:
    takes = [final_image(generate(client, "Same")) for _ in range(3)]
    assert len(set(takes)) == 3
    assert final_image(generate(client, "Other")) not in takes


def test_identical_concurrent_requests_get_distinct_takes(full_size_client: genai.Client) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        images = list(pool.map(lambda _: final_image(generate(full_size_client, "Many")), range(8)))
    assert len(set(images)) == 8


def test_a_later_take_has_other_colours_and_its_own_response_id(client: genai.Client) -> None:
    first, second = generate(client, "Same"), generate(client, "Same")
    with (
        Image.open(io.BytesIO(final_image(first))) as a,
        Image.open(io.BytesIO(final_image(second))) as b,
    ):
        assert a.convert("RGB").getpixel((1, 10)) != b.convert("RGB").getpixel((1, 10))
    assert first.response_id != second.response_id


def test_identical_seeded_requests_get_the_same_picture(client: genai.Client) -> None:
    first, second = (final_image(generate(client, "Same", seed=7)) for _ in range(2))
    assert first == second
    assert final_image(generate(client, "Same", seed=8)) != first


def test_takes_kept_in_a_file_go_on_in_the_next_emulator(
    tmp_path: Path,
    start_emulator: Callable[..., Emulator],
    connect: Callable[..., genai.Client],
) -> None:
    """The built-in emulator keeps its takes in the cache folder: its runs are one service."""
    kept = tmp_path / "cache" / "emulator-takes.json"
    first = start_emulator(takes_file=kept)
    take_1 = final_image(generate(connect(first), "Same"))
    first.stop()
    assert json.loads(kept.read_text())["format"] == 1
    take_2 = final_image(generate(connect(start_emulator(takes_file=kept)), "Same"))
    assert take_2 != take_1
    assert final_image(generate(connect(start_emulator()), "Same")) == take_1  # no file: afresh
    kept.write_text("{not json")
    damaged = start_emulator(takes_file=kept)
    assert final_image(generate(connect(damaged), "Same")) == take_1
    mtime = kept.stat().st_mtime_ns
    unasked = start_emulator(takes_file=kept)
    unasked.stop()
    assert kept.stat().st_mtime_ns == mtime  # nothing asked: nothing written


def test_two_emulators_on_one_takes_file_keep_both_their_counts(
    tmp_path: Path,
    start_emulator: Callable[..., Emulator],
    connect: Callable[..., genai.Client],
) -> None:
    """Two ``--emulator`` runs at once on one cache: the second to stop merges, not overwrites."""
    kept = tmp_path / "emulator-takes.json"
    one, other = start_emulator(takes_file=kept), start_emulator(takes_file=kept)
    firsts = [
        final_image(generate(connect(one), "Apple")),
        final_image(generate(connect(other), "Pear")),
    ]
    one.stop()
    other.stop()
    assert len(json.loads(kept.read_text())["takes"]) == 2
    later = connect(start_emulator(takes_file=kept))
    assert final_image(generate(later, "Apple")) != firsts[0]
    assert final_image(generate(later, "Pear")) != firsts[1]


def test_without_varied_takes_identical_requests_get_identical_bytes(
    start_emulator: Callable[..., Emulator], connect: Callable[..., genai.Client]
) -> None:
    steady = connect(start_emulator(vary_takes=False))
    assert final_image(generate(steady, "Same")) == final_image(generate(steady, "Same"))


def test_a_request_answered_without_an_image_does_not_use_up_a_take(
    emu: Emulator,
    client: genai.Client,
    start_emulator: Callable[..., Emulator],
    connect: Callable[..., genai.Client],
) -> None:
    emu.faults.push("image_safety")
    generate(client, "Same")  # refused: no image
    steady = connect(start_emulator(vary_takes=False))  # always take 1
    assert final_image(generate(client, "Same")) == final_image(generate(steady, "Same"))


RED = png(40, 40, (255, 0, 0))
GREEN = png(40, 40, (0, 255, 0))
BASE_REQUEST: dict[str, Any] = {
    "prompt": "A cat",
    "seed": 1,
    "aspect_ratio": "1:1",
    "images": (RED,),
}


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "A dog"},
        {"seed": 2},
        {"aspect_ratio": "4:3"},
        {"images": (GREEN,)},
        {"images": (RED, GREEN)},
        {"temperature": 0.9},
        {"system_instruction": "Paint like Turner"},
        {"model": "gemini-3-pro-image"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_any_change_to_the_request_changes_the_bytes(
    shared_client: genai.Client, change: dict[str, Any]
) -> None:
    base = dict(BASE_REQUEST)
    changed = {**base, **change}
    base_image = final_image(generate(shared_client, base.pop("prompt"), **base))
    assert final_image(generate(shared_client, changed.pop("prompt"), **changed)) != base_image


def test_edit_result_shows_its_input_images(shared_client: genai.Client) -> None:
    red = png(64, 64, (255, 0, 0))
    with Image.open(io.BytesIO(final_image(generate(shared_client, "Edit", images=(red,))))) as im:
        colours = {colour for _count, colour in im.convert("RGB").getcolors(1 << 16) or []}
    assert (255, 0, 0) in colours


def test_input_images_are_recorded_in_order_with_their_sha256(
    emu: Emulator, client: genai.Client
) -> None:
    inputs = (png(8, 8, (1, 2, 3)), png(9, 9, (4, 5, 6)), png(10, 10, (7, 8, 9)))
    generate(client, "Combine", images=inputs)
    (record,) = emu.api_calls()
    assert [i["sha256"] for i in record["images"]] == [
        hashlib.sha256(b).hexdigest() for b in inputs
    ]
    assert [i["bytes"] for i in record["images"]] == [len(b) for b in inputs]
    assert {i["mime_type"] for i in record["images"]} == {"image/png"}
    assert record["image_count"] == 3


def test_usage_metadata_counts_prompt_output_and_thought_tokens(
    shared_client: genai.Client,
) -> None:
    prompt = "x" * 41  # 11 tokens at 4 characters a token
    response = generate(shared_client, prompt, images=(RED, GREEN), image_size="2K")
    usage = response.usage_metadata
    assert usage is not None
    info = known_models()[MODEL]
    assert usage.prompt_token_count == math.ceil(41 / 4) + 2 * info.input_image_tokens
    assert usage.candidates_token_count == info.sizes["2K"].output_tokens
    assert usage.thoughts_token_count == THOUGHTS_TOKENS
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    )
    details = {d.modality.value: d.token_count for d in usage.prompt_tokens_details or []}
    assert details == {"TEXT": 11, "IMAGE": 2 * info.input_image_tokens}


def test_response_names_model_version_and_a_deterministic_response_id(
    steady_client: genai.Client,
) -> None:
    first, second = generate(steady_client, "Same"), generate(steady_client, "Same")
    assert first.model_version == MODEL
    assert first.response_id and first.response_id == second.response_id
    assert generate(steady_client, "Other").response_id != first.response_id
    assert first.candidates and first.candidates[0].finish_reason == types.FinishReason.STOP


def test_stream_generate_content_yields_the_same_image(steady_client: genai.Client) -> None:
    chunks = list(
        steady_client.models.generate_content_stream(
            model=MODEL,
            contents="A kite",
            config=types.GenerateContentConfig(response_modalities=["IMAGE"]),
        )
    )
    assert len(chunks) == 1
    assert final_image(chunks[0]) == final_image(generate(steady_client, "A kite"))


def test_base_url_from_environment_redirects_the_sdk(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emu.url)
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)
    client = genai.Client(api_key="test-key")
    try:
        final_image(generate(client))
    finally:
        client.close()
    assert emu.api_calls()[0]["api_version"] == "v1"


# --------------------------------------------------------------------------- text answers


def test_text_request_reads_back_the_text_drawn_in_an_emulator_image(
    shared_client: genai.Client,
) -> None:
    drawn = final_image(generate(shared_client, "Bold headline: HELLO"))
    answer = shared_client.models.generate_content(
        model=MODEL,
        contents=[
            "Transcribe the text in this image.",
            types.Part.from_bytes(data=drawn, mime_type="image/png"),
        ],
        config=types.GenerateContentConfig(response_modalities=["TEXT"]),
    )
    assert answer.text == "Bold headline: HELLO"


def test_a_later_take_reads_back_the_same_text(client: genai.Client) -> None:
    generate(client, "Bold headline: HELLO")
    again = final_image(generate(client, "Bold headline: HELLO"))
    with Image.open(io.BytesIO(again)) as im:  # the SDK re-encodes: read back by the stripe
        answer = client.models.generate_content(
            model=MODEL,
            contents=["Transcribe the text in this image.", im.convert("RGB")],
            config=types.GenerateContentConfig(response_modalities=["TEXT"]),
        )
    assert answer.text == "Bold headline: HELLO"


def test_read_back_survives_the_sdk_re_encoding_a_pil_image(shared_client: genai.Client) -> None:
    drawn = final_image(generate(shared_client, "Re-encoded text"))
    with Image.open(io.BytesIO(drawn)) as im:
        answer = shared_client.models.generate_content(
            model=MODEL,
            contents=["Transcribe the text in this image.", im.convert("RGB")],
            config=types.GenerateContentConfig(response_modalities=["TEXT"]),
        )
    assert answer.text == "Re-encoded text"


def test_text_request_about_other_images_gets_a_deterministic_text(
    shared_client: genai.Client,
) -> None:
    def ask() -> str | None:
        return shared_client.models.generate_content(
            model=MODEL,
            contents=["Describe this.", types.Part.from_bytes(data=RED, mime_type="image/png")],
            config=types.GenerateContentConfig(response_modalities=["TEXT"]),
        ).text

    first = ask()
    assert first and first == ask()


# --------------------------------------------------------------------------- errors


def test_unknown_model_is_404_not_found(shared_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        generate(shared_client, model="gemini-9-imaginary")
    assert caught.value.code == 404
    assert caught.value.status == "NOT_FOUND"
    assert caught.value.message
    assert "models/gemini-9-imaginary is not found for API version v1" in caught.value.message


def test_extra_models_are_served(
    start_emulator: Callable[..., Emulator], connect: Callable[..., genai.Client]
) -> None:
    client = connect(start_emulator(extra_models=["gemini-4-image-preview"]))
    assert final_image(generate(client, model="gemini-4-image-preview", image_size="4K"))


@pytest.mark.parametrize(
    ("model", "request_args", "fragment"),
    [
        (MODEL, {"aspect_ratio": "7:3"}, "Unsupported aspect ratio '7:3'"),
        ("gemini-3-pro-image", {"aspect_ratio": "8:1"}, "Supported values: 1:1"),
        (MODEL, {"image_size": "1k"}, "use an uppercase K ('1K')"),
        (MODEL, {"image_size": "8K"}, "Unsupported image_size '8K'"),
        ("gemini-3-pro-image", {"image_size": "512"}, "Unsupported image_size '512'"),
        (LEGACY, {"image_size": "1K"}, "image_size is not supported"),
        (LEGACY, {"images": (RED,) * 4}, "at most 3 images"),
        (MODEL, {"prompt": ""}, "contents is not specified"),
    ],
    ids=[
        "ratio",
        "ratio-for-model",
        "lowercase-k",
        "size",
        "size-for-model",
        "fixed-size",
        "too-many-images",
        "empty",
    ],
)
def test_invalid_request_is_400_invalid_argument_with_a_helpful_message(
    shared_client: genai.Client, model: str, request_args: dict[str, Any], fragment: str
) -> None:
    args = dict(request_args)
    with pytest.raises(errors.ClientError) as caught:
        generate(shared_client, args.pop("prompt", "A cat"), model=model, **args)
    assert caught.value.code == 400
    assert caught.value.status == "INVALID_ARGUMENT"
    assert fragment in (caught.value.message or "")


def test_wrong_api_key_is_400_when_a_key_is_required(
    start_emulator: Callable[..., Emulator], connect: Callable[..., genai.Client]
) -> None:
    emulator = start_emulator(api_key="the-right-key")
    assert final_image(generate(connect(emulator, api_key="the-right-key")))
    with pytest.raises(errors.ClientError) as caught:
        generate(connect(emulator, api_key="a-wrong-key"))
    assert caught.value.code == 400
    assert caught.value.message == "API key not valid. Please pass a valid API key."
    assert "a-wrong-key" not in str(caught.value.details)


# --------------------------------------------------------------------------- faults


def test_429_carries_retry_info(
    start_emulator: Callable[..., Emulator], connect: Callable[..., genai.Client]
) -> None:
    emulator = start_emulator(faults=Faults(retry_delay=7))
    emulator.faults.push("429")
    with pytest.raises(errors.ClientError) as caught:
        generate(connect(emulator))
    assert caught.value.code == 429
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    (detail,) = caught.value.details["error"]["details"]
    assert detail == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}


@pytest.mark.parametrize(("fault", "status"), [("500", "INTERNAL"), ("503", "UNAVAILABLE")])
def test_server_faults_raise_server_error(
    emu: Emulator, client: genai.Client, fault: str, status: str
) -> None:
    emu.faults.push(fault)
    with pytest.raises(errors.ServerError) as caught:
        generate(client)
    assert caught.value.code == int(fault)
    assert caught.value.status == status


def test_image_safety_gives_finish_reason_and_no_image(emu: Emulator, client: genai.Client) -> None:
    emu.faults.push("image_safety")
    response = generate(client)
    assert response.candidates and response.candidates[0].finish_reason == "IMAGE_SAFETY"
    assert not [p for p in response.parts or [] if p.inline_data]


@pytest.mark.parametrize(
    ("fault", "reason"), [("prohibited", "PROHIBITED_CONTENT"), ("no_image", "NO_IMAGE")]
)
def test_no_content_faults_give_finish_reason_and_no_parts(
    emu: Emulator, client: genai.Client, fault: str, reason: str
) -> None:
    emu.faults.push(fault)
    response = generate(client)
    assert response.candidates and response.candidates[0].finish_reason == reason
    assert response.parts is None


def test_text_only_fault_is_a_stop_with_only_a_refusal(emu: Emulator, client: genai.Client) -> None:
    emu.faults.push("text_only")
    response = generate(client)
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.parts and all(p.text and not p.inline_data for p in response.parts)


def test_blocked_fault_has_block_reason_and_no_candidates(
    emu: Emulator, client: genai.Client
) -> None:
    emu.faults.push("blocked")
    response = generate(client)
    assert response.prompt_feedback is not None
    assert response.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert not response.candidates


def test_hang_times_the_client_out_and_stop_does_not_wait_for_it(
    emu: Emulator, connect: Callable[..., genai.Client]
) -> None:
    client = connect(emu, timeout=200)
    with pytest.raises(httpx2.TimeoutException):
        generate(client, "Slow [[emulator:hang]]")
    began = time.monotonic()
    emu.stop()
    assert time.monotonic() - began < 2


def test_marker_in_the_prompt_triggers_its_fault_every_time(
    emu: Emulator, client: genai.Client
) -> None:
    for _ in range(2):
        response = generate(client, "A statue [[emulator:image_safety]]")
        assert response.candidates and response.candidates[0].finish_reason == "IMAGE_SAFETY"
    assert [r["fault_source"] for r in emu.api_calls()] == ["marker", "marker"]


def test_unknown_marker_is_400(shared_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        generate(shared_client, "[[emulator:gremlins]]")
    assert caught.value.code == 400


def test_pushed_faults_apply_in_order_then_requests_succeed(
    emu: Emulator, client: genai.Client
) -> None:
    emu.faults.push("503")
    emu.faults.push("no_image", count=2)
    with pytest.raises(errors.ServerError):
        generate(client)
    assert generate(client).parts is None
    assert generate(client).parts is None
    assert final_image(generate(client))
    assert [r["fault"] for r in emu.api_calls()] == ["503", "no_image", "no_image", None]


def test_marker_takes_priority_over_the_queue(emu: Emulator, client: genai.Client) -> None:
    emu.faults.push("429")
    assert generate(client, "[[emulator:blocked]]").prompt_feedback is not None
    with pytest.raises(errors.ClientError):
        generate(client)


def fault_sequence(emulator: Emulator, client: genai.Client, count: int) -> list[str | None]:
    for i in range(count):
        with contextlib.suppress(errors.APIError):
            generate(client, f"Request {i}")
    return [r["fault"] for r in emulator.api_calls()]


def test_fault_rates_are_reproducible_with_a_seed(
    start_emulator: Callable[..., Emulator], connect: Callable[..., genai.Client]
) -> None:
    def run(seed: int) -> list[str | None]:
        emulator = start_emulator(faults=Faults(rates={"429": 0.3, "blocked": 0.3}, seed=seed))
        return fault_sequence(emulator, connect(emulator), 24)

    first = run(seed=5)
    assert run(seed=5) == first
    assert {"429", "blocked", None} == set(first)
    assert run(seed=6) != first


def test_latency_lets_concurrent_requests_overlap(
    start_emulator: Callable[..., Emulator], connect: Callable[..., genai.Client]
) -> None:
    emulator = start_emulator(faults=Faults(latency=0.5))
    client = connect(emulator)
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda i: generate(client, f"Image {i}"), range(32)))
    records = emulator.api_calls()
    assert len(records) == 32
    assert all(r["finished"] - r["started"] >= 0.5 for r in records)
    # every request started before any finished: all 32 were in flight at once
    assert max(r["started"] for r in records) < min(r["finished"] for r in records)


# --------------------------------------------------------------------------- other endpoints


def test_count_tokens_through_the_sdk(shared_client: genai.Client) -> None:
    result = shared_client.models.count_tokens(
        model=MODEL,
        contents=["twelve chars", types.Part.from_bytes(data=RED, mime_type="image/png")],
    )
    assert result.total_tokens == 3 + known_models()[MODEL].input_image_tokens


def test_get_model_through_the_sdk(shared_client: genai.Client) -> None:
    model = shared_client.models.get(model=MODEL)
    assert model.name == f"models/{MODEL}"
    assert model.input_token_limit == 65536
    assert model.output_token_limit == 32768
    assert model.supported_actions == ["generateContent", "countTokens"]


def test_get_unknown_model_is_404(shared_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        shared_client.models.get(model="gemini-0-nothing")
    assert caught.value.code == 404


# --------------------------------------------------------------------------- the log


def test_log_file_has_one_json_line_per_request_and_never_the_key(
    start_emulator: Callable[..., Emulator], connect: Callable[..., genai.Client], tmp_path: Path
) -> None:
    log = tmp_path / "requests.jsonl"
    emulator = start_emulator(log_path=log)
    client = connect(emulator, api_key="sk-very-secret-key")
    generate(client, "Logged", images=(RED,))
    client.models.count_tokens(model=MODEL, contents="hi")
    client.models.get(model=MODEL)
    emulator.stop()
    text = log.read_text(encoding="utf-8")
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["endpoint"] for r in records] == ["generateContent", "countTokens", "getModel"]
    assert all(r["api_key_present"] is True for r in records)
    assert "sk-very-secret-key" not in text
    assert records == emulator.requests


def test_log_records_describe_the_request_without_image_bytes(
    emu: Emulator, client: genai.Client
) -> None:
    generate(client, "Described", images=(RED,), aspect_ratio="4:3", system_instruction="Be bold")
    (record,) = emu.requests
    assert record["prompt"] == "Described"
    assert record["system"] == "Be bold"
    assert record["model"] == MODEL
    assert record["status"] == 200
    assert record["generation_config"]["image_config"] == {"aspect_ratio": "4:3"}
    assert record["started"] <= record["finished"]
    assert "iVBOR" not in json.dumps(record)  # no base64 PNG anywhere


def test_public_api() -> None:
    assert set(gemflow.emulator.__all__) == {"FAULT_NAMES", "Emulator", "Faults"}
