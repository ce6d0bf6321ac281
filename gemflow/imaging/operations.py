"""Local image operations: decode, encode, colours, contact-sheet grids (captioned or not), layers
and resizing.

Pure functions on Pillow images, with no knowledge of steps. Decoding (``open_image`` for local
work, ``for_api`` for what an API request carries) is the one boundary where Pillow's exceptions
become ``InputError``; every other function works on images it has already produced, so a failure
there is a bug, not bad input.

Images coming out of ``open_image`` are always mode RGB or RGBA and carry no metadata (EXIF, ICC,
text chunks): gemflow works on pixels, and ``encode`` writes nothing but pixels, so the same picture
always encodes to the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from PIL import Image, ImageColor, ImageOps

from gemflow.errors import InputError
from gemflow.imaging.geometry import ANCHORS, DEFAULT_QUALITY, FITS, Length, resolve_length
from gemflow.imaging.text import Color, draw_line, font, ink_on, shorten

_RESAMPLE = Image.Resampling.LANCZOS
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
# Formats a user's photo or a model's output can be in. Others (EPS runs Ghostscript, and a dozen
# rarely-used formats each add attack surface) are refused as unreadable.
_WANTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_WHITE: Color = (255, 255, 255, 255)
# What the Gemini API reads natively, by Pillow format name, and the modes it takes as they are:
# 8-bit gray, RGB and RGBA; for PNG also palette and gray+alpha, which every PNG decoder expands.
API_MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_API_MODES = ("RGB", "RGBA", "L", "LA", "P")
_EXIF_ORIENTATION = 0x0112
_IDENTIFY_LOCK = threading.Lock()


# --- decoding -------------------------------------------------------------------------------


def open_image(data: bytes, *, source: str) -> Image.Image:
    """Decode ``data`` into an upright RGB or RGBA image, or raise ``InputError`` naming ``source``.

    Reads PNG, JPEG, WebP, GIF, BMP, TIFF and (when Pillow has it) AVIF; the first frame of an
    animated image is used. Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) stays
    on, and its warning threshold is treated as the limit.
    """
    with _decoding(data, source=source) as opened:
        return _pixels(opened)


def for_api(data: bytes, *, source: str) -> tuple[bytes, str]:
    """``data`` as an API request should carry it: (bytes, MIME type), or ``InputError``.

    The image is decoded in full first, as ``open_image`` does, so an empty, truncated, corrupt or
    oversized file is refused (naming ``source``) before anything is sent. What the API reads
    natively goes as its exact bytes: one upright frame of 8-bit gray, RGB or RGBA in a JPEG or
    WebP, or any 8-bit PNG (palette and transparency included). Anything else (CMYK, 16-bit, an
    animation, an EXIF rotation, GIF, BMP, TIFF, AVIF) goes as a PNG of ``open_image``'s picture:
    upright, RGB or RGBA, first frame.

    The conversion is deterministic, so a step's cache key keeps using the original file's digest;
    a change to what this function sends must bump the recipe version of the kinds that use it.
    """
    with _decoding(data, source=source) as opened:
        mime = API_MIME_TYPES.get(_container(opened) or "")
        if mime is not None and _sent_as_is(opened, data):
            return data, mime
        picture = _pixels(opened)
    return encode(picture, "png"), "image/png"


def image_format(data: bytes, *, source: str) -> str:
    """The format of ``data`` as Pillow names it ("PNG", "JPEG", ...), once it has decoded in
    full: ``InputError`` naming ``source`` when it is not a readable image."""
    with _decoding(data, source=source) as opened:
        return _container(opened) or "unknown"


@contextlib.contextmanager
def _decoding(data: bytes, *, source: str) -> Iterator[Image.Image]:
    """``data`` opened and fully decoded; whatever Pillow raises becomes an ``InputError``."""
    if not data:
        raise InputError(f"{source}: not a readable image (the file is empty)")
    try:
        with _identify(data) as opened:
            opened.load()
            yield opened
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{source}: {_too_large(exc)}") from exc
    except Exception as exc:  # decoders raise many types on hostile input; all mean "unreadable"
        raise InputError(f"{source}: not a readable image ({_reason(exc)})") from exc


def _pixels(opened: Image.Image) -> Image.Image:
    """The picture in a decoded image: upright, RGB or RGBA, without metadata."""
    upright = ImageOps.exif_transpose(opened)  # a copy: survives closing the file
    image = _normalise_mode(upright)
    image.info = {}  # ours to change: exif_transpose and convert both return new images
    return image


def _sent_as_is(image: Image.Image, data: bytes) -> bool:
    """Whether the API reads ``data`` as gemflow would: one upright frame, 8 bits a sample."""
    container = _container(image)
    return (
        container in API_MIME_TYPES
        and image.mode in _API_MODES
        and (container == "JPEG" or getattr(image, "n_frames", 1) == 1)
        and image.getexif().get(_EXIF_ORIENTATION, 1) == 1
        and (container != "PNG" or data[24:25] == b"\x08")  # IHDR bit depth: Pillow reads 16 as 8
    )


def _container(image: Image.Image) -> str | None:
    # Phones write MPO: a JPEG with more pictures (depth maps, previews) after it. A JPEG decoder,
    # the API's included, reads the first picture, so MPO is sent as the JPEG it is.
    return "JPEG" if image.format == "MPO" else image.format


def _identify(data: bytes) -> Image.Image:
    """Pillow's ``Image.open`` (header only), with its decompression-bomb warning as an error.

    Pillow warns above ``MAX_IMAGE_PIXELS`` and only raises at twice that; gemflow refuses both.
    Warning filters are process-wide and steps run in threads, so one lock keeps concurrent opens
    from restoring each other's filters. Decoding (``load``) happens outside the lock.
    """
    with _IDENTIFY_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=_readable_formats())


@functools.cache
def _readable_formats() -> tuple[str, ...]:
    Image.init()  # AVIF is only registered when Pillow was built with it
    return tuple(name for name in _WANTED_FORMATS if name in Image.OPEN)


def _normalise_mode(image: Image.Image) -> Image.Image:
    """RGBA when the image has any transparency, otherwise RGB."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # A plain convert clips 16-bit values at 255 (mostly white); scale them down instead.
        image = image.convert("I").point(lambda v: v / 256).convert("L")
    target = "RGBA" if image.has_transparency_data else "RGB"
    return image if image.mode == target else image.convert(target)


