"""From evidence to a verdict: one finding per probe, a verdict per sample, a majority over samples.

Evidence of rewriting is existential — one clear sign is enough — while "verbatim" is the absence of
signs, and needs the probes that can show the user's words intact to have shown them. So:

- each probe yields a finding: ``rewritten``, ``verbatim`` or ``none``, with a weight (2 strong,
  1 weak, 0 none) and a note saying why;
- a sample is ``rewritten`` when its rewritten weights add up to 2 or more (one strong sign, or two
  weak ones), ``verbatim`` when it has no rewritten finding and its verbatim weights add up to 3 or
  more (say the current and canary probes both read back word for word), else ``inconclusive``;
- the step's verdict is the verdict of more than half of its samples, else ``inconclusive``.

Confidence (0..1) says how strongly the evidence supports the verdict: 0.9 for a sample with a
strong sign of rewriting, 0.7 with only weak ones; for verbatim 0.5 plus 0.08 per verbatim weight
(at most 0.9: a hidden prompt the model declines to show can never be ruled out); 0 for
inconclusive. The step's confidence is the mean over the samples that agree with the majority,
times the share of samples that agree.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gemflow.probe.compare import Comparison, words

VERDICTS = ("rewritten", "verbatim", "inconclusive")
SIGNALS = ("rewritten", "verbatim", "none")
MIN_HIDDEN_WORDS = 3  # words of unexplained text that count as hidden context
VERBATIM_SIMILARITY = 0.95
STRONG_CHANGE = 4  # words added or dropped (misreadings not counted)


@dataclass(frozen=True)
class Finding:
    signal: str  # one of SIGNALS
    weight: int  # 2 strong, 1 weak, 0 none
    note: str

    @classmethod
    def none(cls, note: str) -> Finding:
        return cls("none", 0, note)


@dataclass(frozen=True)
class SampleVerdict:
    verdict: str
    confidence: float
    reasons: list[str]


@dataclass(frozen=True)
class Verdict:
    verdict: str
    confidence: float
    why: list[str]
    deciding_sample: int  # the first sample whose verdict is the step's (0 if none is)


def judge_context(unexplained: Sequence[str], *, control_invents: bool) -> Finding:
    """The "before" probe: text it shows that its own instruction does not explain was given to the
    model ahead of the request. Worth less when the control shows the model invents text."""
    if len(unexplained) < MIN_HIDDEN_WORDS:
        return Finding("verbatim", 1, "no text came before the request")
    weight = 1 if control_invents else 2
    caveat = " (but the control shows this model invents text)" if control_invents else ""
    return Finding(
        "rewritten",
        weight,
        f"showed {len(unexplained)} words that its own instruction does not explain: "
        f"text came before the request{caveat}",
    )


def judge_control(unexplained: Sequence[str]) -> Finding:
    """The "after" probe: nothing comes after a request, so text here is invented."""
    if len(unexplained) < MIN_HIDDEN_WORDS:
        return Finding.none("no text, as expected: the model does not invent context")
    return Finding.none(
        f"invented {len(unexplained)} words for text that does not exist: "
        "text this model shows for context may be made up"
    )


def judge_words(comparison: Comparison, canary: str | None) -> Finding:
    """The "current" and "canary" probes: did the text come back word for word?"""
    c = comparison
    if c.leads:
        return Finding(
            "rewritten", 2, f"words appear before the request's own words: {c.leading_text!r}"
        )
    canary_gone = canary is not None and not c.canary_found and _canary_dropped(c, canary)
    summary = f"{c.similarity:.0%} alike, {len(c.words_added)} words added, {len(c.words_dropped)} dropped"
    if canary_gone and canary is not None:
        strong = c.changed - len(words(canary)) >= 2
        return Finding(
            "rewritten", 2 if strong else 1, f"the canary {canary} is missing; {summary}"
        )
    if c.changed >= STRONG_CHANGE:
        return Finding("rewritten", 2, summary)
    if c.changed >= 2:
        return Finding("rewritten", 1, summary)
    if c.similarity >= VERBATIM_SIMILARITY or c.changed == 0:
        found = " and the canary survived" if canary is not None else ""
        return Finding("verbatim", 2, f"read back word for word ({summary}){found}")
    return Finding.none(f"close, but not word for word ({summary})")


def _canary_dropped(comparison: Comparison, canary: str) -> bool:
    """The canary's words were dropped, not just misread (a misspelt canary still arrived)."""
    return any(word in comparison.words_dropped for word in words(canary))


def judge_sample(findings: Mapping[str, Finding], remarks: Sequence[str] = ()) -> SampleVerdict:
    """One sample's verdict from its probes' findings (by probe name); ``remarks`` (what the
    control showed, say) are added to its reasons."""
    rewritten = {name: f for name, f in findings.items() if f.signal == "rewritten"}
    verbatim = {name: f for name, f in findings.items() if f.signal == "verbatim"}
    r = sum(f.weight for f in rewritten.values())
    v = sum(f.weight for f in verbatim.values())
    if r >= 2:
        confidence = 0.9 if any(f.weight >= 2 for f in rewritten.values()) else 0.7
        return SampleVerdict("rewritten", confidence, [*_notes(rewritten), *remarks])
    if r == 0 and v >= 3:
        confidence = round(min(0.9, 0.5 + 0.08 * v), 2)
        return SampleVerdict("verbatim", confidence, [*_notes(verbatim), *remarks])
    notes = _notes({n: f for n, f in findings.items() if f.signal != "none"})
    return SampleVerdict(
        "inconclusive", 0.0, [*(notes or ["no probe gave usable evidence"]), *remarks]
    )


def _notes(findings: Mapping[str, Finding]) -> list[str]:
    return [f"{name}: {finding.note}" for name, finding in findings.items()]


def majority(samples: Sequence[SampleVerdict]) -> Verdict:
    """The verdict of more than half of ``samples``, with its confidence and the reasons."""
    counts = Counter(s.verdict for s in samples)
    verdict, count = counts.most_common(1)[0]
    if count * 2 <= len(samples):
        tally = ", ".join(f"{n} {name}" for name, n in counts.most_common())
        return Verdict("inconclusive", 0.0, [f"the samples disagree: {tally}"], 0)
    agreeing = [s for s in samples if s.verdict == verdict]
    confidence = round(statistics.fmean(s.confidence for s in agreeing) * count / len(samples), 2)
    deciding = next(i for i, s in enumerate(samples) if s.verdict == verdict)
    why = [f"{count} of {len(samples)} samples say {verdict}", *samples[deciding].reasons]
    if verdict == "verbatim":
        why.append("a hidden prompt that the model declines to show cannot be ruled out")
    return Verdict(verdict, confidence, why, deciding)
