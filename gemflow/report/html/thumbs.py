"""Thumbnails for the report: small WebP pictures embedded as data URIs, made once per picture.

A thumbnail is kept in the result store under ``thumb/<digest of the picture>`` (``@<px>`` added
for a size other than the card's), so a report of 1,000 steps encodes only the pictures that are
new since the last report; ``gemflow cache gc`` keeps the thumbnails of pictures a lock file
records. What a thumbnail was made with (``THUMB_RECIPE``) is in its metadata: a different recipe
makes it again.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gemflow.cache.store import ResultStore
from gemflow.engine.keys import digest
from gemflow.errors import GemflowError

CARD_PX = 320  # the long side of a card's picture
SHEET_PX = 960  # a probe's evidence sheet: its captions should be legible without a click
# WebP qualities tried in turn until the thumbnail fits its byte budget: a card's at most 18 KB
# (24 KB as a data URI), so 100 pictures stay well under 3 MB even when they are detailed
# photographs; a flat picture gets the first quality.
QUALITIES = (72, 55, 40, 25)
CARD_BYTES = 18_000
THUMB_RECIPE = {"thumb": 1, "format": "webp", "qualities": list(QUALITIES), "bytes": CARD_BYTES}


@dataclass(frozen=True)
class Source:
    """Where a picture can be read: its store entry (output, or one attachment) or a file."""

    digest: str  # as the lock file records it ("" when it records none)
    path: Path | None = None
    key: str | None = None
    attachment: str | None = None
    px: int = CARD_PX


@dataclass(frozen=True)
class Thumb:
    digest: str  # of the picture it was made from
    uri: str  # data:image/webp;base64,...
    width: int
    height: int


def thumb_key(picture_digest: str, px: int) -> str:
    return f"thumb/{picture_digest}" + ("" if px == CARD_PX else f"@{px}")


def make_thumbs(
    sources: Iterable[Source], store: ResultStore, *, jobs: int | None = None
) -> dict[Source, Thumb]:
    """A thumbnail of each source that can be read and decoded (the rest are left out): from
    the store when it holds one, else made now (on ``jobs`` threads) and stored."""
    wanted = list(dict.fromkeys(sources))
    found: dict[Source, Thumb] = {}
    missing = []
    for source in wanted:
        stored = _stored(store, source.digest, source.px) if source.digest else None
        if stored is not None:
            found[source] = stored
        else:
            missing.append(source)
    workers = jobs or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for source, made in zip(missing, pool.map(lambda s: _make(s, store), missing), strict=True):
            if made is not None:
                found[source] = made
    return found


def _stored(store: ResultStore, picture: str, px: int) -> Thumb | None:
    key = thumb_key(picture, px)
    meta = store.meta(key)
    if meta is None or meta.get("recipe") != {**THUMB_RECIPE, "px": px}:
        return None
    files = store.files(key)
    if files is None:
        return None
    return Thumb(picture, _uri(files[0]), int(meta["width"]), int(meta["height"]))


def _make(source: Source, store: ResultStore) -> Thumb | None:
    data = _picture(source, store)
    if data is None:
        return None
    picture = digest(data)
    if picture != source.digest:  # a file on disk that is not what the lock records
        stored = _stored(store, picture, source.px)
        if stored is not None:
            return stored
    from gemflow.imaging.operations import encode, open_image

    try:
        image = open_image(data, source=str(source.path or source.key))
    except GemflowError:
        return None
    image.thumbnail((source.px, source.px))
    budget = CARD_BYTES * (source.px / CARD_PX) ** 2
    for quality in QUALITIES:
        webp = encode(image, "webp", quality=quality)
        if len(webp) <= budget:
            break
    meta = {
        "kind": "thumbnail",
        "recipe": {**THUMB_RECIPE, "px": source.px},
        "width": image.width,
        "height": image.height,
    }
    # A full or read-only cache: the report still gets its thumbnail, made again next time.
    with contextlib.suppress(GemflowError):
        store.put(thumb_key(picture, source.px), webp, meta)
    return Thumb(picture, _uri(webp), image.width, image.height)


def _picture(source: Source, store: ResultStore) -> bytes | None:
    """The picture's bytes: from the store (verified), else from the file on disk."""
    if source.key is not None:
        files = store.files(source.key)
        if files is not None:
            data = files[0] if source.attachment is None else files[1].get(source.attachment)
            if data is not None:
                return data
    if source.path is not None:
        try:
            return source.path.read_bytes()
        except OSError:
            return None
    return None


def _uri(webp: bytes) -> str:
    return "data:image/webp;base64," + base64.b64encode(webp).decode("ascii")
