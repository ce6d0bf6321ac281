"""The contact sheet: every probe image in a grid (a row per sample, a column per probe), each
captioned with what it was, what was read and what that shows, under a line with the verdict."""

from __future__ import annotations

import textwrap

from PIL import Image, ImageDraw

from gemflow.imaging.operations import encode, grid, open_image, resize
from gemflow.imaging.text import Font
from gemflow.imaging.text import font as lettering_font
from gemflow.probe.method import Outcome, ProbeResult

CELL = 256
CAPTION_LINES = 4
FONT_SIZE = 13
LINE = FONT_SIZE + 4
PAD = 8
GAP = 8
_INK = (20, 20, 20)
_MUTED = (110, 110, 110)
_PLACEHOLDER = (228, 228, 228)
_SIGNAL_INK = {"rewritten": (176, 30, 30), "verbatim": (20, 120, 50), "none": _MUTED}


def contact_sheet(outcome: Outcome) -> bytes:
    """The sheet as PNG bytes."""
    font = lettering_font(FONT_SIZE)
    cells = [_cell(result, font) for sample in outcome.samples for result in sample.results]
    body = grid(cells, columns=len(outcome.plan.probes), gap=GAP, background="white")
    verdict = outcome.verdict
    header = f"{verdict.verdict} · confidence {verdict.confidence:.2f} · {outcome.plan.model}"
    sheet = Image.new("RGB", (body.width + 2 * PAD, body.height + 2 * PAD + LINE + PAD), "white")
    ImageDraw.Draw(sheet).text((PAD, PAD), header, font=font, fill=_INK)
    sheet.paste(body, (PAD, 2 * PAD + LINE))
    return encode(sheet, "png")


def _cell(result: ProbeResult, font: Font) -> Image.Image:
    cell = Image.new("RGB", (CELL, CELL + CAPTION_LINES * LINE + PAD), "white")
    cell.paste(_picture(result, font), (0, 0))
    draw = ImageDraw.Draw(cell)
    y = CELL + PAD // 2
    title = f"{result.probe} #{result.sample} · {result.finding.signal}"
    draw.text((2, y), title, font=font, fill=_SIGNAL_INK[result.finding.signal])
    read = "(no reading)" if result.read is None else result.read or "(no text)"
    for line in textwrap.wrap(
        f"read: {read}", width=36, max_lines=CAPTION_LINES - 1, placeholder=" …"
    ):
        y += LINE
        draw.text((2, y), line, font=font, fill=_MUTED)
    return cell


def _picture(result: ProbeResult, font: Font) -> Image.Image:
    """The probe's image fitted into a square, or a grey card naming the outcome."""
    square = Image.new("RGB", (CELL, CELL), _PLACEHOLDER)
    if result.image is None:
        reason = result.block_reason or result.finish_reason or ""
        label = f"{result.outcome.replace('_', ' ')}\n{reason}".strip()
        ImageDraw.Draw(square).multiline_text(
            (CELL // 2, CELL // 2), label, font=font, fill=_MUTED, anchor="mm", align="center"
        )
        return square
    image = open_image(result.image, source=f"{result.probe} image").convert("RGB")
    image = resize(image, width=CELL, height=CELL, fit="contain")
    square.paste(image, ((CELL - image.width) // 2, (CELL - image.height) // 2))
    return square
