"""Reading back the text drawn into images this emulator made, when a request sends them in."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from gemflow.emulator.render import embedded_text, read_mark
from gemflow.emulator.wire import InputImage

_MEMORY_LIMIT = 20_000


class DrawnTexts:
    """What each recent picture shows, by the bytes its colour stripe encodes."""

    def __init__(self) -> None:
        self._drawn: OrderedDict[bytes, str] = OrderedDict()  # stripe mark -> drawn text
        self._lock = threading.Lock()

    def remember(self, mark: bytes, text: str) -> None:
        with self._lock:
            self._drawn[mark] = text
            self._drawn.move_to_end(mark)
            while len(self._drawn) > _MEMORY_LIMIT:
                self._drawn.popitem(last=False)

    def read_back(self, images: Iterable[InputImage]) -> str | None:
        """The text drawn into ``images``, if this emulator drew them.

        First the PNG text chunk (survives restarts), then the colour stripe looked up among the
        images this emulator made (survives lossless re-encoding, e.g. the SDK's PIL handling).
        """
        found = []
        for image in images:
            text = embedded_text(image.data)
            if text is None:
                mark = read_mark(image.data)
                with self._lock:
                    text = self._drawn.get(mark) if mark is not None else None
            if text is not None:
                found.append(text)
        return "\n".join(found) if found else None
