"""Compare the text a probe should show with the text read back off its image.

Texts are compared as normalised words (Unicode NFKC, case-folded, punctuation dropped), because a
model setting text in letter magnets does not keep case or punctuation, and a reader may not either.
Three things are told apart from rewriting:

- **misreadings**: a word sent and a word read at the same place that differ by about a letter in
  three (``legible``/``legable``, ``4821``/``482l``) are one word lettered or read wrong; they are
  listed apart and count as neither added nor dropped. Rewriters swap whole words
  (``kitten``/``cat``), which are further apart;
- **the probe's own instruction echoed**: a model may letter the whole prompt, instruction and all
  ("Large, legible letter magnets ... spell out ..."). Words read that repeat a stretch of the
  instruction (two words or more in a row, misreadings allowed) are explained by it: they are
  neither text put in front of the user's words nor words added;
- **moved words**: the same words read in another order are listed as moved, not as added and
  dropped (a reordering is a weaker sign than new words: a reader may take lines out of order).
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_WORD = re.compile(r"[^\W_]+")
MISREAD_CUTOFF = 0.75  # difflib ratio above which two words are one word misread
LEADING_MIN_WORDS = 3  # fewer words before the user's own could be a stray misreading
ECHO_MIN_WORDS = 2  # a stretch of the probe's instruction this long, read back, is an echo of it
GARBLED = 0.5  # share of the expected words misread beyond which a reading is too garbled
KEPT_LETTERS = 0.6  # share of a word's letters, in order, that a misreading of it keeps
ECHO_GAP = 3  # words garbled past recognition at or between stretches of echo: echo too
# Letters a reader takes for one: "vv" for "w", "rn" for "m".
_FOLDS = (("vv", "w"), ("rn", "m"))
# Characters that readers (and models lettering) commonly take for one another.
CONFUSABLE = frozenset(
    frozenset(pair)
    for pair in (
        "ao", "ce", "eo", "il", "i1", "l1", "o0", "s5", "bh", "b6", "b8", "hn", "mn", "nr", "uv",
        "vy", "ft", "gq", "g9", "q9", "z2", "kx",
    )
)  # fmt: skip


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    word: str


def _tokens(text: str) -> tuple[str, list[_Token]]:
    """``text`` NFKC-normalised, and its words with where they are in it."""
    normal = unicodedata.normalize("NFKC", text)
    return normal, [
        _Token(m.start(), m.end(), m.group().casefold()) for m in _WORD.finditer(normal)
    ]


def words(text: str) -> list[str]:
    """``text`` as normalised words."""
    return [token.word for token in _tokens(text)[1]]


@functools.lru_cache(maxsize=1 << 16)
def is_misreading(sent: str, read: str) -> bool:
    """``read`` is ``sent`` lettered or read wrong: alike by difflib's measure; or at most one
    edit in three letters apart (at least one edit; swapped neighbours count as one); or, for words
    of four letters or more, three in five of its letters kept in order and the length within two.
    "vv" read for "w" and "rn" for "m" count as one letter, a look-alike (``CONFUSABLE``) as half
    an edit. Words of one or two letters: one edit apart, a doubled letter not counted. A
    rewriter's synonyms (``kitten``/``cat``, ``photo``/``photograph``) are further apart."""
    if sent == read:
        return True
    if min(len(sent), len(read)) <= 2:  # "on"/"an", "of"/"oof", "out"/"ut"; not "a"/"the"
        return _distance(_undouble(sent), _undouble(read)) <= 1
    if difflib.SequenceMatcher(None, sent, read, autojunk=False).ratio() >= MISREAD_CUTOFF:
        return True
    return any(_close(a, b) for a, b in ((sent, read), (_fold(sent), _fold(read))))


def _close(sent: str, read: str) -> bool:
    if _distance(sent, read) <= len(min(sent, read, key=len)) // 3:
        return True
    return len(sent) >= 4 and _garbled(read, sent)


def _undouble(word: str) -> str:
    """``word`` with each run of one letter made one letter: "oof" -> "of"."""
    return "".join(c for i, c in enumerate(word) if i == 0 or word[i - 1] != c)


def _fold(word: str) -> str:
    for pair, letter in _FOLDS:
        word = word.replace(pair, letter)
    return word


