"""The composite step kind: grid and layers layouts, their checks, references and recipe."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gemflow.errors import InputError
from gemflow.kinds.base import InputImage, RunContext
from gemflow.kinds.composite import Composite
from gemflow.workflow import Step

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)

KIND = Composite()


def png(color: tuple[int, ...], size: tuple[int, int] = (4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


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


def run(params: dict[str, Any], *inputs: InputImage, fmt: str = "png") -> Image.Image:
    output = KIND.run(step(params, fmt), list(inputs), RunContext())
    return Image.open(io.BytesIO(output.data))


GRID = {"images": ["a.png", "b.png"]}
LAYERS = {"base": "photo.png", "layers": [{"image": "logo.png", "x": 5, "y": 5}]}


# --- run --------------------------------------------------------------------------------------


def test_run_grid_puts_all_images_in_one_row_by_default():
    sheet = run(GRID, InputImage("a.png", png(RED)), InputImage("b.png", png(BLUE)))

    assert sheet.size == (8, 4)
    assert sheet.getpixel((1, 1)) == RED
    assert sheet.getpixel((5, 1)) == BLUE


def test_run_grid_uses_columns_gap_and_background():
    params = {**GRID, "columns": 1, "gap": 2, "background": "#0000ff"}

    sheet = run(params, InputImage("a.png", png(RED)), InputImage("b.png", png(RED)))

    assert sheet.size == (4, 10)
    assert sheet.getpixel((1, 4)) == BLUE


def test_run_grid_uses_the_cell_size():
    params = {**GRID, "cell_width": 2, "cell_height": 2}

    sheet = run(params, InputImage("a.png", png(RED)), InputImage("b.png", png(BLUE)))

    assert sheet.size == (4, 2)


def test_run_layers_places_each_layer_on_the_base():
    result = run(
        LAYERS, InputImage("photo.png", png(WHITE, (20, 20))), InputImage("logo.png", png(RED))
    )

    assert result.size == (20, 20)
    assert result.getpixel((5, 5)) == RED
    assert result.getpixel((4, 4)) == WHITE


def test_run_layers_applies_percent_position_anchor_size_and_opacity():
    layer = {
        "image": "logo.png",
        "x": "100%",
        "y": "100%",
        "anchor": "bottom-right",
        "width": 2,
        "opacity": 0.5,
    }
    params = {"base": "photo.png", "layers": [layer]}

    result = run(
        params, InputImage("photo.png", png(WHITE, (20, 20))), InputImage("logo.png", png(RED))
    )

    assert result.getpixel((19, 19)) in {(255, 127, 127), (255, 128, 128)}  # half red on white
    assert result.getpixel((17, 19)) == WHITE


def test_run_encodes_in_the_step_format():
    result = run(GRID, InputImage("a.png", png(RED)), InputImage("b.png", png(BLUE)), fmt="webp")

    assert result.format == "WEBP"


def test_run_reports_the_metadata_size():
    output = KIND.run(
        step(GRID), [InputImage("a", png(RED)), InputImage("b", png(RED))], RunContext()
    )

    assert output.meta == {"width": 8, "height": 4}


def test_run_refuses_an_unreadable_input_naming_its_reference():
    with pytest.raises(InputError, match=r"^photos/broken\.png: not a readable image"):
        run(GRID, InputImage("a.png", png(RED)), InputImage("photos/broken.png", b"nope"))


# --- check ------------------------------------------------------------------------------------


def test_check_accepts_a_grid():
    assert KIND.check({**GRID, "columns": 2, "gap": 4, "background": "transparent"}) == []


def test_check_accepts_layers():
    assert KIND.check(LAYERS) == []


def test_check_refuses_both_layouts_at_once():
    problems = KIND.check({**GRID, **LAYERS})

    assert problems == [(None, "use either 'images' (a grid) or 'base' with 'layers', not both")]


def test_check_refuses_a_step_with_neither_layout():
    problems = KIND.check({"gap": 2})

    assert problems == [
        (None, "needs 'images' (a grid) or 'base' with 'layers' (images placed on a base)")
    ]


def test_check_refuses_a_base_without_layers():
    assert KIND.check({"base": "photo.png"}) == [("layers", "'base' needs 'layers' to place on it")]


def test_check_refuses_layers_without_a_base():
    problems = KIND.check({"layers": LAYERS["layers"]})

    assert problems == [("base", "'layers' need a 'base' image to go on")]


def test_check_refuses_empty_layers():
    problems = KIND.check({"base": "photo.png", "layers": []})

    assert problems == [("layers", "'layers' is empty: give at least one layer")]


def test_check_refuses_grid_keys_in_the_layers_layout():
    problems = KIND.check({**LAYERS, "columns": 2})

    assert problems == [("columns", "'columns' only applies to a grid ('images'), not to layers")]


def test_check_refuses_an_unknown_background_colour():
    [(key, message)] = KIND.check({**GRID, "background": "blurple"})

    assert key == "background"
    assert message.startswith("not a colour: 'blurple'")


def test_check_suggests_the_layer_key_that_was_meant():
    layers = [{"image": "a.png"}, {"image": "b.png", "opcity": 0.5}]

    problems = KIND.check({"base": "photo.png", "layers": layers})

    assert problems == [("layers", "layers[1]: unknown key 'opcity' (did you mean 'opacity'?)")]


def test_check_requires_an_image_in_each_layer():
    problems = KIND.check({"base": "photo.png", "layers": [{"x": 5, "y": 5}]})

    assert problems == [("layers", "layers[0]: missing 'image' (a step id or a file path)")]


def test_check_refuses_a_layer_that_is_not_a_mapping():
    problems = KIND.check({"base": "photo.png", "layers": ["logo.png"]})

    assert problems == [
        ("layers", "layers[0]: must be a mapping like {image: logo.png, x: 10, y: 10}")
    ]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("x", 1.5, "'x' must be whole pixels or a percentage like '50%', not 1.5"),
        ("y", "middle", "'y' must be whole pixels or a percentage like '50%', not 'middle'"),
        ("width", 0, "'width' must be whole pixels (at least 1) or a percentage like '25%', not 0"),
        ("height", "0%", "'height' must be whole pixels (at least 1) or a percentage like '25%'"),
        ("opacity", 1.5, "'opacity' must be a number from 0 to 1, not 1.5"),
        ("opacity", True, "'opacity' must be a number from 0 to 1, not True"),
        ("anchor", "centre", "'anchor' must be one of top-left, top, top-right, left, center"),
        ("image", "", "'image' must be a step id or a file path, not ''"),
    ],
)
def test_check_refuses_bad_layer_values(key, value, expected):
    layer = {"image": "logo.png", key: value}

    [(problem_key, message)] = KIND.check({"base": "photo.png", "layers": [layer]})

    assert problem_key == "layers"
    assert message.startswith(f"layers[0]: {expected}")


def test_check_suggests_the_anchor_that_was_meant():
    layer = {"image": "logo.png", "anchor": "centre"}

    [(_, message)] = KIND.check({"base": "photo.png", "layers": [layer]})

    assert message.endswith("not 'centre' (did you mean 'center'?)")


def test_check_reports_every_problem_not_just_the_first():
    layers = [{"image": "a.png", "x": 1.5}, {"opacity": 2, "zoom": 3}]

    problems = KIND.check({"base": "photo.png", "layers": layers, "gap": 1})

    assert len(problems) == 5


def test_check_leaves_a_wrongly_typed_layers_key_to_the_field_check():
    assert KIND.check({"base": "photo.png", "layers": "logo.png"}) == []


# --- references and recipe --------------------------------------------------------------------


def test_references_are_the_grid_images_in_order():
    assert KIND.references({"images": ["c.png", "a.png", "b.png"]}) == ["c.png", "a.png", "b.png"]


def test_references_are_the_base_then_each_layer_image():
    params = {"base": "photo", "layers": [{"image": "logo.png"}, {"image": "badge"}]}

    assert KIND.references(params) == ["photo", "logo.png", "badge"]


def test_recipe_keeps_layer_geometry_without_the_image_reference():
    layer = {"opacity": 0.5, "image": "logo.png", "y": "10%", "x": 4}

    recipe = KIND.recipe({"base": "photo.png", "layers": [layer]})

    assert recipe == {"layers": [{"x": 4, "y": "10%", "opacity": 0.5}], "quality": 90}
    assert list(recipe["layers"][0]) == ["x", "y", "opacity"]


def test_recipe_does_not_change_when_a_layer_image_is_renamed():
    renamed = {"base": "photo.png", "layers": [{**LAYERS["layers"][0], "image": "brand.png"}]}

    assert KIND.recipe(renamed) == KIND.recipe(LAYERS)


def test_recipe_changes_when_a_layer_moves():
    moved = {"base": "photo.png", "layers": [{**LAYERS["layers"][0], "x": 6}]}

    assert KIND.recipe(moved) != KIND.recipe(LAYERS)


def test_recipe_reads_a_whole_number_opacity_as_the_same_float():
    opaque = {"base": "photo.png", "layers": [{"image": "logo.png", "opacity": 1}]}
    opaque_float = {"base": "photo.png", "layers": [{"image": "logo.png", "opacity": 1.0}]}

    assert repr(KIND.recipe(opaque)) == repr(KIND.recipe(opaque_float))


def test_recipe_does_not_change_when_grid_images_are_renamed():
    assert KIND.recipe({"images": ["x.png", "y.png"], "gap": 2}) == KIND.recipe({**GRID, "gap": 2})


def test_recipe_changes_with_grid_geometry():
    assert KIND.recipe({**GRID, "gap": 2}) != KIND.recipe({**GRID, "gap": 3})


def test_recipe_ignores_the_description():
    assert KIND.recipe({**LAYERS, "description": "logo bottom right"}) == KIND.recipe(LAYERS)
