"""An emulated service between your prompt and the model: what real image services do to prompts,
and how their models letter text they are asked to show.

``Emulator(rewrite="system,paraphrase")`` (or ``gemflow emulator --rewrite system,paraphrase``,
``gemflow run --emulator-rewrite ...``) makes the emulator behave like such a service. Modes combine
(comma-separated). Five are things a service does to the prompt before its model sees it:

    system      a hidden system prompt (``HIDDEN_SYSTEM``) sits ahead of every image request, before
                the request's own system instruction. The model sees it as earlier context.
    prefix      the rewriter glues its own words (``PREFIX``) in front of the user's words.
    paraphrase  the user's words are reworded: a few words swapped for synonyms (``SWAPS``),
                tokens that look like noise (letters mixed with digits, such as a canary) dropped,
                and an "enhancer" sentence (``ENHANCER``) added at the end.
    reword      a paraphraser that keeps what it does not understand: the same synonyms, each
                sentence reordered (its first prepositional phrase moved to the front: "With
                striking fur, a young cat"), every other token kept, the canary included.
    expand      an expander: style words (``EXPANSION``) appended to the user's text.

Four are habits of the model itself; with none of them it letters what it is asked, as
:mod:`gemflow.emulator.lettering` describes (the quoted text alone, nothing for "after"):

    literal     it letters its whole prompt, instruction and all, whatever the request asks for;
                asked for the text before or after the request, it letters its context (if any)
                and then its prompt.
    invent      asked for the text before the request and given no context, or for the text
                after it, it makes up plausible text ("Welcome to our kitchen!").
    noisy       its lettering has about 2.5% of the characters wrong (look-alike letters, a letter
                dropped or doubled), and its reader models misread about as many again: about 5%
                of characters come back wrong.
    refuse      it will not show the text before the request (IMAGE_SAFETY), and refuses about a
                third of the other requests to letter text, with IMAGE_SAFETY or a text-only answer.

Only image requests are rewritten; a text request (a reader) reaches its model as sent. Everything
is deterministic: what ``invent``, ``noisy`` and ``refuse`` draw depends on the request and on how
many identical requests came before it, so equal runs get equal answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REWRITE_MODES = ("system", "prefix", "paraphrase", "reword", "expand")
MODEL_MODES = ("literal", "invent", "noisy", "refuse")
MODES = (*REWRITE_MODES, *MODEL_MODES)
EXCLUSIVE = (("paraphrase", "reword"), ("literal", "invent"))
HIDDEN_SYSTEM = (
    "You are Nano Banana, an image model. Make every picture vivid and family friendly. "
    "Never show real brand logos."
)
PREFIX = "A vivid, high quality picture of:"
ENHANCER = "Highly detailed, dramatic lighting."
EXPANSION = "cinematic lighting, 8k, highly detailed"
NOISE = 0.025  # share of characters the noisy model letters wrong; its readers misread as many
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
PREPOSITIONS = frozenset({"with", "on", "in", "against", "at", "by", "under", "beside", "near"})
_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")
_SPACES = re.compile(r"[ \t]{2,}")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" +([,.;:!?])")
_DANGLING_PUNCTUATION = re.compile(r"[,;:]+(?=[,;:.!?])")  # left behind by a dropped word
_QUOTED = re.compile(r'("[^"]*")')
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Rewriter:
    """What an emulated service does to prompts, and how its model letters text (see the module
    docstring)."""

    system: str | None = None
    prefix: str | None = None
    paraphrase: bool = False
    reword: bool = False
    expand: str | None = None
    lettering: str = "asked"  # "asked", "literal" or "invent": see gemflow.emulator.lettering
    noise: float = 0.0  # share of characters lettered wrong, and as many misread by readers
    refuse: bool = False

    @classmethod
    def parse(cls, spec: str) -> Rewriter:
        """``"system,prefix,paraphrase"`` (any non-empty set of MODES, but not both of a pair in
        EXCLUSIVE). Raises ValueError otherwise."""
        modes = [m.strip() for m in spec.split(",") if m.strip()]
        unknown = [m for m in modes if m not in MODES]
        if unknown or not modes:
            raise ValueError(
                f"unknown rewrite mode {', '.join(map(repr, unknown)) or repr(spec)}; "
                f"modes: {', '.join(MODES)} (comma-separated)"
            )
        for pair in EXCLUSIVE:
            if set(pair) <= set(modes):
                raise ValueError(f"rewrite modes {pair[0]!r} and {pair[1]!r} exclude each other")
        return cls(
            system=HIDDEN_SYSTEM if "system" in modes else None,
            prefix=PREFIX if "prefix" in modes else None,
            paraphrase="paraphrase" in modes,
            reword="reword" in modes,
            expand=EXPANSION if "expand" in modes else None,
            lettering=next((m for m in ("literal", "invent") if m in modes), "asked"),
            noise=NOISE if "noisy" in modes else 0.0,
            refuse="refuse" in modes,
        )

    def texts(self, texts: tuple[str, ...]) -> tuple[str, ...]:
        """The user's text parts as the model receives them."""
        received = texts
        if self.paraphrase:
            received = tuple(paraphrase(t) for t in received)
        if self.reword:
            received = tuple(reword(t) for t in received)
        if self.expand and received:
            received = (*received[:-1], expand(received[-1], self.expand))
        if self.prefix and received:
            received = (f"{self.prefix} {received[0]}", *received[1:])
        return received

    def context(self, system: str | None) -> str | None:
        """The system context the model receives: the hidden prompt first, then the request's."""
        parts = [text for text in (self.system, system) if text]
        return "\n".join(parts) if parts else None


