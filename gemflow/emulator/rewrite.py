"""An emulated prompt rewriter: what some image services put between your prompt and the model.

``Emulator(rewrite="system,paraphrase")`` (or ``gemflow emulator --rewrite system,paraphrase``)
makes the emulator behave like such a service. Each mode is one thing real rewriters do:

    system      a hidden system prompt (``HIDDEN_SYSTEM``) sits ahead of every image request, before
                the request's own system instruction. The model sees it as earlier context.
    prefix      the rewriter glues its own words (``PREFIX``) in front of the user's words.
    paraphrase  the user's words are reworded: a few words swapped for synonyms (``SWAPS``),
                tokens that look like noise (letters mixed with digits, such as a canary) dropped,
                and an "enhancer" sentence (``ENHANCER``) added at the end.

Only image requests are rewritten; a text request (a reader) reaches its model as sent. Everything
is deterministic, so equal requests still give equal bytes. What the model then draws from the text
it received is :mod:`gemflow.emulator.lettering`'s business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REWRITE_MODES = ("system", "prefix", "paraphrase")
HIDDEN_SYSTEM = (
    "You are Nano Banana, an image model. Make every picture vivid and family friendly. "
    "Never show real brand logos."
)
PREFIX = "A vivid, high quality picture of:"
ENHANCER = "Highly detailed, dramatic lighting."
# Lowercase word -> replacement; None drops the word. Rewriters love to "improve" wording.
SWAPS: dict[str, str | None] = {
    "kitten": "young cat",
    "prominent": "striking",
    "fur": "coat",
    "photo": "photograph",
    "large": "big",
    "legible": "readable",
    "fridge": "refrigerator",
    "white": "glossy white",
    "verbatim": None,
    "exactly": None,
}
_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" +([,.;:!?])")
_DANGLING_PUNCTUATION = re.compile(r"[,;:]+(?=[,;:.!?])")  # left behind by a dropped word


@dataclass(frozen=True)
class Rewriter:
    """Which rewrites an emulated service applies (see the module docstring)."""

    system: str | None = None
    prefix: str | None = None
    paraphrase: bool = False

    @classmethod
    def parse(cls, spec: str) -> Rewriter:
        """``"system,prefix,paraphrase"`` (any non-empty subset). Raises ValueError otherwise."""
        modes = [m.strip() for m in spec.split(",") if m.strip()]
        unknown = [m for m in modes if m not in REWRITE_MODES]
        if unknown or not modes:
            raise ValueError(
                f"unknown rewrite mode {', '.join(map(repr, unknown)) or repr(spec)}; "
                f"modes: {', '.join(REWRITE_MODES)} (comma-separated)"
            )
        return cls(
            system=HIDDEN_SYSTEM if "system" in modes else None,
            prefix=PREFIX if "prefix" in modes else None,
            paraphrase="paraphrase" in modes,
        )

    def texts(self, texts: tuple[str, ...]) -> tuple[str, ...]:
        """The user's text parts as the model receives them."""
        received = tuple(paraphrase(t) for t in texts) if self.paraphrase else texts
        if self.prefix and received:
            received = (f"{self.prefix} {received[0]}", *received[1:])
        return received

    def context(self, system: str | None) -> str | None:
        """The system context the model receives: the hidden prompt first, then the request's."""
        parts = [text for text in (self.system, system) if text]
        return "\n".join(parts) if parts else None


def paraphrase(text: str) -> str:
    """``text`` reworded as the emulated rewriter does: swaps, dropped noise, an enhancer."""
    reworded = _WORD.sub(_swap, text)
    reworded = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _SPACES.sub(" ", reworded))
    reworded = _DANGLING_PUNCTUATION.sub("", reworded).strip()
    return f"{reworded} {ENHANCER}" if reworded else ENHANCER


def _swap(match: re.Match[str]) -> str:
    word = match.group(0)
    if _looks_like_noise(word):
        return ""
    lower = word.lower()
    if lower not in SWAPS:
        return word
    replacement = SWAPS[lower]
    if replacement is None:
        return ""
    return replacement[0].upper() + replacement[1:] if word[0].isupper() else replacement


def _looks_like_noise(word: str) -> bool:
    return any(c.isdigit() for c in word) and any(c.isalpha() for c in word)
