"""The resize step kind: running, checks, references and recipe."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gemflow.errors import InputError
from gemflow.kinds.base import InputImage, RunContext
from gemflow.kinds.resize import Resize
from gemflow.workflow import Step

KIND = Resize()


def photo(size: tuple[int, int] = (100, 50)) -> InputImage:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, "PNG")
    return InputImage("photo.png", buffer.getvalue())


def step(params: dict[str, Any], fmt: str = "png") -> Step:
    return Step(
        id="x",
        kind=KIND,
        params=params,
        refs=(),
        output=Path("/tmp/out/x.png"),
        output_rel="out/x.png",
        format=fmt,
        line=1,
    )


def run(params: dict[str, Any], source: InputImage, fmt: str = "png") -> Image.Image:
    output = KIND.run(step({"image": "photo.png", **params}, fmt), [source], RunContext())
    return Image.open(io.BytesIO(output.data))


# --- run --------------------------------------------------------------------------------------


def test_run_contains_by_default():
    assert run({"width": 40, "height": 40}, photo()).size == (40, 20)


def test_run_with_only_a_width_keeps_the_aspect():
    assert run({"width": 50}, photo()).size == (50, 25)


def test_run_cover_fills_the_box_exactly():
    assert run({"width": 40, "height": 40, "fit": "cover"}, photo()).size == (40, 40)


def test_run_exact_stretches_to_the_box():
    assert run({"width": 30, "height": 70, "fit": "exact"}, photo()).size == (30, 70)


def test_run_encodes_in_the_step_format_with_its_quality():
    result = run({"width": 10, "quality": 50}, photo(), fmt="jpeg")

    assert result.format == "JPEG"


def test_run_reports_the_output_size_in_meta():
    output = KIND.run(step({"image": "photo.png", "height": 10}), [photo()], RunContext())

    assert output.meta == {"width": 20, "height": 10}


def test_run_refuses_an_unreadable_input_naming_its_reference():
    with pytest.raises(InputError, match=r"^shots/cat\.jpg: not a readable image"):
        run({"width": 10}, InputImage("shots/cat.jpg", b"\x00\x01garbage"))


# --- check ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{"width": 10}, {"height": 10}, {"width": 10, "height": 10, "fit": "cover"}],
)
def test_check_accepts_a_usable_size(params):
    assert KIND.check({"image": "photo.png", **params}) == []


def test_check_needs_a_width_or_a_height():
    assert KIND.check({"image": "photo.png"}) == [(None, "needs 'width', 'height' or both")]


@pytest.mark.parametrize("fit", ["cover", "exact"])
def test_check_cover_and_exact_need_both_width_and_height(fit):
    problems = KIND.check({"image": "photo.png", "width": 10, "fit": fit})

    assert problems == [("fit", f"fit '{fit}' needs both 'width' and 'height'")]


# --- references and recipe --------------------------------------------------------------------


def test_references_are_the_image():
    assert KIND.references({"image": "photo.png", "width": 10}) == ["photo.png"]


def test_recipe_holds_the_geometry_but_not_the_image_reference():
    recipe = KIND.recipe({"image": "photo.png", "width": 10, "fit": "contain"})

    assert recipe == {"width": 10, "fit": "contain", "quality": 90}


def test_recipe_changes_with_the_size():
    assert KIND.recipe({"image": "a", "width": 10}) != KIND.recipe({"image": "a", "width": 11})


def test_recipe_ignores_the_description_and_the_image_name():
    plain = KIND.recipe({"image": "a.png", "width": 10})

    assert KIND.recipe({"image": "b.png", "width": 10, "description": "thumb"}) == plain
