"""Takes: the n-th identical image request gets the n-th picture of its scene.

A real image model answers every call with a new picture, and gemflow's variants and re-rolls send
the identical request several times, so the emulator must not answer them all alike. It counts
requests by their scene's digest (model, prompt, system, input images, ratio, size, temperature,
seed: what the picture is made from) and draws take n differently from take 1: other colours and
circles, another stripe, and "take n" in the corner mark. Take 1 is the picture the emulator has
always drawn.

Requests that set a ``seed`` are not counted: with the same seed the real service answers much the
same picture again, and a seeded request is how a user asks for that, so every one is take 1.
Counts live as long as the emulator, or in a file (``load``/``save``: the built-in emulator keeps
them in the cache folder, so that its runs are one service, as Google's are: a variant asked for
in a later run is not the picture an earlier run got); only image answers count, not faults or
retries; the oldest of very many scenes are forgotten, and start again at take 1.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from pathlib import Path

_MEMORY_LIMIT = 20_000
_FORMAT = 1


class Takes:
    """How many pictures each scene has been answered with so far."""

    def __init__(self, limit: int = _MEMORY_LIMIT) -> None:
        self._counts: OrderedDict[bytes, int] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()
        self.changed = False

    def load(self, path: Path) -> None:
        """Go on from the counts saved in ``path``; a missing or damaged file starts afresh."""
        loaded = _read(path)
        with self._lock:
            self._counts = OrderedDict(loaded[-self._limit :])

    def save(self, path: Path) -> None:
        """Keep the counts in ``path`` (written whole or not at all), if any changed; merged
        with what another emulator on the same file saved meanwhile (the higher count wins)."""
        from gemflow.fileio import write_atomic

        with self._lock:
            if not self.changed:
                return
            mine = dict(self._counts)
            self.changed = False
        counts = dict(_read(path))
        for scene, take in mine.items():
            counts[scene] = max(take, counts.pop(scene, 0))  # and the most recent last
        kept = list(counts.items())[-self._limit :]
        text = json.dumps({"format": _FORMAT, "takes": {scene.hex(): n for scene, n in kept}})
        with contextlib.suppress(OSError):  # a read-only or full cache: take 1 next time
            write_atomic(path, text.encode())

    def next(self, digest: bytes) -> int:
        """The take number of one more request for the scene with ``digest``: 1, 2, 3..."""
        with self._lock:
            take = self._counts.get(digest, 0) + 1
            self._counts[digest] = take
            self.changed = True
            self._counts.move_to_end(digest)
            while len(self._counts) > self._limit:
                self._counts.popitem(last=False)
            return take


def _read(path: Path) -> list[tuple[bytes, int]]:
    """The counts saved in ``path``, oldest first; none if it is missing or damaged."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        counts = saved["takes"] if saved.get("format") == _FORMAT else {}
        return [(bytes.fromhex(scene), int(take)) for scene, take in counts.items()]
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return []
