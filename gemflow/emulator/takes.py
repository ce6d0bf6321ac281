"""Takes: the n-th identical image request gets the n-th picture of its scene.

A real image model answers every call with a new picture, and gemflow's variants and re-rolls send
the identical request several times, so the emulator must not answer them all alike. It counts
requests by their scene's digest (model, prompt, system, input images, ratio, size, temperature,
seed: what the picture is made from) and draws take n differently from take 1: other colours and
circles, another stripe, and "take n" in the corner mark. Take 1 is the picture the emulator has
always drawn.

Requests that set a ``seed`` are not counted: with the same seed the real service answers much the
same picture again, and a seeded request is how a user asks for that, so every one is take 1.
Counts live as long as the emulator (a built-in one lives for one run); only image answers count,
not faults or retries; the oldest of very many scenes are forgotten, and start again at take 1.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

_MEMORY_LIMIT = 20_000


class Takes:
    """How many pictures each scene has been answered with so far."""

    def __init__(self, limit: int = _MEMORY_LIMIT) -> None:
        self._counts: OrderedDict[bytes, int] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def next(self, digest: bytes) -> int:
        """The take number of one more request for the scene with ``digest``: 1, 2, 3..."""
        with self._lock:
            take = self._counts.get(digest, 0) + 1
            self._counts[digest] = take
            self._counts.move_to_end(digest)
            while len(self._counts) > self._limit:
                self._counts.popitem(last=False)
            return take
