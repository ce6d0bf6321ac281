"""Lettering helpers: one font for every picture, lines cut to fit, ink that reads."""

from __future__ import annotations

from PIL import Image

from gemflow.imaging.text import ELLIPSIS, draw_line, font, ink_on, shorten


def test_font_is_scalable_and_cached():
    assert font(40) is font(40)
    assert font(40).getlength("variant") > 2 * font(12).getlength("variant")


def test_shorten_keeps_a_line_that_fits():
    assert shorten("model=a · variant=2", font(12), 1000) == "model=a · variant=2"


def test_shorten_cuts_the_end_with_an_ellipsis_to_fit():
    face = font(12)
    line = shorten("model=gemini-3-pro-image · variant=2", face, 80)

    assert line.endswith(ELLIPSIS)
    assert "model=gemini-3-pro-image".startswith(line[:-1])
    assert face.getlength(line) <= 80


def test_shorten_makes_one_line_of_several():
    assert shorten("a\nb  c", font(12), 1000) == "a b c"


def test_shorten_gives_nothing_when_not_even_the_ellipsis_fits():
    assert shorten("model", font(40), 3) == ""


def test_ink_is_dark_on_light_light_on_dark_and_haloed_on_transparent():
    assert ink_on((255, 255, 255, 255))[0][0] < 64
    assert ink_on((0, 0, 0, 255))[0][0] > 192
    assert ink_on((0, 0, 0, 255))[1] is None
    assert ink_on((0, 0, 0, 0))[1] is not None


def test_draw_line_blends_with_a_transparent_canvas():
    canvas = Image.new("RGBA", (120, 30), (0, 0, 0, 0))
    draw_line(canvas, "caption", (0, 0, 120, 30), font(16), (24, 24, 24, 255))

    pixels = {colour for _, colour in canvas.getcolors(maxcolors=120 * 30)}
    alphas = {alpha for *_, alpha in pixels}
    assert 0 in alphas and 255 in alphas
    # Edges are partly transparent ink, not a darker grey.
    assert {(r, g, b) for r, g, b, alpha in pixels if alpha} == {(24, 24, 24)}


def test_draw_line_stays_inside_its_box():
    canvas = Image.new("RGBA", (200, 60), (255, 255, 255, 255))
    draw_line(canvas, "caption", (50, 20, 150, 40), font(14), (0, 0, 0, 255))

    assert canvas.getbbox() is not None
    drawn = Image.new("RGBA", canvas.size, (255, 255, 255, 255))
    drawn.paste(canvas.crop((50, 20, 150, 40)), (50, 20))
    assert drawn.tobytes() == canvas.tobytes()


def test_shorten_in_the_middle_keeps_both_ends():
    face = font(12)
    line = shorten("model=gemini-3-pro-image · variant=2", face, 150, middle=True)

    assert ELLIPSIS in line[1:-1]
    assert line.startswith("model=") and line.endswith("variant=2")
    assert face.getlength(line) <= 150
