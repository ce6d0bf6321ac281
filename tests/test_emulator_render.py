"""Deterministic pictures and fault selection: the emulator's pure parts, without a server."""

from __future__ import annotations

import hashlib
import io
import json
import statistics
import time

import pytest
from PIL import Image, ImageChops

from gemflow.emulator import FAULT_NAMES, Faults
from gemflow.emulator.render import (
    TEXT_CHUNK,
    Scene,
    embedded_text,
    nearest_ratio,
    pixel_size,
    read_mark,
    render,
    render_thought,
)
from gemflow.models import known_models


def scene(**changes: object) -> Scene:
    fields: dict[str, object] = {
        "model": "gemini-3.1-flash-image",
        "texts": ("A lighthouse at dusk",),
        "system": None,
        "images": (),
        "aspect_ratio": "1:1",
        "image_size": "1K",
    }
    fields.update(changes)
    return Scene(**fields)  # type: ignore[arg-type]


def solid_png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(out, "PNG")
    return out.getvalue()


RED_PNG = solid_png((255, 0, 0))


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("ratio", "size", "expected"),
    [
        ("1:1", "1K", (1024, 1024)),
        ("1:1", "512", (512, 512)),
        ("16:9", "1K", (1360, 768)),
        ("9:16", "1K", (768, 1360)),
        ("4:3", "2K", (2368, 1776)),
        ("1:1", "4K", (4096, 4096)),
    ],
)
def test_pixel_size_table(ratio: str, size: str, expected: tuple[int, int]) -> None:
    assert pixel_size(ratio, size) == expected


@pytest.mark.parametrize("size", ["512", "1K", "2K", "4K"])
@pytest.mark.parametrize("ratio", known_models()["gemini-3.1-flash-image"].ratios)
def test_every_ratio_gives_sides_of_16_with_the_right_shape_and_area(ratio: str, size: str) -> None:
    width, height = pixel_size(ratio, size)
    rw, rh = map(int, ratio.split(":"))
    base = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}[size]
    assert width % 16 == 0
    assert height % 16 == 0
    assert width / height == pytest.approx(rw / rh, rel=0.05)
    assert width * height == pytest.approx(base * base, rel=0.05)


def test_scale_multiplies_sides_but_keeps_at_least_16_pixels() -> None:
    assert pixel_size("1:1", "1K", 0.5) == (512, 512)
    assert pixel_size("8:1", "512", 0.01) == (16, 16)


def test_nearest_ratio_picks_the_closest_supported_shape() -> None:
    ratios = ("1:1", "4:3", "16:9", "9:16")
    assert nearest_ratio(1920, 1080, ratios) == "16:9"
    assert nearest_ratio(1000, 990, ratios) == "1:1"
    assert nearest_ratio(600, 1000, ratios) == "9:16"


# --------------------------------------------------------------------------- pictures


def test_render_is_a_pure_function_of_the_scene() -> None:
    assert render(scene()).png == render(scene()).png


