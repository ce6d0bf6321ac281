"""Deterministic pictures: the emulator's stand-in for an image model.

A picture is a pure function of its :class:`Scene` (and the emulator's ``scale``): the background
colour and a few faint circles come from the scene's digest, the prompt is drawn in large type,
input images appear as numbered thumbnails along the bottom edge, and a stripe of eight colour
cells along the top edge encodes the first 24 bytes of the digest. Any change to the scene changes
the stripe, so different scenes never give equal bytes.

A small mark in the bottom-right corner says what made the picture: the model, the aspect ratio
and size, then the request's seed or, without one, which take of an identical request this is
(``gemini-3-pro-image · 16:9 · 1K · take 2``), so a grid of variants or models reads offline.
The mark is not part of the drawn text: read-back (the text chunk, the stripe) never sees it.

Pictures are palette PNGs: an RGB PNG of 1024² takes Pillow ~17 ms to filter and deflate, a
palette one ~3 ms. The palette is laid out as

    0..15    ramp from the background to the text colour (anti-aliased text and the circles)
    16..231  a 6×6×6 colour cube for the thumbnails
    232..239 the stripe cells
    240..255 unused (black)

The text drawn (the prompt, or the scene's ``drawn`` text) is stored verbatim in an iTXt chunk
``gemflow-emulator-text`` (drawn text may be cut short when it does not fit; the chunk never is).
No timestamps: equal scenes give equal bytes.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from PIL import Image, ImageDraw, PngImagePlugin

from gemflow.imaging.text import font, shorten

TEXT_CHUNK = "gemflow-emulator-text"
BASE_PIXELS = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}
MIN_SIDE = 16
STRIPE_CELLS = 8
MARK_BYTES = 3 * STRIPE_CELLS

_RAMP = 16
_CUBE_START = 16
_STRIPE_START = 232
_RAMP_LUT = [v * (_RAMP - 1) // 255 for v in range(256)]
_REFERENCE_FONT_SIZE = 100


@dataclass(frozen=True)
class Scene:
    """Everything a picture depends on. ``images`` are the raw input image bytes, in order.

    ``drawn`` is the text the picture shows when that is not the prompt (see
    :mod:`gemflow.emulator.lettering`); None means the prompt. ``take`` counts identical requests
    (see :mod:`gemflow.emulator.takes`): each take is a different picture.
    """

    model: str
    texts: tuple[str, ...]
    system: str | None
    images: tuple[bytes, ...]
    aspect_ratio: str
    image_size: str
    temperature: float | None = None
    seed: int | None = None
    drawn: str | None = None
    take: int = 1

    @property
    def prompt(self) -> str:
        return "\n".join(self.texts)

    @property
    def text(self) -> str:
        """What the picture shows: ``drawn``, else the prompt."""
        return self.prompt if self.drawn is None else self.drawn

    @cached_property
    def digest(self) -> bytes:
        """sha256 of the canonical JSON of the scene (input images by their sha256)."""
        canonical = {
            "model": self.model,
            "texts": list(self.texts),
            "system": self.system,
            "images": [hashlib.sha256(data).hexdigest() for data in self.images],
            "aspect_ratio": self.aspect_ratio,
            "image_size": self.image_size,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        if self.drawn is not None:  # absent otherwise, so ordinary pictures keep their bytes
            canonical["drawn"] = self.drawn
        if self.take != 1:  # absent for the first take, which keeps the colours it always had
            canonical["take"] = self.take
        blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode()).digest()

    @property
    def mark(self) -> bytes:
        """The bytes the colour stripe encodes (see :func:`read_mark`)."""
        return self.digest[:MARK_BYTES]

    @property
    def label(self) -> str:
        """The corner mark: what made the picture, and which one of its takes it is."""
        which = f"seed {self.seed}" if self.seed is not None else f"take {self.take}"
        return " · ".join((self.model, self.aspect_ratio, self.image_size, which))


@dataclass(frozen=True)
class Rendered:
    png: bytes
    width: int
    height: int


def pixel_size(aspect_ratio: str, image_size: str, scale: float = 1.0) -> tuple[int, int]:
    """Width and height for a ratio "w:h" and a size "512"/"1K"/"2K"/"4K".

    The area is about base² in the requested ratio, each side a multiple of 16, then scaled by
    ``scale`` (again a multiple of 16, at least 16).
    """
    rw, rh = parse_ratio(aspect_ratio)
    base = BASE_PIXELS[image_size] * scale
    return _side(base * math.sqrt(rw / rh)), _side(base * math.sqrt(rh / rw))


def parse_ratio(aspect_ratio: str) -> tuple[int, int]:
    """Parse "16:9" into (16, 9). Raises ValueError for anything else."""
    left, sep, right = aspect_ratio.partition(":")
    if not (sep and left.isdigit() and right.isdigit() and int(left) and int(right)):
        raise ValueError(f"not an aspect ratio: {aspect_ratio!r}")
    return int(left), int(right)


def nearest_ratio(width: int, height: int, ratios: Sequence[str]) -> str:
    """The ratio in ``ratios`` closest to width:height (on a log scale)."""
    target = math.log(width / height)
    return min(ratios, key=lambda r: abs(math.log(_ratio_value(r)) - target))


def _ratio_value(aspect_ratio: str) -> float:
    rw, rh = parse_ratio(aspect_ratio)
    return rw / rh


def _side(value: float) -> int:
    return max(MIN_SIDE, round(value / 16) * 16)


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an encoded image from its header, or None if Pillow can't read it."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None


def render(scene: Scene, scale: float = 1.0, *, marked: bool = True) -> Rendered:
    """The final image for ``scene`` as PNG bytes; with its corner mark unless ``marked`` is
    False (the picture as it was before marks, for comparison)."""
    width, height = pixel_size(scene.aspect_ratio, scene.image_size, scale)
    background, ink = _colours(scene.digest)
    stripe_h = max(2, height // 48)
    margin = max(2, min(width, height) // 24)

    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    _draw_circles(draw, scene.digest, width, height)
    thumbs_h = _thumbnail_band_height(len(scene.images), height)
    text_box = (margin, stripe_h + margin, width - margin, height - thumbs_h - margin)
    _draw_prompt(draw, scene.text, text_box)

    palette = _palette(background, ink, scene.mark)
    picture = _indexed(layer, palette)
    _paste_stripe(picture, stripe_h)
    if scene.images:
        _paste_thumbnails(picture, palette, scene.images, thumbs_h, margin)
    if marked:
        _paste_label(picture, scene.label, margin, thumbs_h)
    return Rendered(_encode(picture, scene.text), width, height)


def render_thought(scene: Scene, scale: float = 1.0) -> bytes:
    """A small interim "thought" image: the final picture's colours, no text."""
    width, height = pixel_size(scene.aspect_ratio, scene.image_size, scale)
    width, height = max(MIN_SIDE, width // 8), max(MIN_SIDE, height // 8)
    layer = Image.new("L", (width, height), 0)
    _draw_circles(ImageDraw.Draw(layer), scene.digest, width, height)
    return _encode(_indexed(layer, _palette(*_colours(scene.digest), scene.mark)), None)


def embedded_text(data: bytes) -> str | None:
    """The text chunk of a PNG this module made, or None (other images, non-PNG, junk)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.info.get(TEXT_CHUNK)
    except Exception:
        return None
    return str(value) if value is not None else None


def read_mark(data: bytes) -> bytes | None:
    """The digest bytes encoded by the colour stripe, or None if ``data`` is not an image.

    Unlike the text chunk, the stripe survives lossless re-encoding (for example the SDK turning
    a ``PIL.Image`` in ``contents`` into a fresh PNG). Any image yields *some* bytes; callers
    look them up among marks they have issued.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            stripe_h = max(2, im.height // 48)
            rgb = im.crop((0, 0, im.width, stripe_h)).convert("RGB")
    except Exception:
        return None
    y = stripe_h // 2
    cells = [rgb.getpixel((sum(_cell_span(i, rgb.width)) // 2, y)) for i in range(STRIPE_CELLS)]
    return bytes(channel for cell in cells for channel in cell)  # type: ignore[union-attr]


def _colours(digest: bytes) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Background from the digest; ink black or white, whichever reads better on it."""
    hue = int.from_bytes(digest[0:2]) / 65536
    saturation = 0.35 + digest[2] / 255 * 0.45
    value = 0.35 + digest[3] / 255 * 0.55
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    background = (round(r * 255), round(g * 255), round(b * 255))
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    ink = (16, 16, 16) if luminance > 140 else (250, 250, 250)
    return background, ink


def _palette(background: tuple[int, ...], ink: tuple[int, ...], mark: bytes) -> list[int]:
    palette: list[int] = []
    for step in range(_RAMP):
        t = step / (_RAMP - 1)
        palette += [round(bg + (fg - bg) * t) for bg, fg in zip(background, ink, strict=True)]
    levels = (0, 51, 102, 153, 204, 255)
    palette += [c for r in levels for g in levels for b in levels for c in (r, g, b)]
    palette += list(mark)
    palette += [0] * (768 - len(palette))
    return palette


def _indexed(layer: Image.Image, palette: list[int]) -> Image.Image:
    """Map an anti-aliased 0..255 layer onto the background-to-ink ramp of ``palette``."""
    levels = layer.point(_RAMP_LUT)
    picture = Image.frombytes("P", layer.size, levels.tobytes())
    picture.putpalette(palette)
    return picture


def _draw_circles(draw: ImageDraw.ImageDraw, digest: bytes, width: int, height: int) -> None:
    """A few faint digest-placed circles, so pictures don't look like flat cards."""
    for i in range(3):
        b = digest[4 + 3 * i : 7 + 3 * i]
        cx, cy = b[0] / 255 * width, b[1] / 255 * height
        radius = (0.15 + b[2] / 255 * 0.35) * min(width, height)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=36 + 12 * i)


def _thumbnail_band_height(count: int, height: int) -> int:
    return 0 if count == 0 else max(MIN_SIDE // 2, height // 5)


def _draw_prompt(draw: ImageDraw.ImageDraw, prompt: str, box: tuple[int, int, int, int]) -> None:
    """Wrap ``prompt`` in the largest type that fits ``box`` (down to a floor), centred."""
    left, top, right, bottom = box
    box_w, box_h = right - left, bottom - top
    if not prompt.strip() or box_w <= 0 or box_h <= 0:
        return
    size, lines = _fit(prompt, box_w, box_h)
    face = font(size)
    line_h = round(size * 1.2)
    y = top + max(0, (box_h - line_h * len(lines)) // 2)
    for line in lines:
        x = left + max(0, (box_w - round(face.getlength(line))) // 2)
        draw.text((x, y), line, font=face, fill=255)
        y += line_h


def _fit(prompt: str, box_w: int, box_h: int) -> tuple[int, list[str]]:
    """Font size and wrapped lines. Widths are measured once at a reference size and scaled,
    which is close enough for glyph outlines and much faster than measuring at every size."""
    reference = font(_REFERENCE_FONT_SIZE)
    space = reference.getlength(" ") / _REFERENCE_FONT_SIZE
    paragraphs = [
        [(word, reference.getlength(word) / _REFERENCE_FONT_SIZE) for word in line.split()]
        for line in prompt.splitlines()
    ]
    floor = max(8, min(box_w, box_h) // 40)
    size = max(floor, min(box_w, box_h) // 6)
    while True:
        lines = _wrap(paragraphs, space, size, box_w * 0.96)
        fits = len(lines) * round(size * 1.2) <= box_h
        if fits or size <= floor:
            break
        size = max(floor, int(size * 0.85))
    max_lines = max(1, box_h // round(size * 1.2))
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1] + " …"]
    return size, lines


def _wrap(
    paragraphs: list[list[tuple[str, float]]], space: float, size: int, max_w: float
) -> list[str]:
    lines: list[str] = []
    for words in paragraphs:
        line, line_w = "", 0.0
        for word, unit_w in words:
            word_w = unit_w * size
            if line and line_w + space * size + word_w <= max_w:
                line, line_w = f"{line} {word}", line_w + space * size + word_w
                continue
            if line:
                lines.append(line)
            while word_w > max_w and len(word) > 1:
                cut = max(1, int(len(word) * max_w / word_w))
                lines.append(word[:cut])
                word, word_w = word[cut:], word_w * (len(word) - cut) / len(word)
            line, line_w = word, word_w
        lines.append(line)
    return lines


def _cell_span(index: int, width: int) -> tuple[int, int]:
    return index * width // STRIPE_CELLS, (index + 1) * width // STRIPE_CELLS


def _paste_stripe(picture: Image.Image, stripe_h: int) -> None:
    draw = ImageDraw.Draw(picture)
    for i in range(STRIPE_CELLS):
        x0, x1 = _cell_span(i, picture.width)
        draw.rectangle((x0, 0, x1 - 1, stripe_h - 1), fill=_STRIPE_START + i)


def _paste_thumbnails(
    picture: Image.Image, palette: list[int], images: Sequence[bytes], band_h: int, margin: int
) -> None:
    """Inputs in order along the bottom edge, each in a frame with its 1-based number."""
    count = len(images)
    gap = max(1, margin // 2)
    slot_w = max(1, (picture.width - 2 * margin - gap * (count - 1)) // count)
    slot_h = max(1, band_h - margin)
    top = picture.height - band_h
    quantiser = Image.new("P", (1, 1))
    quantiser.putpalette(palette)
    draw = ImageDraw.Draw(picture)
    label_font = font(max(8, slot_h // 4))
    for i, data in enumerate(images):
        x = margin + i * (slot_w + gap)
        draw.rectangle((x, top, x + slot_w - 1, top + slot_h - 1), fill=_RAMP - 1)
        thumb = _thumbnail(data, max(1, slot_w - 2), max(1, slot_h - 2))
        if thumb is None:  # not decodable: a crossed-out slot, so the input still shows
            draw.line((x, top, x + slot_w - 1, top + slot_h - 1), fill=0, width=2)
            draw.line((x, top + slot_h - 1, x + slot_w - 1, top), fill=0, width=2)
        else:
            thumb = thumb.quantize(palette=quantiser, dither=Image.Dither.NONE)
            picture.paste(
                thumb,
                (
                    x + 1 + (slot_w - 2 - thumb.width) // 2,
                    top + 1 + (slot_h - 2 - thumb.height) // 2,
                ),
            )
        draw.text((x + 3, top + 1), str(i + 1), font=label_font, fill=0)


def _paste_label(picture: Image.Image, label: str, margin: int, thumbs_h: int) -> None:
    """``label`` small on a plate of the background colour, in the bottom-right corner.

    At full size the plate fits in the bottom margin, under the prompt and the thumbnails. A
    small picture (a scaled-down emulator) has no room for 8 px type there: the plate then sits
    just above the thumbnails, over the end of the prompt's box, so it never hides an input.
    Too long a label is cut in the middle, so the take (or seed) at its end stays.
    """
    size = max(8, round(min(picture.size) / 44))
    pad = max(1, size // 3)
    face = font(size)
    text = shorten(label, face, picture.width - 2 * margin - 2 * pad, middle=True)
    if not text:
        return
    plate = Image.new("L", (round(face.getlength(text)) + 2 * pad, size + 2 * pad), 0)
    ImageDraw.Draw(plate).text((pad, pad + size // 2), text, font=face, fill=255, anchor="lm")
    tile = Image.frombytes("P", plate.size, plate.point(_RAMP_LUT).tobytes())
    bottom = picture.height if plate.height <= margin else picture.height - thumbs_h
    picture.paste(tile, (picture.width - plate.width, bottom - plate.height))


def _thumbnail(data: bytes, width: int, height: int) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (width, height))
            im.thumbnail((width, height), reducing_gap=2.0)
            return im.convert("RGB")
    except Exception:
        return None


def _encode(picture: Image.Image, text: str | None) -> bytes:
    info = PngImagePlugin.PngInfo()
    if text is not None:
        info.add_itxt(TEXT_CHUNK, text)
    out = io.BytesIO()
    picture.save(out, "PNG", compress_level=1, pnginfo=info)
    return out.getvalue()
