"""gemflow.imaging.operations: decoding, encoding, colours, grids, layers and resizing."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gemflow.errors import InputError
from gemflow.imaging.operations import (
    Layer,
    Lettering,
    encode,
    grid,
    open_image,
    parse_color,
    place_layers,
    resize,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
YELLOW = (255, 255, 0)


def saved(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def solid(
    color: tuple[int, ...] | int, size: tuple[int, int] = (10, 10), mode: str = "RGB"
) -> Image.Image:
    return Image.new(mode, size, color)


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


# --- open_image: normalisation ----------------------------------------------------------------


def test_open_image_converts_cmyk_to_rgb():
    data = saved(solid((0, 255, 255, 0), mode="CMYK"), "TIFF")

    image = open_image(data, source="cmyk.tif")

    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == RED


def test_open_image_scales_16_bit_grayscale_down_instead_of_clipping():
    sixteen = Image.new("I;16", (2, 2))
    sixteen.putpixel((0, 0), 32768)  # half of full scale, which a plain convert clips to 255

    image = open_image(saved(sixteen), source="deep.png")

    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (128, 128, 128)


def test_open_image_turns_palette_transparency_into_alpha():
    palette = Image.new("P", (2, 1))
    palette.putpalette([*RED, *BLUE])
    palette.putpixel((1, 0), 1)

    image = open_image(saved(palette, transparency=1), source="icon.png")

    assert image.mode == "RGBA"
    assert image.getpixel((0, 0)) == (*RED, 255)
    assert image.getpixel((1, 0))[3] == 0


def test_open_image_turns_grayscale_with_alpha_into_rgba():
    image = open_image(saved(solid((200, 100), mode="LA")), source="la.png")

    assert image.mode == "RGBA"
    assert image.getpixel((0, 0)) == (200, 200, 200, 100)


@pytest.mark.parametrize(("mode", "value", "expected"), [("L", 77, 77), ("1", 1, 255)])
def test_open_image_turns_opaque_grayscale_into_rgb(mode, value, expected):
    image = open_image(saved(solid(value, mode=mode)), source="gray.png")

    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (expected, expected, expected)


def test_open_image_takes_the_first_frame_of_an_animation():
    first, second = solid(RED), solid(BLUE)
    data = saved(first, "GIF", save_all=True, append_images=[second], duration=100)

    image = open_image(data, source="anim.gif")

    assert close_to(image.getpixel((5, 5)), RED)


def test_open_image_applies_exif_orientation():
    landscape = Image.new("RGB", (32, 16), RED)
    landscape.paste(BLUE, (16, 0, 32, 16))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"

    image = open_image(saved(landscape, "JPEG", exif=exif), source="phone.jpg")

    assert image.size == (16, 32)
    assert close_to(image.getpixel((8, 4)), RED, tolerance=30)  # the left edge is now the top
    assert close_to(image.getpixel((8, 28)), BLUE, tolerance=30)


def test_open_image_drops_metadata():
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"

    image = open_image(saved(solid(RED), "JPEG", exif=exif), source="photo.jpg")

    assert image.info == {}


# --- open_image: refusals ---------------------------------------------------------------------


def test_open_image_refuses_bytes_that_are_not_an_image():
    with pytest.raises(InputError) as error:
        open_image(b"hello, not a picture", source="photos/me.jpg")

    assert str(error.value) == "photos/me.jpg: not a readable image (cannot identify image file)"


def test_open_image_refuses_a_truncated_image():
    data = saved(Image.effect_noise((64, 64), 50).convert("RGB"))

    with pytest.raises(InputError, match=r"^photos/cut\.png: not a readable image \("):
        open_image(data[: len(data) // 2], source="photos/cut.png")


def test_open_image_refuses_an_empty_file():
    with pytest.raises(InputError) as error:
        open_image(b"", source="photos/empty.png")

    assert str(error.value) == "photos/empty.png: not a readable image (the file is empty)"


def test_open_image_refuses_formats_outside_the_usual_photo_formats():
    with pytest.raises(InputError, match=r"^old\.tga: not a readable image"):
        open_image(saved(solid(RED), "TGA"), source="old.tga")


def test_open_image_refuses_an_image_over_twice_the_pixel_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

    with pytest.raises(InputError) as error:
        open_image(saved(solid(RED, (20, 20))), source="huge.png")

    assert str(error.value) == "huge.png: image is too large (400 pixels; the limit is 100)"


def test_open_image_refuses_an_image_between_the_limit_and_twice_the_limit(monkeypatch):
    # Pillow only warns in this band; gemflow refuses it all the same.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

    with pytest.raises(InputError) as error:
        open_image(saved(solid(RED, (15, 10))), source="big.png")

    assert str(error.value) == "big.png: image is too large (150 pixels; the limit is 100)"


def test_open_image_errors_keep_the_pillow_error_as_their_cause():
    with pytest.raises(InputError) as error:
        open_image(b"not an image", source="x.png")

    assert isinstance(error.value.__cause__, Image.UnidentifiedImageError)


# --- encode -----------------------------------------------------------------------------------


FORMATS = [("png", "PNG"), ("webp", "WEBP"), ("jpeg", "JPEG")]


@pytest.mark.parametrize(("fmt", "pillow_name"), FORMATS)
def test_encode_gives_the_same_bytes_for_the_same_picture(fmt, pillow_name):
    picture = Image.effect_noise((32, 32), 40).convert("RGB")
    same_picture = open_image(saved(picture), source="again.png")

    first, second = encode(picture, fmt), encode(same_picture, fmt)

    assert first == second
    assert Image.open(io.BytesIO(first)).format == pillow_name


def test_encode_writes_no_metadata():
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    with_exif = Image.open(io.BytesIO(saved(solid(RED), "JPEG", exif=exif)))

    for fmt in ("png", "webp", "jpeg"):
        assert not Image.open(io.BytesIO(encode(with_exif, fmt))).getexif()


def test_encode_jpeg_flattens_transparency_onto_white():
    data = encode(solid((0, 0, 0, 0), mode="RGBA"), "jpeg")

    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == "RGB"
    assert close_to(decoded.getpixel((5, 5)), WHITE)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_encode_keeps_transparency_in_png_and_webp(fmt):
    decoded = Image.open(io.BytesIO(encode(solid((*RED, 0), mode="RGBA"), fmt)))

    assert decoded.mode == "RGBA"
    assert decoded.getpixel((5, 5))[3] == 0


def test_encode_quality_trades_size_for_fidelity():
    picture = Image.effect_noise((64, 64), 60).convert("RGB")

    assert len(encode(picture, "jpeg", quality=20)) < len(encode(picture, "jpeg", quality=95))


def test_encode_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="unknown image format 'gif'"):
        encode(solid(RED), "gif")


# --- parse_color ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rgba"),
    [
        ("white", (255, 255, 255, 255)),
        ("  Navy ", (0, 0, 128, 255)),
        ("#f00", (255, 0, 0, 255)),
        ("#336699", (51, 102, 153, 255)),
        ("#33669980", (51, 102, 153, 128)),
        ("transparent", (0, 0, 0, 0)),
    ],
)
def test_parse_color_reads_names_hex_and_transparent(text, rgba):
    assert parse_color(text) == rgba


def test_parse_color_refuses_an_unknown_colour_with_examples():
    with pytest.raises(ValueError, match=r"not a colour: 'blurple' \(use a name like 'white'"):
        parse_color("blurple")


# --- grid -------------------------------------------------------------------------------------


def test_grid_size_counts_gaps_between_cells_but_no_outer_margin():
    sheet = grid([solid(RED)] * 5, columns=2, gap=3, background="white")

    assert sheet.size == (2 * 10 + 3, 3 * 10 + 2 * 3)


def test_grid_fills_the_gaps_with_the_background():
    sheet = grid([solid(RED), solid(BLUE)], columns=2, gap=4, background="#00ff00")

    assert sheet.getpixel((11, 5)) == GREEN


def test_grid_places_images_left_to_right_then_top_to_bottom():
    colors = [RED, GREEN, BLUE, YELLOW]
    sheet = grid([solid(c) for c in colors], columns=2, gap=0, background="white")

    cell_centres = [(5, 5), (15, 5), (5, 15), (15, 15)]
    assert [sheet.getpixel(p) for p in cell_centres] == colors


def test_grid_cells_are_as_large_as_the_largest_image():
    sheet = grid([solid(RED, (10, 10)), solid(BLUE, (20, 6))], columns=2, gap=0, background="white")

    assert sheet.size == (40, 10)


def test_grid_centres_each_image_in_its_cell():
    sheet = grid([solid(RED, (10, 10)), solid(BLUE, (20, 6))], columns=2, gap=0, background="white")

    assert sheet.getpixel((30, 1)) == WHITE  # above the 20×6 image, centred in its 20×10 cell
    assert sheet.getpixel((30, 5)) == BLUE


def test_grid_scales_images_to_fit_an_explicit_cell():
    images = [solid(RED, (16, 16)), solid(BLUE, (8, 4))]

    sheet = grid(images, columns=1, gap=0, background="white", cell=(8, 8))

    assert sheet.size == (8, 16)
    assert sheet.getpixel((4, 12)) == BLUE
    assert sheet.getpixel((4, 9)) == WHITE  # the 8×4 image does not fill its 8×8 cell


def test_grid_cell_width_alone_takes_the_height_of_the_tallest_scaled_image():
    images = [solid(RED, (20, 10)), solid(BLUE, (10, 10))]

    sheet = grid(images, columns=2, gap=0, background="white", cell=(10, None))

    assert sheet.size == (20, 10)


def test_grid_ignores_columns_beyond_the_number_of_images():
    sheet = grid([solid(RED), solid(BLUE)], columns=5, gap=2, background="white")

    assert sheet.size == (22, 10)


def test_grid_with_an_opaque_background_is_rgb():
    assert grid([solid(RED)], columns=1, gap=0, background="white").mode == "RGB"


def test_grid_with_a_transparent_background_keeps_alpha():
    sheet = grid([solid(RED), solid(BLUE)], columns=2, gap=2, background="transparent")

    assert sheet.mode == "RGBA"
    assert sheet.getpixel((10, 5)) == (0, 0, 0, 0)


def test_grid_captions_go_in_a_band_under_each_cell_and_cover_nothing():
    lettering = Lettering.for_cell(200, 100)
    images = [solid(c, (200, 100)) for c in (RED, GREEN, BLUE)]

    sheet = grid(images, columns=2, gap=5, background="white", captions=["r", "g", "b"])

    band = lettering.caption_band
    assert sheet.size == (405, 2 * (100 + band) + 5)
    assert sheet.getpixel((199, 99)) == RED and sheet.getpixel((205, 0)) == GREEN
    assert sheet.getpixel((0, 100 + band + 5)) == BLUE  # the second row starts after band + gap
    assert sheet.crop((0, 100, 200, 100 + band)).getextrema() != ((255, 255),) * 3  # written


def test_grid_title_goes_in_a_band_above_the_grid():
    lettering = Lettering.for_cell(200, 100)

    sheet = grid([solid(RED, (200, 100))], columns=1, gap=0, background="white", title="Reds")

    assert sheet.size == (200, lettering.title_band + 100)
    assert sheet.getpixel((0, lettering.title_band)) == RED


def test_grid_refuses_a_caption_count_other_than_the_image_count():
    with pytest.raises(ValueError, match="1 captions for 2 images"):
        grid([solid(RED), solid(BLUE)], columns=2, gap=0, background="white", captions=["r"])


@pytest.mark.parametrize("side", [16, 128, 512, 1024, 4096])
def test_lettering_scales_with_the_cell_and_stays_legible(side):
    lettering = Lettering.for_cell(side, side)

    assert lettering.caption_size >= 10
    assert lettering.caption_band > lettering.caption_size
    assert lettering.title_size > lettering.caption_size
    assert lettering.title_band > lettering.title_size
    if side >= 512:
        assert lettering.caption_size == round(side / 24)


# --- place_layers -----------------------------------------------------------------------------


def base_20() -> Image.Image:
    return solid(WHITE, (20, 20))


def test_place_layers_puts_the_top_left_corner_at_x_y():
    result = place_layers(base_20(), [Layer(solid(RED, (4, 4)), x=5, y=6)])

    assert result.getpixel((5, 6)) == RED
    assert result.getpixel((8, 9)) == RED
    assert result.getpixel((4, 6)) == WHITE
    assert result.getpixel((9, 10)) == WHITE


def test_place_layers_reads_percent_positions_as_shares_of_the_base():
    result = place_layers(base_20(), [Layer(solid(RED, (4, 4)), x="50%", y="25%")])

    assert result.getpixel((10, 5)) == RED
    assert result.getpixel((9, 5)) == WHITE
    assert result.getpixel((10, 4)) == WHITE


def test_place_layers_center_anchor_centres_the_layer_on_the_point():
    result = place_layers(base_20(), [Layer(solid(RED, (4, 4)), x="50%", y="50%", anchor="center")])

    assert result.getpixel((8, 8)) == RED
    assert result.getpixel((11, 11)) == RED
    assert result.getpixel((7, 8)) == WHITE
    assert result.getpixel((12, 11)) == WHITE


def test_place_layers_bottom_right_anchor_ends_the_layer_at_the_point():
    result = place_layers(base_20(), [Layer(solid(RED, (4, 4)), x=20, y=20, anchor="bottom-right")])

    assert result.getpixel((19, 19)) == RED
    assert result.getpixel((16, 16)) == RED
    assert result.getpixel((15, 16)) == WHITE


def test_place_layers_blends_by_opacity():
    result = place_layers(base_20(), [Layer(solid(RED, (4, 4)), x=0, y=0, opacity=0.5)])

    assert close_to(result.getpixel((1, 1)), (255, 128, 128), tolerance=1)


def test_place_layers_lets_the_base_show_through_transparent_layer_pixels():
    layer = solid((*RED, 0), (4, 4), mode="RGBA")
    layer.putpixel((0, 0), (*RED, 255))

    result = place_layers(base_20(), [Layer(layer, x=0, y=0)])

    assert result.getpixel((0, 0)) == RED
    assert result.getpixel((1, 1)) == WHITE


def test_place_layers_later_layers_go_on_top():
    layers = [Layer(solid(RED, (4, 4)), x=0, y=0), Layer(solid(BLUE, (4, 4)), x=2, y=2)]

    result = place_layers(base_20(), layers)

    assert result.getpixel((3, 3)) == BLUE
    assert result.getpixel((1, 1)) == RED


def test_place_layers_width_alone_resizes_keeping_the_aspect():
    result = place_layers(base_20(), [Layer(solid(RED, (4, 2)), x=0, y=0, width=8)])

    assert result.getpixel((7, 3)) == RED
    assert result.getpixel((8, 3)) == WHITE
    assert result.getpixel((7, 4)) == WHITE


def test_place_layers_width_and_height_stretch_the_layer():
    result = place_layers(base_20(), [Layer(solid(RED, (4, 2)), x=0, y=0, width=2, height="50%")])

    assert result.getpixel((1, 9)) == RED
    assert result.getpixel((2, 9)) == WHITE
    assert result.getpixel((1, 10)) == WHITE


def test_place_layers_clips_a_layer_that_hangs_off_the_edge():
    result = place_layers(base_20(), [Layer(solid(RED, (4, 4)), x=-2, y=18)])

    assert result.size == (20, 20)
    assert result.getpixel((0, 19)) == RED
    assert result.getpixel((2, 19)) == WHITE


def test_place_layers_keeps_an_opaque_base_rgb_and_a_transparent_base_rgba():
    layer = [Layer(solid(RED, (2, 2)), x=0, y=0)]

    assert place_layers(base_20(), layer).mode == "RGB"
    assert place_layers(solid((0, 0, 0, 0), (20, 20), "RGBA"), layer).mode == "RGBA"


# --- resize -----------------------------------------------------------------------------------


def test_resize_contain_fits_inside_the_box_without_padding():
    assert resize(solid(RED, (100, 50)), width=40, height=40, fit="contain").size == (40, 20)


def test_resize_contain_with_only_a_width_scales_to_it():
    assert resize(solid(RED, (100, 50)), width=50, height=None, fit="contain").size == (50, 25)


def test_resize_contain_with_only_a_height_scales_to_it():
    assert resize(solid(RED, (100, 50)), width=None, height=100, fit="contain").size == (200, 100)


def test_resize_cover_fills_the_box_and_crops_the_centre():
    striped = solid(GREEN, (100, 50))
    striped.paste(RED, (0, 0, 10, 50))  # a strip on the left that cover must crop away

    result = resize(striped, width=40, height=40, fit="cover")

    assert result.size == (40, 40)
    assert close_to(result.getpixel((0, 20)), GREEN)


def test_resize_exact_stretches_to_the_box():
    assert resize(solid(RED, (100, 50)), width=30, height=70, fit="exact").size == (30, 70)


@pytest.mark.parametrize("fit", ["cover", "exact"])
def test_resize_cover_and_exact_need_both_sides(fit):
    with pytest.raises(ValueError, match="needs both a width and a height"):
        resize(solid(RED), width=5, height=None, fit=fit)


def test_resize_keeps_transparency():
    result = resize(solid((*RED, 0), (10, 10), "RGBA"), width=5, height=None)

    assert result.mode == "RGBA"
    assert result.getpixel((2, 2))[3] == 0
