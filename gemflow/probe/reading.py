"""Readers: what turns a probe's image back into text.

The default reader is a Gemini text model, asked through the same send path (and the same per-call
cache) as the probes; ``tesseract`` runs local OCR through the ``tesseract`` program, when it is on
PATH. A reader says which calls it needs for a set of images (none, for OCR), then turns their
answers into texts: the text it read, ``""`` when the image shows none, or None when it could not
say (a refusal).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gemflow.errors import StepError
from gemflow.kinds.base import Call
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


@dataclass(frozen=True)
class Picture:
    """An image to read: its bytes, type, and the sample it belongs to."""

    data: bytes
    mime_type: str
    sample: int


class Reader(Protocol):
    @property
    def name(self) -> str:
        """A model id, or "tesseract"."""
        ...

    def calls(self, pictures: Sequence[Picture]) -> list[Call]:
        """The API calls reading ``pictures`` takes, cached per sample; none for local OCR."""
        ...

    def texts(
        self, pictures: Sequence[Picture], answers: Sequence[ApiResponse]
    ) -> list[str | None]:
        """What each picture shows, from the answers to ``calls`` (in order)."""
        ...


@dataclass(frozen=True)
class ModelReader:
    """A Gemini text model asked to transcribe the image (a TEXT-only request carrying it)."""

    name: str

    def calls(self, pictures: Sequence[Picture]) -> list[Call]:
        return [Call(self.request(p.data, p.mime_type), sample=p.sample) for p in pictures]

    def texts(
        self, pictures: Sequence[Picture], answers: Sequence[ApiResponse]
    ) -> list[str | None]:
        return [self.text(answer) for answer in answers]

    def request(self, image: bytes, mime_type: str) -> ApiRequest:
        return ApiRequest(
            model=self.name,
            prompt=READ_INSTRUCTION,
            images=((image, mime_type),),
            temperature=0.0,
            modalities=("TEXT",),
        )

    @staticmethod
    def text(response: ApiResponse) -> str | None:
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

    def calls(self, pictures: Sequence[Picture]) -> list[Call]:
        return []

    def texts(
        self, pictures: Sequence[Picture], answers: Sequence[ApiResponse]
    ) -> list[str | None]:
        return [self.read(p.data) for p in pictures]

    def read(self, image: bytes) -> str:
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


def make_reader(name: str) -> Reader:
    """The reader called ``name``: "tesseract", else a text model id."""
    return TesseractReader.find() if name == TESSERACT else ModelReader(name)


def tesseract_missing() -> bool:
    return shutil.which(TESSERACT) is None