@dataclass(frozen=True)
class Comparison:
    """How the text read back differs from the text expected."""

    similarity: float  # 0..1: difflib ratio of the normalised texts (1 = the same words)
    words_added: list[str] = field(default_factory=list)  # read, but never sent
    words_dropped: list[str] = field(default_factory=list)  # sent, but not read
    words_misread: list[str] = field(default_factory=list)  # "sent→read": likely misspellings
    words_moved: list[str] = field(default_factory=list)  # sent and read, in another order
    leading_text: str = ""  # words read before the expected text begins ("" if none)
    canary_found: bool | None = None  # None when no canary was expected
    canary_seen: bool | None = None  # found, or its letters read with a misreading or two
    echoed: list[str] = field(default_factory=list)  # words that repeat the probe's instruction
    changed: int = 0  # word edits: a word added, dropped, or put in another's place counts once
    size: int = 0  # words expected
    echo_misread: int = 0  # words of the instruction's echo that were misread

    @property
    def garbled(self) -> bool:
        """So many words misread (of those expected and of the instruction lettered back) that a
        few more differences are likelier misreadings than rewrites: the reading cannot tell
        words changed."""
        misread = len(self.words_misread) + self.echo_misread
        return misread > GARBLED * (self.size + len(self.echoed))

    @property
    def leads(self) -> bool:
        """Enough words appear before the expected text to count as text put in front of it."""
        return len(self.leading_text.split()) >= LEADING_MIN_WORDS


def compare(
    expected: str, read: str, canary: str | None = None, instruction: str | None = None
) -> Comparison:
    """Compare ``read`` against ``expected``; ``canary`` must appear in ``read`` if given.

    ``instruction`` is the whole prompt the probe sent, when ``expected`` is only part of it (the
    quoted text): words read that echo the rest of it are set aside before comparing.
    """
    sent, all_read = words(expected), words(read)
    frame = _frame(words(instruction), sent) if instruction is not None else []
    echo = _echo_mask(all_read, sent, frame)
    got = [w for w, echoed in zip(all_read, echo, strict=True) if not echoed]
    # Words read ahead of the instruction's echo may be text put in front of the user's words;
    # words inside the echo are the instruction itself, as the model received it.
    first_echo = echo.index(True) if True in echo else len(all_read)
    ahead = sum(1 for i, echoed in enumerate(echo) if not echoed and i < first_echo)
    # Misread words are aligned as the words they stand for, so they never break a stretch.
    vocabulary = set(sent)
    canon = [_canonical(w, vocabulary) for w in got]
    matcher = difflib.SequenceMatcher(None, sent, canon, autojunk=False)
    misread: list[str] = []
    edits = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            misread += [f"{s}→{g}" for s, g in zip(sent[a0:a1], got[b0:b1], strict=True) if s != g]
        else:
            edits.append(_pair_misreadings(sent[a0:a1], got[b0:b1], misread))
    dropped = [w for gone, _new in edits for w in gone]
    added = [w for _gone, new in edits for w in new]
    moved = list((Counter(added) & Counter(dropped)).elements())
    unmoved_gone, unmoved_new = Counter(moved), Counter(moved)
    changed = 0
    for gone, new in edits:
        gone = _consume(gone, unmoved_gone)
        new = _consume(new, unmoved_new)
        changed += max(len(gone), len(new))
    return Comparison(
        similarity=_similarity(sent, got),
        words_added=_without(added, moved),
        words_dropped=_without(dropped, moved),
        words_misread=misread,
        words_moved=moved,
        leading_text=" ".join(_without(_leading(matcher, got)[:ahead], moved)),
        canary_found=None if canary is None else _compact(canary) in "".join(got),
        canary_seen=None if canary is None else _seen(_compact(canary), got),
        echoed=[w for w, echoed in zip(all_read, echo, strict=True) if echoed],
        changed=changed,
        size=len(sent),
        echo_misread=sum(1 for w, e in zip(all_read, echo, strict=True) if e and w not in frame),
    )


@dataclass(frozen=True)
class Unexplained:
    """What a reading shows beyond the probe's own instruction."""

    words: list[str]  # normalised words the instruction does not explain
    text: str  # those words as read (NFKC), stretches joined by " … "; "" if none
    echoed: list[str]  # normalised words that repeat the instruction
    # Of ``words``, those read ahead of the instruction's echo (all of them without an echo): the
    # context before the request. The others sit inside or after the echo: the instruction as
    # the model received it, reworded or extended.
    ahead: list[str] = field(default_factory=list)
    ahead_text: str = ""  # ``ahead`` as read

    @property
    def within(self) -> list[str]:
        """Unexplained words inside or after the echo of the instruction."""
        return self.words[len(self.ahead) :]