def paraphrase(text: str) -> str:
    """``text`` reworded as the emulated rewriter does: swaps, dropped noise, an enhancer."""
    reworded = _tidy(_WORD.sub(_swap, text))
    return f"{reworded} {ENHANCER}" if reworded else ENHANCER


def reword(text: str) -> str:
    """``text`` reworded keeping every token it does not know: synonyms, sentences reordered."""
    parts = _QUOTED.split(text)  # the quoted stretches at odd indices, quotes included
    reordered = [
        f'"{_reorder(part[1:-1])}"' if i % 2 else _reorder(part) for i, part in enumerate(parts)
    ]
    return _tidy(_WORD.sub(lambda m: _swap(m, keep_noise=True), "".join(reordered)))


def expand(text: str, expansion: str = EXPANSION) -> str:
    """``text`` with style words appended, the way prompt expanders add them."""
    body = text.rstrip()
    return f"{body.removesuffix('.')}, {expansion}" if body else expansion


def _reorder(text: str) -> str:
    """Each sentence of ``text`` with its first prepositional phrase moved to the front."""
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    sentences = _SENTENCE_END.split(text.strip())
    return lead + " ".join(_front(s) for s in sentences) + trail


def _front(sentence: str) -> str:
    """ "A kitten with purple fur." -> "With purple fur, a kitten." (unchanged without a phrase)."""
    body = sentence.rstrip(".!?:;,")
    end = sentence[len(body) :]
    tokens = body.split()
    at = next((i for i, t in enumerate(tokens) if i >= 2 and t.lower() in PREPOSITIONS), None)
    if at is None or len(tokens) - at < 3:
        return sentence
    head, tail = tokens[:at], tokens[at:]
    first = head[0]
    if first[1:].islower() or len(first) == 1:
        head[0] = first.lower()
    tail[0] = tail[0][0].upper() + tail[0][1:]
    return f"{' '.join(tail).rstrip(',;:')}, {' '.join(head).rstrip(',;:')}{end}"


def _tidy(text: str) -> str:
    text = _SPACE_BEFORE_PUNCTUATION.sub(r"\1", _SPACES.sub(" ", text))
    return _DANGLING_PUNCTUATION.sub("", text).strip()


def _swap(match: re.Match[str], *, keep_noise: bool = False) -> str:
    word = match.group(0)
    if _looks_like_noise(word) and not keep_noise:
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