@pytest.mark.parametrize(
    "change",
    [
        {"texts": ("A lighthouse at dawn",)},
        {"texts": ("A lighthouse", "at dusk")},
        {"system": "Watercolour"},
        {"images": (b"one",)},
        {"seed": 1},
        {"temperature": 0.0},
        {"model": "gemini-3-pro-image"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_any_scene_change_changes_the_png(change: dict[str, object]) -> None:
    assert render(scene(**change), 0.1).png != render(scene(), 0.1).png


def test_input_order_matters() -> None:
    assert (
        render(scene(images=(b"a", b"b")), 0.1).png != render(scene(images=(b"b", b"a")), 0.1).png
    )


def test_png_text_chunk_holds_the_whole_prompt_even_when_the_drawing_is_cut() -> None:
    prompt = "word " * 2000
    data = render(scene(texts=(prompt,)), 0.25).png
    assert embedded_text(data) == prompt
    with Image.open(io.BytesIO(data)) as im:
        assert im.info[TEXT_CHUNK] == prompt


def test_png_has_no_timestamp_chunk() -> None:
    assert b"tIME" not in render(scene(), 0.1).png


def test_foreign_images_have_no_embedded_text() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG")
    assert embedded_text(out.getvalue()) is None
    assert embedded_text(b"not an image") is None


def test_colour_stripe_survives_lossless_re_encoding() -> None:
    picture = render(scene(), 0.25).png
    out = io.BytesIO()
    with Image.open(io.BytesIO(picture)) as im:
        im.convert("RGB").save(out, "PNG")
    assert read_mark(out.getvalue()) == scene().mark


# --------------------------------------------------------------------------- marks and takes


def pixels(png: bytes) -> Image.Image:
    with Image.open(io.BytesIO(png)) as im:
        return im.convert("RGB")


def changed_box(a: bytes, b: bytes) -> tuple[int, int, int, int] | None:
    return ImageChops.difference(pixels(a), pixels(b)).getbbox()


def test_the_mark_says_model_ratio_size_and_take() -> None:
    assert scene().label == "gemini-3.1-flash-image · 1:1 · 1K · take 1"
    assert scene(take=3, aspect_ratio="16:9").label.endswith(" · 16:9 · 1K · take 3")


def test_a_seeded_scene_s_mark_says_its_seed() -> None:
    assert scene(seed=7).label == "gemini-3.1-flash-image · 1:1 · 1K · seed 7"


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_the_mark_is_drawn_small_in_the_bottom_right_corner_only(scale: float) -> None:
    marked, unmarked = render(scene(), scale).png, render(scene(), scale, marked=False).png
    width, height = pixel_size("1:1", "1K", scale)

    box = changed_box(marked, unmarked)
    assert box is not None
    left, top, right, bottom = box
    assert left > width // 3 and top > height * 0.9  # small, at the bottom, on the right
    assert right > width * 0.95 and bottom > height * 0.95


def test_the_mark_stays_off_the_input_thumbnails_of_a_small_picture() -> None:
    edit = scene(images=(RED_PNG,))
    marked, unmarked = render(edit, 0.125).png, render(edit, 0.125, marked=False).png
    height = pixel_size("1:1", "1K", 0.125)[1]

    box = changed_box(marked, unmarked)
    assert box is not None
    assert box[3] <= height - height // 5  # ends above the thumbnail band
    assert (255, 0, 0) in {colour for _, colour in pixels(marked).getcolors(1 << 16) or []}


def test_the_mark_does_not_change_what_is_read_back() -> None:
    data = render(scene(texts=("HELLO",), take=2), 0.25).png

    assert embedded_text(data) == "HELLO"
    assert read_mark(data) == scene(texts=("HELLO",), take=2).mark


def test_the_first_take_keeps_the_digest_scenes_always_had() -> None:
    canonical = {
        "model": "gemini-3.1-flash-image",
        "texts": ["A lighthouse at dusk"],
        "system": None,
        "images": [],
        "aspect_ratio": "1:1",
        "image_size": "1K",
        "temperature": None,
        "seed": None,
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    assert scene(take=1).digest == hashlib.sha256(blob.encode()).digest()


def test_a_later_take_is_another_picture_with_other_colours() -> None:
    first, second = render(scene(), 0.25).png, render(scene(take=2), 0.25).png

    assert pixels(first).getpixel((5, 30)) != pixels(second).getpixel((5, 30))
    assert read_mark(first) != read_mark(second)


def test_the_thought_image_has_no_mark() -> None:
    with Image.open(io.BytesIO(render_thought(scene(take=2), 1.0))) as thought:
        _, highest = thought.getextrema()  # palette indices: 15 is the ink of any text
    assert highest < 8


def test_undecodable_inputs_still_render() -> None:
    assert render(scene(images=(b"junk",)), 0.1).png.startswith(b"\x89PNG")


def test_rendering_a_1k_image_is_fast() -> None:
    """A generous guard (measured ~5-10 ms): catches e.g. RGB output or a high zlib level."""
    render(scene())
    timings = []
    for i in range(5):
        began = time.perf_counter()
        render(scene(seed=i))
        timings.append(time.perf_counter() - began)
    assert statistics.median(timings) < 0.1


# --------------------------------------------------------------------------- faults


def test_parse_reads_rates() -> None:
    assert Faults.parse("429=0.1, 503=0.05,image_safety=0") == {
        "429": 0.1,
        "503": 0.05,
        "image_safety": 0.0,
    }
    assert Faults.parse("") == {}


@pytest.mark.parametrize(
    "spec",
    ["429", "429=abc", "418=0.1", "429=1.5", "429=-0.1", "429=0.6,503=0.6", "429=0.1,429=0.2"],
)
def test_parse_rejects_junk(spec: str) -> None:
    with pytest.raises(ValueError):
        Faults.parse(spec)


def test_push_rejects_unknown_faults() -> None:
    with pytest.raises(ValueError):
        Faults().push("gremlins")


def test_every_fault_name_can_be_forced() -> None:
    faults = Faults()
    for name in FAULT_NAMES:
        faults.push(name)
    assert [faults.choose("x") for _ in FAULT_NAMES] == [(name, "queue") for name in FAULT_NAMES]
    assert faults.choose("x") is None


def test_rate_draws_follow_the_seed() -> None:
    def draws(seed: int) -> list[tuple[str, str] | None]:
        faults = Faults(rates={"500": 0.5}, seed=seed)
        return [faults.choose("x") for _ in range(32)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    assert ("500", "rate") in draws(3)
    assert None in draws(3)
