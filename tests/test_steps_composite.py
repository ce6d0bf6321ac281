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


def big_inputs(*refs: str, size: tuple[int, int] = (256, 160)) -> list[InputImage]:
    return [InputImage(ref, png(RED if i % 2 else BLUE, size)) for i, ref in enumerate(refs)]


LABELLED = {"images": ["a.png", "b.png"], "labels": True}


def test_run_labelled_grid_adds_a_caption_band_under_each_row():
    plain = run(GRID, *big_inputs("a.png", "b.png"))
    labelled = run(LABELLED, *big_inputs("a.png", "b.png"))

    band = labelled.height - plain.height
    assert labelled.width == plain.width
    assert 10 <= band <= 40  # sized to the 160 px cells
    assert labelled.crop((0, 0, *plain.size)).tobytes() == plain.tobytes()  # pictures untouched
    assert labelled.crop((0, plain.height, labelled.width, labelled.height)).getcolors() != [
        (labelled.width * band, WHITE)
    ]  # something is written in the band


def test_run_labelled_grid_gives_every_row_its_band_before_the_gap():
    params = {"images": ["a", "b", "c", "d"], "columns": 2, "gap": 6}
    plain = run(params, *big_inputs("a", "b", "c", "d"))
    labelled = run({**params, "labels": True}, *big_inputs("a", "b", "c", "d"))

    band = (labelled.height - plain.height) // 2
    assert labelled.height == plain.height + 2 * band
    assert labelled.getpixel((10, 160 + band + 6 + 1)) == BLUE  # second row starts after band+gap


def test_run_labelled_grid_scales_the_band_with_the_cells():
    def band(size: tuple[int, int]) -> int:
        plain = run(GRID, *big_inputs("a", "b", size=size))
        return run(LABELLED, *big_inputs("a", "b", size=size)).height - plain.height

    assert band((1024, 1024)) > 3 * band((128, 128))


def test_run_labels_false_draws_the_plain_grid():
    plain = run(GRID, *big_inputs("a.png", "b.png"))

    assert run({**GRID, "labels": False}, *big_inputs("a.png", "b.png")).tobytes() == (
        plain.tobytes()
    )


def test_run_labels_differ_with_the_captions():
    one = run(LABELLED, *big_inputs("a.png", "b.png"))
    other = run({**LABELLED, "images": ["x.png", "y.png"]}, *big_inputs("x.png", "y.png"))

    assert one.size == other.size
    assert one.tobytes() != other.tobytes()


def test_run_title_adds_a_band_above_the_grid():
    plain = run(GRID, *big_inputs("a.png", "b.png"))
    titled = run({**GRID, "title": "Pancakes"}, *big_inputs("a.png", "b.png"))

    heading = titled.height - plain.height
    assert heading > 0
    assert titled.crop((0, heading, *titled.size)).tobytes() == plain.tobytes()
    assert titled.crop((0, 0, titled.width, heading)).getcolors() != [
        (titled.width * heading, WHITE)
    ]


def test_run_labels_and_title_keep_a_transparent_background():
    params = {**LABELLED, "title": "T", "background": "transparent", "gap": 4}

    sheet = run(params, *big_inputs("a.png", "b.png"))

    assert sheet.mode == "RGBA"
    assert sheet.getpixel((257, sheet.height // 2))[3] == 0  # the gap between cells stays clear


@pytest.mark.parametrize("fmt", ["png", "webp", "jpeg"])
def test_run_labelled_grid_in_every_format(fmt):
    sheet = run({**LABELLED, "title": "T"}, *big_inputs("a.png", "b.png"), fmt=fmt)

    assert sheet.width == 512


def test_run_labels_cells_even_when_they_are_tiny():
    sheet = run(LABELLED, InputImage("a.png", png(RED)), InputImage("b.png", png(BLUE)))

    assert sheet.width == 8
    assert sheet.height > 4


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


def test_check_accepts_labels_and_a_title_on_a_grid():
    assert KIND.check({**GRID, "labels": True, "title": "Pancakes by model"}) == []


@pytest.mark.parametrize("key", ["labels", "title"])
def test_check_refuses_labels_and_title_on_layers(key):
    problems = KIND.check({**LAYERS, key: "T" if key == "title" else True})

    assert problems == [(key, f"'{key}' only applies to a grid ('images'), not to layers")]


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ("  ", "'title' is empty: give the heading's text, or leave 'title' out"),
        ("one\ntwo", "'title' must be one line"),
    ],
)
def test_check_refuses_an_empty_or_multi_line_title(title, message):
    assert KIND.check({**GRID, "title": title}) == [("title", message)]


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


def test_recipe_without_labels_or_title_is_unchanged():
    assert KIND.recipe(GRID) == {"columns": 2, "gap": 0, "background": "white", "quality": 90}


def test_recipe_with_labels_false_is_the_recipe_without_labels():
    assert KIND.recipe({**GRID, "labels": False}) == KIND.recipe(GRID)


def test_recipe_with_labels_holds_the_captions():
    refs = ["cake[model=pro,variant=1]", "cake[model=pro,variant=2]"]

    recipe = KIND.recipe({"images": refs, "labels": True})

    assert recipe["captions"] == ["variant=1", "variant=2"]
    assert "labels" not in recipe


def test_recipe_with_labels_changes_when_a_caption_would():
    assert KIND.recipe({**LABELLED, "images": ["x.png", "y.png"]}) != KIND.recipe(LABELLED)


def test_recipe_holds_the_title_as_drawn():
    assert KIND.recipe({**GRID, "title": " Pancakes  by model "})["title"] == "Pancakes by model"
    assert KIND.recipe({**GRID, "title": "Pancakes"}) != KIND.recipe(GRID)