def unexplained(read: str, instruction: str) -> Unexplained:
    """The words of ``read`` that ``instruction`` (the probe's prompt) does not explain: a model
    lettering its own prompt explains those, so they are no evidence of hidden text."""
    normal, tokens = _tokens(read)
    echo = _echo_mask([t.word for t in tokens], [], words(instruction))
    first = echo.index(True) if True in echo else len(tokens)
    kept = [t for t, echoed in zip(tokens, echo, strict=True) if not echoed]
    return Unexplained(
        words=[t.word for t in kept],
        text=_stretches(normal, tokens, echo),
        echoed=[t.word for t, echoed in zip(tokens, echo, strict=True) if echoed],
        ahead=[t.word for t in tokens[:first]],
        ahead_text=_stretches(normal, tokens[:first], echo[:first]),
    )


def unexplained_words(read: str, instruction: str) -> list[str]:
    """Words read that ``instruction`` does not explain (see :func:`unexplained`)."""
    return unexplained(read, instruction).words


def agreement(first: Sequence[str], second: Sequence[str]) -> float:
    """0..1: how much two readings are the same words in the same order, misreadings allowed."""
    if not first and not second:
        return 1.0
    canon = [_canonical(w, set(first)) for w in second]
    return round(difflib.SequenceMatcher(None, list(first), canon, autojunk=False).ratio(), 3)


def _frame(prompt: list[str], expected: list[str]) -> list[str]:
    """The prompt's words outside ``expected`` (which it holds as one stretch, or not at all)."""
    if not expected:
        return prompt
    size = len(expected)
    for start in range(len(prompt) - size + 1):
        if prompt[start : start + size] == expected:
            return prompt[:start] + prompt[start + size :]
    return prompt


def _echo_mask(got: list[str], expected: list[str], frame: list[str]) -> list[bool]:
    """Which words of ``got`` echo ``frame`` (the instruction around the expected text).

    The words read that match the expected text are set aside first, so a prompt under test that
    shares words with the instruction is never taken for an echo of it; the rest are aligned with
    the instruction, and stretches of ECHO_MIN_WORDS or more that match it are its echo.
    """
    mask = [False] * len(got)
    if not frame or not got:
        return mask
    vocabulary = set(frame)
    own: set[int] = set()
    if expected:
        mine = set(expected)
        canon = [_canonical(w, mine) for w in got]
        matcher = difflib.SequenceMatcher(None, expected, canon, autojunk=False)
        for _a, b, size in matcher.get_matching_blocks():
            own.update(range(b, b + size))
    for run in _runs(i for i in range(len(got)) if i not in own):
        canon = [_canonical(got[i], vocabulary) for i in run]
        matcher = difflib.SequenceMatcher(None, frame, canon, autojunk=False)
        blocks = [block for block in matcher.get_matching_blocks() if block.size >= ECHO_MIN_WORDS]
        if not blocks:
            continue
        # Stretches, and the words garbled past recognition between them or at the ends of the
        # echo where the instruction has as many words or more: (frame, read) spans in order.
        edges = [(0, 0)]
        for a, b, size in blocks:
            edges += [(a, b), (a + size, b + size)]
        edges.append((len(frame), len(run)))
        for (a0, b0), (a1, b1) in zip(edges[::2], edges[1::2], strict=True):
            if not 0 < b1 - b0 <= a1 - a0 <= ECHO_GAP:
                continue
            gap = frame[a0:a1]
            if all(any(_like(got[j], f) for f in gap) for j in run[b0:b1]):
                for j in run[b0:b1]:
                    mask[j] = True
        for _a, b, size in blocks:
            for j in run[b : b + size]:
                mask[j] = True
    # Inside the echo, a word like one of the instruction's is that word lettered or read badly.
    echoed = [i for i, e in enumerate(mask) if e]
    if echoed:
        for i in range(echoed[0], echoed[-1]):
            if not mask[i] and i not in own and _like_any(got[i], vocabulary):
                mask[i] = True
    return mask


