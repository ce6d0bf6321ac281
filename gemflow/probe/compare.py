"""Compare the text a probe should show with the text read back off its image.

Texts are compared as normalised words (Unicode NFKC, case-folded, punctuation dropped), because a
model setting text in letter magnets does not keep case or punctuation, and a reader may not either.
A word sent and a different but similar word read at the same place (``legible``/``legable``) is a
misreading, not a rewrite: it is listed apart and does not count as added or dropped.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W_]+")
MISREAD_CUTOFF = 0.75  # difflib ratio above which two words are one word misread
LEADING_MIN_WORDS = 3  # fewer words before the user's own could be a stray misreading


def words(text: str) -> list[str]:
    """``text`` as normalised words."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


@dataclass(frozen=True)
class Comparison:
    """How the text read back differs from the text expected."""

    similarity: float  # 0..1: difflib ratio of the normalised texts (1 = the same words)
    words_added: list[str] = field(default_factory=list)  # read, but never sent
    words_dropped: list[str] = field(default_factory=list)  # sent, but not read
    words_misread: list[str] = field(default_factory=list)  # "sent→read": likely misspellings
    leading_text: str = ""  # words read before the expected text begins ("" if none)
    canary_found: bool | None = None  # None when no canary was expected

    @property
    def changed(self) -> int:
        """Words added or dropped, misreadings not counted."""
        return len(self.words_added) + len(self.words_dropped)

    @property
    def leads(self) -> bool:
        """Enough words appear before the expected text to count as text put in front of it."""
        return len(self.leading_text.split()) >= LEADING_MIN_WORDS


def compare(expected: str, read: str, canary: str | None = None) -> Comparison:
    """Compare ``read`` against ``expected``; ``canary`` must appear in ``read`` if given."""
    sent, got = words(expected), words(read)
    matcher = difflib.SequenceMatcher(None, sent, got, autojunk=False)
    added: list[str] = []
    dropped: list[str] = []
    misread: list[str] = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            continue
        gone, new = _pair_misreadings(sent[a0:a1], got[b0:b1], misread)
        dropped += gone
        added += new
    return Comparison(
        similarity=_similarity(sent, got),
        words_added=added,
        words_dropped=dropped,
        words_misread=misread,
        leading_text=" ".join(_leading(matcher, got)),
        canary_found=None if canary is None else _compact(canary) in "".join(got),
    )


def unexplained_words(read: str, instruction: str) -> list[str]:
    """Words read that are not in ``instruction``: a model echoing its own prompt explains those."""
    own = set(words(instruction))
    return [word for word in words(read) if word not in own]


def _similarity(sent: list[str], got: list[str]) -> float:
    if not sent and not got:
        return 1.0
    ratio = difflib.SequenceMatcher(None, " ".join(sent), " ".join(got), autojunk=False).ratio()
    return round(ratio, 3)


def _pair_misreadings(
    gone: list[str], new: list[str], misread: list[str]
) -> tuple[list[str], list[str]]:
    """Split a replaced run into misreadings (appended to ``misread``) and real changes."""
    left = list(new)
    dropped = []
    for word in gone:
        match = difflib.get_close_matches(word, left, n=1, cutoff=MISREAD_CUTOFF)
        if match:
            left.remove(match[0])
            misread.append(f"{word}→{match[0]}")
        else:
            dropped.append(word)
    return dropped, left


def _leading(matcher: difflib.SequenceMatcher[str], got: list[str]) -> list[str]:
    """Words read before the first expected word that was read, beyond those standing in for
    expected words that came before it (a replaced first word is not text put in front)."""
    first = next((block for block in matcher.get_matching_blocks() if block.size), None)
    if first is None:
        return []
    extra = first.b - first.a
    return got[:extra] if extra > 0 else []


def _compact(text: str) -> str:
    return "".join(words(text))
