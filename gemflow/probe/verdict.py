"""From evidence to a verdict: one finding per probe, a verdict per sample, a majority over samples.

Evidence of rewriting is existential — one clear sign is enough — while "verbatim" is the absence of
signs, and needs the probes that can show the user's words intact to have shown them. So:

- each probe yields a finding: ``rewritten``, ``verbatim`` or ``none``, with a weight (2 strong,
  1 weak, 0 none) and a note saying why. Misreadings and the probe's own instruction lettered back
  are set aside first (``compare``); a reading with more than a third of its words misread is too
  garbled to tell words changed. What the "before" probe shows is judged against the control:
  text there is discounted when the control shows the model invents *other* text for what comes
  after the request; the control showing nothing, or the same text, confirms it;
- a sample is ``rewritten`` when its rewritten weights add up to 2 or more (one strong sign, or two
  weak ones), ``verbatim`` when it has no rewritten finding, its verbatim weights add up to 3 or
  more (say the current and canary probes both read back word for word) and the current probe, if
  it was sent, read back intact (it alone shows the whole prompt as the model received it), else
  ``inconclusive``;
- the step's verdict is the verdict of more than half of its samples, else ``inconclusive``.

Confidence (0..1) says how strongly the evidence supports the verdict. Rewritten: 0.9 when two
independent signals agree (two probes, or the before probe confirmed by the control) and one of
them is strong; 0.7 otherwise (one probe alone, or weak signs only). Verbatim: 0.5 plus 0.08 per
verbatim weight, at most 0.9 (a hidden prompt the model declines to show can never be ruled out),
and at most 0.6 when the before probe's text was discounted (a hidden prompt cannot be told from
the model's inventions).
Inconclusive: 0. The step's confidence is the mean over the samples that agree with the majority,
times the share of samples that agree.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gemflow.probe.compare import Comparison, Unexplained, agreement, words

VERDICTS = ("rewritten", "verbatim", "inconclusive")
SIGNALS = ("rewritten", "verbatim", "none")
MIN_HIDDEN_WORDS = 3  # words of unexplained text that count as hidden context
VERBATIM_SIMILARITY = 0.95
STRONG_CHANGE = 4  # word edits (added, dropped or replaced; misreadings not counted)
MIN_MOVED = 3  # words read in another order that count as a reordering
SAME_TEXT = 0.6  # agreement above which the control showed the text the before probe showed
# Verbatim's confidence when the before probe's text was discounted: the words arrived intact, but
# a hidden prompt cannot be told from this model's inventions.
DISCOUNTED_VERBATIM = 0.6
# What the control ("after") showed, which decides what the "before" probe's text is worth:
# quiet (nothing after the request), same (the text "before" showed), invents (other text),
# unknown (refused, unread, or not in the battery).
CONTROL_STATES = ("quiet", "same", "invents", "unknown")
_QUOTE_WORDS = 12  # words of hidden text quoted in a summary


@dataclass(frozen=True)
class Finding:
    signal: str  # one of SIGNALS
    weight: int  # 2 strong, 1 weak, 0 none
    note: str
    # What the finding is about, for the one-sentence summary: rewritten: hidden, leading,
    # canary, changed, moved; verbatim: intact, nothing_before; none: discounted, refused,
    # unread, blank, close, garbled, control.
    kind: str = ""
    evidence: str = ""  # the hidden or leading text, the canary lost, the words changed
    corroborated_by: str | None = None  # a probe that confirms this finding (the control)

    @classmethod
    def none(cls, note: str, kind: str = "", evidence: str = "") -> Finding:
        return cls("none", 0, note, kind, evidence)


_NONE = Finding.none("")


@dataclass(frozen=True)
class SampleVerdict:
    verdict: str
    confidence: float
    reasons: list[str]
    findings: Mapping[str, Finding] = field(default_factory=dict)
    supported_by: list[str] = field(default_factory=list)  # probes whose findings agree
    contradicted_by: list[str] = field(default_factory=list)  # probes whose findings disagree


@dataclass(frozen=True)
class Verdict:
    verdict: str
    confidence: float
    why: list[str]
    deciding_sample: int  # the first sample whose verdict is the step's (0 if none is)
    summary: str = ""  # one sentence a user can act on
    supported_by: list[str] = field(default_factory=list)
    contradicted_by: list[str] = field(default_factory=list)


def control_state(before: Unexplained | None, after: Unexplained | None, *, quiet: bool) -> str:
    """What the control showed (one of CONTROL_STATES): ``quiet`` when it answered that nothing
    comes after the request (NO_IMAGE); ``after``, its reading; ``before``, the before probe's.

    Nothing comes after a request, so any word the control shows beyond its own instruction is
    made up — unless the before probe showed the same text, which is then in what the model was
    given (a hidden prompt, or the instruction as a rewriter changed it)."""
    if quiet:
        return "quiet"
    if after is None:
        return "unknown"
    if not after.words:
        return "quiet"
    if before is not None and before.words and agreement(before.words, after.words) >= SAME_TEXT:
        return "same"
    return "invents"


def judge_context(found: Unexplained, control: str = "unknown") -> Finding:
    """The "before" probe: text it shows ahead of its own instruction (or without it) that the
    instruction does not explain was given to the model ahead of the request, unless the control
    shows the model invents other text. Words inside or after the instruction's echo are the
    instruction as the model received it: changed words are a sign of rewriting too."""
    ahead, within = found.ahead, found.within
    if len(ahead) < MIN_HIDDEN_WORDS and len(within) < 2:
        return Finding("verbatim", 1, _nothing_before(found), "nothing_before")
    shown = f"showed {len(found.words)} words its own instruction does not explain ({_quote(found.text)})"
    if control == "invents":
        return Finding.none(
            f"{shown}, but the control made up other text for what comes after the request: "
            "this model invents context, so this is discounted",
            "discounted",
            found.text,
        )
    confirmed, by = {
        "unknown": ("no control rules out that it was made up", None),
        "same": ("the control showed the same text after the request, so it was given", "after"),
        "quiet": ("the control showed nothing after the request, so it was not made up", "after"),
    }[control]
    if len(ahead) >= MIN_HIDDEN_WORDS:
        return Finding(
            "rewritten",
            2,
            f"{shown}: text came before the request; {confirmed}",
            "hidden",
            found.ahead_text,
            corroborated_by=by,
        )
    return Finding(
        "rewritten",
        2 if len(within) >= STRONG_CHANGE else 1,
        f"{shown}: its own instruction came back changed; {confirmed}",
        "changed",
        f"added: {', '.join(within)}",
        corroborated_by=by,
    )


def _nothing_before(found: Unexplained) -> str:
    own = "only its own instruction: " if found.echoed else ""
    stray = len(found.words)
    if stray:
        return f"{own}{stray} stray word{'s' * (stray != 1)}, too few to be text before the request"
    return f"{own}no text came before the request"


def judge_control(found: Unexplained, control: str) -> Finding:
    """The "after" probe: nothing comes after a request, so text here is invented — unless it is
    the text the before probe showed, which the model then has in its context."""
    if control == "same":
        return Finding.none(
            f"showed the text the before probe showed ({_quote(found.text)}): it is in what the "
            "model was given, not made up",
            "control",
        )
    if control == "invents":
        return Finding.none(
            f"made up {len(found.words)} word{'s' * (len(found.words) != 1)} for text that does "
            f"not exist ({_quote(found.text)}): text this model shows for context may be invented",
            "control",
            found.text,
        )
    own = "only its own instruction" if found.echoed else "no text"
    return Finding.none(f"{own}, as expected: the model does not invent context", "control")


def judge_words(comparison: Comparison, canary: str | None) -> Finding:
    """The "current" and "canary" probes: did the text come back word for word?"""
    c = comparison
    if c.leads:
        return Finding(
            "rewritten",
            2,
            f"words appear before the request's own words: {c.leading_text!r}",
            "leading",
            c.leading_text,
        )
    summary = f"{c.similarity:.0%} alike, {len(c.words_added)} words added, {len(c.words_dropped)} dropped"
    if c.words_moved:
        summary += f", {len(c.words_moved)} moved"
    if c.garbled:
        return Finding.none(
            f"too garbled to tell words changed: {len(c.words_misread)} of {c.size} words "
            f"misread ({summary})",
            "garbled",
        )
    changed = _changes(c)
    canary_gone = canary is not None and not c.canary_seen and _canary_dropped(c, canary)
    if canary_gone and canary is not None:
        strong = c.changed - len(words(canary)) >= 2
        return Finding(
            "rewritten",
            2 if strong else 1,
            f"the canary {canary} is missing; {summary}",
            "canary",
            canary,
        )
    reordered = len(c.words_moved) >= MIN_MOVED
    if c.changed >= STRONG_CHANGE or (c.changed >= 2 and reordered):
        return Finding("rewritten", 2, summary, "changed", changed)
    if c.changed >= 2:
        return Finding("rewritten", 1, summary, "changed", changed)
    if reordered:
        return Finding(
            "rewritten", 1, f"words came back in another order ({summary})", "moved", changed
        )
    found = " and the canary survived" if canary is not None else ""
    if c.similarity >= VERBATIM_SIMILARITY or c.changed == 0:
        echo = " (beside its own instruction, lettered too)" if c.echoed else ""
        return Finding("verbatim", 2, f"read back word for word{echo} ({summary}){found}", "intact")
    return Finding.none(f"close, but not word for word ({summary})", "close")


def _changes(c: Comparison) -> str:
    parts = []
    if c.words_added:
        parts.append(f"added: {', '.join(c.words_added)}")
    if c.words_dropped:
        parts.append(f"dropped: {', '.join(c.words_dropped)}")
    if c.words_moved:
        parts.append(f"moved: {', '.join(c.words_moved)}")
    return "; ".join(parts)


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
        signals = _signals(findings)
        strong = any(f.weight >= 2 for f in rewritten.values())
        confidence = 0.9 if strong and len(signals) >= 2 else 0.7
        return SampleVerdict(
            "rewritten",
            confidence,
            [*_notes(rewritten), *remarks],
            findings,
            signals,
            list(verbatim),
        )
    # The current probe is the only one that shows the whole prompt as the model received it:
    # without it intact, words added outside the quoted text could go unseen.
    whole = "current" not in findings or findings["current"].signal == "verbatim"
    if r == 0 and v >= 3 and whole:
        confidence = round(min(0.9, 0.5 + 0.08 * v), 2)
        if any(f.kind == "discounted" for f in findings.values()):
            confidence = min(confidence, DISCOUNTED_VERBATIM)
        return SampleVerdict(
            "verbatim", confidence, [*_notes(verbatim), *remarks], findings, list(verbatim), []
        )
    notes = _notes({n: f for n, f in findings.items() if f.signal != "none"})
    return SampleVerdict(
        "inconclusive",
        0.0,
        [*(notes or ["no probe gave usable evidence"]), *remarks],
        findings,
    )


def _signals(findings: Mapping[str, Finding]) -> list[str]:
    """The independent signals of rewriting, in the battery's order: each probe that shows it, and
    each probe that confirms one of those (the control confirming the before probe)."""
    found = {n for n, f in findings.items() if f.signal == "rewritten"}
    found |= {f.corroborated_by for n, f in findings.items() if n in found and f.corroborated_by}
    return [n for n in findings if n in found] + sorted(found - set(findings))


def _notes(findings: Mapping[str, Finding]) -> list[str]:
    return [f"{name}: {finding.note}" for name, finding in findings.items()]


def majority(samples: Sequence[SampleVerdict]) -> Verdict:
    """The verdict of more than half of ``samples``, with its confidence and the reasons."""
    counts = Counter(s.verdict for s in samples)
    verdict, count = counts.most_common(1)[0]
    if count * 2 <= len(samples):
        tally = ", ".join(f"{n} {name}" for name, n in counts.most_common())
        why = [f"the samples disagree: {tally}"]
        return Verdict("inconclusive", 0.0, why, 0, summary_of("inconclusive", samples, tally))
    agreeing = [s for s in samples if s.verdict == verdict]
    confidence = round(statistics.fmean(s.confidence for s in agreeing) * count / len(samples), 2)
    deciding = next(i for i, s in enumerate(samples) if s.verdict == verdict)
    why = [f"{count} of {len(samples)} samples say {verdict}", *samples[deciding].reasons]
    if verdict == "verbatim":
        why.append("a hidden prompt that the model declines to show cannot be ruled out")
    return Verdict(
        verdict,
        confidence,
        why,
        deciding,
        summary_of(verdict, samples),
        _union(s.supported_by for s in agreeing),
        _union(s.contradicted_by for s in agreeing),
    )


def _union(lists: Iterable[list[str]]) -> list[str]:
    found: list[str] = []
    for names in lists:
        found += [n for n in names if n not in found]
    return found


# --------------------------------------------------------------------------- the summary


def summary_of(verdict: str, samples: Sequence[SampleVerdict], tally: str = "") -> str:
    """The verdict in one sentence a user can act on: what was found, by which probes, in how many
    samples, and what went the other way."""
    agreeing = [s for s in samples if s.verdict == verdict]
    share = f"{len(agreeing)}/{len(samples)} samples"
    if verdict == "rewritten":
        return _rewritten_summary(agreeing, share)
    if verdict == "verbatim":
        return _verbatim_summary(agreeing, share)
    return _inconclusive_summary(samples, tally)


_KINDS = ("hidden", "leading", "canary", "changed", "moved")  # the most telling first


def _rewritten_summary(agreeing: Sequence[SampleVerdict], share: str) -> str:
    """What the most telling finding says, which probes show it (and whether the control confirms
    it), what the other probes that found rewriting show, and what went the other way."""
    found: dict[str, list[str]] = {}  # kind -> probes, over the agreeing samples
    example: dict[str, Finding] = {}  # kind -> its first finding
    confirmed = False
    for sample in agreeing:
        for name, f in sample.findings.items():
            if f.signal != "rewritten":
                continue
            kind = f.kind if f.kind in _KINDS else "changed"
            found.setdefault(kind, [])
            found[kind] += [name] if name not in found[kind] else []
            example.setdefault(kind, f)
            confirmed |= f.corroborated_by == "after"
    if not found:
        return f"Your prompt was rewritten before it reached the model, in {share}."
    kinds = sorted(found, key=_KINDS.index)
    first = example[kinds[0]]
    what = {
        "hidden": f"a hidden instruction was found before your prompt: {_quote(first.evidence)}",
        "leading": f"words were put in front of your prompt: {first.evidence!r}",
        "canary": f"your prompt was reworded: the canary {first.evidence} did not reach the model",
        "changed": f"your prompt was changed before it reached the model ({first.evidence})",
        "moved": f"your prompt was reordered before it reached the model ({first.evidence})",
    }[kinds[0]]
    confirmation = " and confirmed by the control" if confirmed else ""
    sentence = (
        f"{_capital(what)} — shown by the {_probes(found[kinds[0]])}{confirmation} in {share}"
    )
    others = _union(found[kind] for kind in kinds[1:])
    order = list(agreeing[0].findings)
    others = sorted((p for p in others if p not in found[kinds[0]]), key=order.index)
    if others:
        also = {
            "hidden": "text ahead of your prompt",
            "leading": "words put in front of your prompt",
            "canary": "your prompt reworded, the canary lost",
            "changed": "your prompt changed",
            "moved": "your prompt reordered",
        }[next(k for k in kinds[1:] if set(found[k]) & set(others))]
        verb = "shows" if len(others) == 1 else "show"
        sentence += f"; the {_probes(others)} also {verb} {also}"
    contradicted = _union(s.contradicted_by for s in agreeing)
    if contradicted:
        sentence += f"; {_other_way(contradicted)}"
    return sentence + "."


def _other_way(probes: Sequence[str]) -> str:
    """What probes that found no rewriting saw, in words."""
    parts = []
    words_back = [p for p in probes if p != "before"]
    if words_back:
        parts.append(f"the {_probes(words_back)} read your words back intact")
    if "before" in probes:
        parts.append("the before probe showed nothing ahead of them")
    return " and ".join(parts)


def _verbatim_summary(agreeing: Sequence[SampleVerdict], share: str) -> str:
    supported = _union(s.supported_by for s in agreeing)
    discounted = next(
        (s.findings for s in agreeing if s.findings.get("before", _NONE).kind == "discounted"),
        None,
    )
    words_back = [p for p in supported if p != "before"]
    parts = []
    if words_back:
        parts.append(f"the {_probes(words_back)} read it back word for word")
    if "before" in supported and discounted is None:
        parts.append("the before probe showed nothing ahead of it")
    sentence = f"Your prompt reached the model verbatim in {share} — {' and '.join(parts)}"
    if discounted is not None:
        made_up = discounted.get("after", _NONE).evidence
        sentence += (
            f"; the before probe showed {_quote(discounted['before'].evidence)}, discounted "
            f"because the control shows this model makes up text"
            + (f" (it showed {_quote(made_up)} after the request)" if made_up else "")
        )
    else:
        sentence += "; no probe contradicted it"
    return sentence + "."


def _inconclusive_summary(samples: Sequence[SampleVerdict], tally: str) -> str:
    findings = [f for s in samples for f in s.findings.values()]
    refused = sum(1 for f in findings if f.kind == "refused")
    weak = [f for s in samples if s.verdict == "inconclusive" for f in s.findings.values()]
    weak_signs = sum(1 for f in weak if f.signal == "rewritten")
    if tally:
        why = f"the samples disagree ({tally})"
    elif refused:
        why = f"the model refused or did not draw {refused} of {len(findings)} probes"
    elif weak_signs:
        why = "only a weak sign of rewriting was found"
    else:
        why = "the probes did not show your words intact"
    return (
        f"The probe could not decide: {why} — take more samples (repeat) or try another "
        "prompt or model."
    )


def _probes(names: Sequence[str]) -> str:
    listed = list(names)
    if not listed:
        return "probes"
    if len(listed) == 1:
        return f"{listed[0]} probe"
    return f"{', '.join(listed[:-1])} and {listed[-1]} probes"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _quote(text: str) -> str:
    """``text`` in quotes for a sentence, cut after a dozen words."""
    cut = text.split()
    short = " ".join(cut[:_QUOTE_WORDS]) + (" …" if len(cut) > _QUOTE_WORDS else "")
    return repr(short)