def _strip_metadata(image: Image.Image) -> Image.Image:
    """``image`` without metadata, copied only if it has any (the caller's image is not changed)."""
    if image.info:
        image = image.copy()
        image.info = {}
    return image


def _reason(exc: Exception) -> str:
    if isinstance(exc, Image.UnidentifiedImageError):
        return "cannot identify image file"  # Pillow's message ends with an object repr
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _too_large(exc: Exception) -> str:
    limit = Image.MAX_IMAGE_PIXELS
    match = _BOMB_PIXELS.search(str(exc))
    if match:
        return f"image is too large ({int(match[1]):,} pixels; the limit is {limit:,})"
    return f"image is too large (the limit is {limit:,} pixels)"


# --- encoding -------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, *, quality: int | None = None) -> bytes:
    """Encode ``image`` as png, webp or jpeg: the same pixels always give the same bytes.

    ``quality`` (1..100, default 90) applies to webp and jpeg. No metadata is written; jpeg has no
    alpha, so a transparent image is flattened onto white.
    """
    image = _strip_metadata(_normalise_mode(image))
    quality = DEFAULT_QUALITY if quality is None else quality
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG", optimize=False, compress_level=6)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=quality, method=4, lossless=False)
    elif fmt == "jpeg":
        image = _flatten(image, _WHITE)
        image.save(buffer, "JPEG", quality=quality, optimize=False, progressive=False)
    else:
        raise ValueError(f"unknown image format {fmt!r}; expected png, webp or jpeg")
    return buffer.getvalue()


