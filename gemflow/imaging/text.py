"""Lettering on pictures: one font, lines cut to fit, and ink that reads on any background.

Every picture gemflow letters (grid captions and titles, the emulator's drawings) uses Pillow's
built-in scalable face (Aileron, via FreeType), never a system font: the same text then draws the
same pixels on every machine with the same Pillow, which cached pictures rely on. The face covers
ASCII and common punctuation (``…``, ``·``); other characters (``é``, CJK) draw as boxes.
"""

from __future__ import annotations

import threading

from PIL import Image, ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont | ImageFont.TransposedFont
Color = tuple[int, int, int, int]

ELLIPSIS = "…"
_DARK: Color = (24, 24, 24, 255)
_LIGHT: Color = (246, 246, 246, 255)

_fonts = threading.local()


def font(size: int) -> Font:
    """The built-in face at ``size`` pixels.

    Cached per thread: a FreeType face must not be used by two threads at once.
    """
    by_size: dict[int, Font] = _fonts.__dict__.setdefault("by_size", {})
    if size not in by_size:
        by_size[size] = ImageFont.load_default(size=size)
    return by_size[size]


def shorten(text: str, face: Font, width: float, *, middle: bool = False) -> str:
    """``text`` on one line, cut with ``…`` when it is wider than ``width`` pixels: at the end, or
    in the middle when ``middle`` (captions, whose ends tell them apart: ``variant=2``, ``_7.png``).
    """
    line = " ".join(text.split())
    if face.getlength(line) <= width:
        return line
    low, high = 0, len(line)  # the most characters that fit with the ellipsis: binary search
    while low < high:
        kept = (low + high + 1) // 2
        if face.getlength(_cut(line, kept, middle)) <= width:
            low = kept
        else:
            high = kept - 1
    return _cut(line, low, middle) if low else ""


def _cut(line: str, kept: int, middle: bool) -> str:
    """``line`` with only ``kept`` of its characters and an ellipsis where the rest were."""
    if not middle:
        return line[:kept].rstrip() + ELLIPSIS
    head = (kept + 1) // 2
    tail = kept - head
    return line[:head].rstrip() + ELLIPSIS + (line[-tail:].lstrip() if tail else "")


def ink_on(background: Color) -> tuple[Color, Color | None]:
    """(text colour, halo colour or None) for text on ``background``.

    On an opaque background: black or white, whichever reads better. On a (partly) transparent one
    the picture may end up on anything, so dark text with a light halo, which reads on both.
    """
    if background[3] < 255:
        return _DARK, _LIGHT
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (_DARK if luminance > 140 else _LIGHT), None


def draw_line(
    canvas: Image.Image,
    text: str,
    box: tuple[int, int, int, int],
    face: Font,
    ink: Color,
    halo: Color | None = None,
) -> None:
    """Draw one line centred in ``box`` (left, top, right, bottom) of an RGBA ``canvas``.

    Text is drawn as coverage masks and composited, so anti-aliased edges blend with a transparent
    canvas instead of darkening it (``ImageDraw.text`` on RGBA writes its alpha as it is).
    """
    left, top, right, bottom = box
    size = (right - left, bottom - top)
    if not text or min(size) <= 0:
        return
    centre = (size[0] / 2, size[1] / 2)
    if halo is not None:
        stroke = max(1, round(_size(face) / 10))
        _paint(canvas, _mask(size, text, centre, face, stroke), halo, (left, top))
    _paint(canvas, _mask(size, text, centre, face, 0), ink, (left, top))


def _mask(
    size: tuple[int, int], text: str, centre: tuple[float, float], face: Font, stroke: int
) -> Image.Image:
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).text(centre, text, font=face, fill=255, anchor="mm", stroke_width=stroke)
    return mask


def _paint(canvas: Image.Image, mask: Image.Image, colour: Color, origin: tuple[int, int]) -> None:
    layer = Image.new("RGBA", mask.size, colour)
    layer.putalpha(mask.point(lambda coverage: coverage * colour[3] // 255))
    canvas.alpha_composite(layer, dest=origin)


def _size(face: Font) -> int:
    return int(getattr(face, "size", 10))