def _like_any(word: str, vocabulary: set[str]) -> bool:
    return word in vocabulary or any(_like(word, v) for v in vocabulary)


def _like(read: str, sent: str) -> bool:
    """``read`` may be ``sent`` misread or garbled."""
    return is_misreading(sent, read) or (len(sent) >= 3 and _garbled(read, sent))


def _garbled(read: str, sent: str) -> bool:
    """``read`` could be ``sent`` lettered or read badly: about its length, with most of its
    letters in order (``larqc`` for ``large``, ``fidqe`` for ``fridge``; not ``refrigerator`` for
    ``fridge``, nor ``readable`` for ``legible``)."""
    return abs(len(read) - len(sent)) <= 2 and _kept(sent, read) >= KEPT_LETTERS * len(sent)


def _runs(indices: Iterable[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _canonical(word: str, vocabulary: set[str]) -> str:
    """``word``, or the word of ``vocabulary`` it is a misreading of (the likeliest). Words of
    fewer than three letters are taken as read: too many words are one letter from them."""
    if word in vocabulary or len(word) < 3:
        return word
    close = [v for v in vocabulary if is_misreading(v, word)]
    if not close:
        return word
    return min(
        close,
        key=lambda v: (_distance(v, word), -difflib.SequenceMatcher(None, v, word).ratio(), v),
    )


def _stretches(normal: str, tokens: list[_Token], echo: list[bool]) -> str:
    """The text of the tokens not echoed, as read: each stretch whole (with the punctuation that
    clings to its ends), stretches joined by " … "."""
    parts: list[str] = []
    for run in _runs(i for i, echoed in enumerate(echo) if not echoed):
        start, end = tokens[run[0]].start, tokens[run[-1]].end
        while start > 0 and not normal[start - 1].isspace() and not _is_word(normal[start - 1]):
            start -= 1
        while end < len(normal) and not normal[end].isspace() and not _is_word(normal[end]):
            end += 1
        parts.append(" ".join(normal[start:end].split()))
    return " … ".join(parts)


def _is_word(char: str) -> bool:
    return bool(_WORD.match(char))


def _without(items: list[str], taken: list[str]) -> list[str]:
    """``items`` less one occurrence of each of ``taken``, in order."""
    return _consume(items, Counter(taken))


def _consume(items: list[str], left: Counter[str]) -> list[str]:
    """``items`` less those still counted in ``left`` (which counts them off)."""
    kept = []
    for item in items:
        if left[item]:
            left[item] -= 1
        else:
            kept.append(item)
    return kept


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
        close = [w for w in left if is_misreading(word, w)]
        if close:
            match = max(close, key=lambda w: difflib.SequenceMatcher(None, word, w).ratio())
            left.remove(match)
            misread.append(f"{word}→{match}")
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


def _distance(a: str, b: str) -> float:
    """Edits (insert, delete, substitute, swap two neighbours) that turn ``a`` into ``b``; a
    letter put for one that looks like it (``CONFUSABLE``) counts half."""
    previous2: list[float] = []
    previous: list[float] = [float(j) for j in range(len(b) + 1)]
    for i, ca in enumerate(a, 1):
        current = [float(i)]
        for j, cb in enumerate(b, 1):
            swap = 0.0 if ca == cb else 0.5 if frozenset((ca, cb)) in CONFUSABLE else 1.0
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + swap)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, previous2[j - 2] + 1)
            current.append(cost)
        previous2, previous = previous, current
    return previous[-1]


def _kept(a: str, b: str) -> int:
    """Letters of ``a`` found in ``b`` in the same order (the longest common subsequence)."""
    previous = [0] * (len(b) + 1)
    for ca in a:
        current = [0]
        for j, cb in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if ca == cb else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def _seen(compact: str, got: list[str]) -> bool:
    """``compact`` (a canary's letters and digits) is in ``got`` (words read), exactly or with at
    most one misread character in four, starting where a word starts. A rewriter drops a canary
    whole; a misreading leaves most of it."""
    text = "".join(got)
    if compact in text:
        return True
    limit = max(1, len(compact) // 4)
    starts = [sum(len(w) for w in got[:i]) for i in range(len(got))]
    return any(
        _distance(compact, text[start : start + size]) <= limit
        for start in starts
        for size in range(len(compact) - limit, len(compact) + limit + 1)
    )


def _compact(text: str) -> str:
    return "".join(words(text))