def _flatten(image: Image.Image, background: Color) -> Image.Image:
    """Composite ``image`` onto an opaque ``background`` colour, giving an RGB image."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    canvas = Image.new("RGBA", image.size, (*background[:3], 255))
    return Image.alpha_composite(canvas, image).convert("RGB")


# --- colours and lengths --------------------------------------------------------------------


def parse_color(text: str) -> Color:
    """``text`` as RGBA.

    Accepts a CSS/Pillow colour name, ``#rgb``, ``#rrggbb``, ``#rrggbbaa``, ``rgb(...)`` or
    ``transparent``. Raises ``ValueError`` with a readable message.
    """
    cleaned = text.strip().lower()
    if cleaned == "transparent":
        return (0, 0, 0, 0)
    try:
        rgb = ImageColor.getrgb(cleaned)
    except ValueError:
        raise ValueError(
            f"not a colour: {text!r} (use a name like 'white', '#rrggbb', '#rrggbbaa' "
            "or 'transparent')"
        ) from None
    return (rgb[0], rgb[1], rgb[2], rgb[3] if len(rgb) == 4 else 255)


# --- grid -----------------------------------------------------------------------------------


def grid(
    images: Sequence[Image.Image],
    *,
    columns: int,
    gap: int,
    background: Color | str,
    cell: tuple[int | None, int | None] | None = None,
    captions: Sequence[str] | None = None,
    title: str | None = None,
) -> Image.Image:
    """A contact sheet: ``images`` in equal cells, filled row by row, left to right.

    Cells are the size of the largest image unless ``cell`` gives a width and/or height (with only
    one given, the other is the largest image once scaled to it). Each image is scaled to fit its
    cell, keeping its aspect, and centred. ``gap`` pixels of ``background`` separate the cells;
    there is no outer margin. More columns than images are ignored.

    ``captions`` (one per image) are written in a band of ``background`` under each cell, and
    ``title`` in a band above the whole grid, so neither covers a picture. Type is sized to the
    cells (see ``Lettering``); a caption too long for its band is cut in the middle with an
    ellipsis (its ends tell cells apart), a title at its end.
    """
    if not images:
        raise ValueError("a grid needs at least one image")
    if columns < 1 or gap < 0:
        raise ValueError("columns must be >= 1 and gap >= 0")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"{len(captions)} captions for {len(images)} images")
    cell_w, cell_h = _cell_size(images, cell)
    lettering = Lettering.for_cell(cell_w, cell_h)
    layout = _GridLayout(
        columns=min(columns, len(images)),
        rows=math.ceil(len(images) / min(columns, len(images))),
        cell=(cell_w, cell_h),
        gap=gap,
        band=lettering.caption_band if captions is not None else 0,
        heading=lettering.title_band if title else 0,
    )
    fill = parse_color(background) if isinstance(background, str) else background
    sheet = Image.new("RGBA", layout.size, fill)
    for index, image in enumerate(images):
        fitted = resize(image, width=cell_w, height=cell_h, fit="contain").convert("RGBA")
        left, top = layout.cell_origin(index)
        dest = (left + (cell_w - fitted.width) // 2, top + (cell_h - fitted.height) // 2)
        sheet.alpha_composite(fitted, dest=dest)
    if captions is not None:
        _write_captions(sheet, layout, captions, lettering, fill)
    if title:
        _write_title(sheet, layout, title, lettering, fill)
    return sheet if fill[3] < 255 else sheet.convert("RGB")


@dataclass(frozen=True)
class Lettering:
    """Type sizes and band heights for captions and a title, in pixels, scaled to the cells.

    A caption is about 1/24 of the cell's shorter side (43 px on a 1024 px cell), never under
    10 px so it stays legible on thumbnails; its band leaves room above and below the letters.
    A title is half as large again.
    """

    caption_size: int
    caption_band: int
    title_size: int
    title_band: int

    @classmethod
    def for_cell(cls, width: int, height: int) -> Lettering:
        caption = max(10, round(min(width, height) / 24))
        title = round(caption * 1.5)
        return cls(caption, round(caption * 1.7), title, round(title * 1.8))

    @property
    def padding(self) -> int:
        """Space kept clear at each end of a line."""
        return max(2, self.caption_size // 2)


@dataclass(frozen=True)
class _GridLayout:
    """Where a grid's cells go: a title band, then rows of cells each with a caption band."""

    columns: int
    rows: int
    cell: tuple[int, int]
    gap: int
    band: int  # under each cell; 0 without captions
    heading: int  # above the grid; 0 without a title

    @property
    def size(self) -> tuple[int, int]:
        width = self.columns * self.cell[0] + (self.columns - 1) * self.gap
        rows_h = self.rows * (self.cell[1] + self.band) + (self.rows - 1) * self.gap
        return width, self.heading + rows_h

    def cell_origin(self, index: int) -> tuple[int, int]:
        row, column = divmod(index, self.columns)
        left = column * (self.cell[0] + self.gap)
        return left, self.heading + row * (self.cell[1] + self.band + self.gap)

    def band_box(self, index: int) -> tuple[int, int, int, int]:
        left, top = self.cell_origin(index)
        bottom = top + self.cell[1]
        return left, bottom, left + self.cell[0], bottom + self.band


def _write_captions(
    sheet: Image.Image,
    layout: _GridLayout,
    captions: Sequence[str],
    lettering: Lettering,
    background: Color,
) -> None:
    face = font(lettering.caption_size)
    ink, halo = ink_on(background)
    room = layout.cell[0] - 2 * lettering.padding
    for index, caption in enumerate(captions):
        line = shorten(caption, face, room, middle=True)
        draw_line(sheet, line, layout.band_box(index), face, ink, halo)


