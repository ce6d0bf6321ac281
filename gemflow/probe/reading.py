"""Readers: what turns a probe's image back into text.

The default reader is a Gemini text model reached through the same client (and the same per-call
cache) as the probes; ``tesseract`` runs local OCR through the ``tesseract`` program, when it is on
PATH. A reader returns the text it read, ``""`` when the image shows none, or None when it could not
say (a refusal).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gemflow.errors import StepError
from gemflow.providers.base import ApiRequest, ApiResponse

TESSERACT = "tesseract"
NO_TEXT = "NO_TEXT"
READ_INSTRUCTION = (
    "Transcribe all of the text shown in this image, verbatim: every word in reading order, "
    "spelled exactly as shown. Reply with the transcription only, without quotes or comments. "
    f"If the image shows no text at all, reply with exactly {NO_TEXT}."
)
OCR_TIMEOUT = 60.0
INSTALL_TESSERACT = (
    "install it (Debian/Ubuntu: apt install tesseract-ocr; macOS: brew install tesseract; "
    "Windows: https://github.com/UB-Mannheim/tesseract/wiki), or drop 'reader: tesseract' to "
    "read with a Gemini text model"
)

Call = Callable[[ApiRequest, int], ApiResponse]  # one cached API call: (request, sample)


class Reader(Protocol):
    name: str  # a model id, or "tesseract"

    def read(self, image: bytes, mime_type: str, sample: int) -> str | None: ...


@dataclass(frozen=True)
class ModelReader:
    """A Gemini text model asked to transcribe the image (a TEXT-only request carrying it)."""

    name: str
    call: Call

    def request(self, image: bytes, mime_type: str) -> ApiRequest:
        return ApiRequest(
            model=self.name,
            prompt=READ_INSTRUCTION,
            images=((image, mime_type),),
            temperature=0.0,
            modalities=("TEXT",),
        )

    def read(self, image: bytes, mime_type: str, sample: int) -> str | None:
        response = self.call(self.request(image, mime_type), sample)
        text = "\n".join(response.texts).strip()
        if response.block_reason or not text:
            return None
        return "" if text == NO_TEXT else text


@dataclass(frozen=True)
class TesseractReader:
    """Local OCR: ``tesseract stdin stdout``. Not an API call, so not cached on its own."""

    program: str
    name: str = TESSERACT

    @classmethod
    def find(cls) -> TesseractReader:
        """The reader, or a StepError saying what to install (raised before any call is paid)."""
        program = shutil.which(TESSERACT)
        if program is None:
            raise StepError(
                f"reader 'tesseract' needs the tesseract program, which is not on PATH: "
                f"{INSTALL_TESSERACT}"
            )
        return cls(program)

    def read(self, image: bytes, mime_type: str, sample: int) -> str | None:
        import subprocess  # only when OCR runs: keeps loading workflows light

        try:
            done = subprocess.run(
                [self.program, "stdin", "stdout"],
                input=image,
                capture_output=True,
                timeout=OCR_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StepError(f"tesseract could not read a probe image: {exc}") from exc
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            raise StepError(
                f"tesseract failed (exit {done.returncode}): {detail[-1] if detail else ''}"
            )
        return done.stdout.decode(errors="replace").strip()


def make_reader(name: str, call: Call) -> Reader:
    """The reader called ``name``: "tesseract", else a text model id."""
    return TesseractReader.find() if name == TESSERACT else ModelReader(name, call)


def tesseract_missing() -> bool:
    return shutil.which(TESSERACT) is None