def _write_title(
    sheet: Image.Image, layout: _GridLayout, title: str, lettering: Lettering, background: Color
) -> None:
    face = font(lettering.title_size)
    ink, halo = ink_on(background)
    line = shorten(title, face, sheet.width - 2 * lettering.padding)
    draw_line(sheet, line, (0, 0, sheet.width, layout.heading), face, ink, halo)


def _cell_size(
    images: Sequence[Image.Image], cell: tuple[int | None, int | None] | None
) -> tuple[int, int]:
    width, height = cell or (None, None)
    if width and height:
        return width, height
    if width:
        return width, max(_scaled(image.size, width=width)[1] for image in images)
    if height:
        return max(_scaled(image.size, height=height)[0] for image in images), height
    return max(image.width for image in images), max(image.height for image in images)


# --- layers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One image placed on a base.

    ``x``/``y`` say where the layer's ``anchor`` point goes, in pixels or as a percentage of the
    base's width/height (negative values and values past the edge are allowed; the layer is
    clipped). ``width``/``height`` resize the layer the same way (one given: keep its aspect).
    ``opacity`` (0..1) scales the layer's own alpha.
    """

    image: Image.Image
    x: Length
    y: Length
    width: Length | None = None
    height: Length | None = None
    opacity: float = 1.0
    anchor: str = "top-left"


def place_layers(base: Image.Image, layers: Sequence[Layer]) -> Image.Image:
    """``base`` with each layer composited over it in order (later layers on top).

    The result has the base's size; it is RGBA only if the base has transparency.
    """
    canvas = base.convert("RGBA")
    for layer in layers:
        canvas = Image.alpha_composite(canvas, _layer_overlay(canvas.size, layer))
    return canvas if base.mode == "RGBA" else canvas.convert("RGB")


def _layer_overlay(size: tuple[int, int], layer: Layer) -> Image.Image:
    """A transparent image of ``size`` holding ``layer`` at its place, ready to composite.

    Pasting into a blank overlay (rather than ``alpha_composite`` with ``dest``) clips layers that
    start left of or above the base, which ``alpha_composite`` refuses.
    """
    image = _sized_layer(layer, size).convert("RGBA")
    if layer.opacity < 1:
        alpha = image.getchannel("A").point([round(a * layer.opacity) for a in range(256)])
        image.putalpha(alpha)
    fx, fy = ANCHORS[layer.anchor]
    left = resolve_length(layer.x, size[0]) - round(image.width * fx)
    top = resolve_length(layer.y, size[1]) - round(image.height * fy)
    overlay = Image.new("RGBA", size, (0, 0, 0, 0))
    overlay.paste(image, (left, top))
    return overlay


def _sized_layer(layer: Layer, base_size: tuple[int, int]) -> Image.Image:
    # A tiny percentage of a small base can round to 0 pixels; a layer is at least 1 pixel.
    width = None if layer.width is None else max(1, resolve_length(layer.width, base_size[0]))
    height = None if layer.height is None else max(1, resolve_length(layer.height, base_size[1]))
    if width is None and height is None:
        return layer.image
    if width is not None and height is not None:
        return resize(layer.image, width=width, height=height, fit="exact")
    return resize(layer.image, width=width, height=height, fit="contain")


# --- resize ---------------------------------------------------------------------------------


def resize(
    image: Image.Image, *, width: int | None, height: int | None, fit: str = "contain"
) -> Image.Image:
    """``image`` resized with LANCZOS resampling.

    - ``contain``: the largest size that fits in width×height keeping the aspect, with no padding
      (so one side may be smaller than asked). With only one of width/height, scale to it.
    - ``cover``: exactly width×height, scaled to fill and centre-cropped. Needs both.
    - ``exact``: stretched to exactly width×height. Needs both.
    """
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}; expected one of {', '.join(FITS)}")
    if width is None and height is None:
        raise ValueError("resize needs a width, a height or both")
    if fit == "contain":
        size = _scaled(image.size, width=width, height=height)
        return image.resize(size, _RESAMPLE) if size != image.size else image.copy()
    if width is None or height is None:
        raise ValueError(f"fit {fit!r} needs both a width and a height")
    if fit == "cover":
        return ImageOps.fit(image, (width, height), method=_RESAMPLE, centering=(0.5, 0.5))
    return image.resize((width, height), _RESAMPLE)


def _scaled(
    size: tuple[int, int], *, width: int | None = None, height: int | None = None
) -> tuple[int, int]:
    """``size`` scaled by one factor to fit within width×height (either may be None: unbounded)."""
    factors = [limit / side for limit, side in ((width, size[0]), (height, size[1])) if limit]
    factor = min(factors)
    return max(1, round(size[0] * factor)), max(1, round(size[1] * factor))
