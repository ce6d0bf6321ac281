"""Run the probe battery: send each probe, read its image back, compare, judge, and decide.

The battery is a plan of calls, as data: first every probe of every sample, then a reading of each
image that came back. Each is a ``Call`` with its sample number, cached on its own, so a rerun sends
nothing, ``--force`` asks again, and each of ``repeat`` samples is its own cached call.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

from gemflow.kinds.base import Call
from gemflow.probe.battery import PROBES, ProbeSpec
from gemflow.probe.compare import Comparison, Unexplained, compare, unexplained
from gemflow.probe.reading import Picture, Reader
from gemflow.probe.verdict import (
    Finding,
    SampleVerdict,
    Verdict,
    control_state,
    judge_context,
    judge_control,
    judge_sample,
    judge_words,
    majority,
)
from gemflow.providers.base import ApiRequest, ApiResponse

OUTCOMES = ("image", "no_image", "text_only", "refused")
# finishReason / blockReason values that mean the service refused on policy grounds.
REFUSALS = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "RECITATION",
        "BLOCKLIST",
        "SPII",
    }
)

Battery = Generator[list[Call], list[ApiResponse], "Outcome"]


@dataclass(frozen=True)
class Plan:
    """What to probe: the model, the prompt under test with its canary, which probes, how often."""

    model: str
    prompt: str
    canary: str
    quoted: str  # the prompt under test with the canary inside
    probes: tuple[str, ...]
    repeat: int

    def specs(self) -> list[ProbeSpec]:
        # The control runs first: what it shows decides how much the "before" probe is worth.
        return sorted((PROBES[name] for name in self.probes), key=lambda s: s.shows != "control")

    def request(self, spec: ProbeSpec) -> ApiRequest:
        return ApiRequest(model=self.model, prompt=spec.prompt(self.quoted), temperature=0.0)


@dataclass
class ProbeResult:
    """One probe in one sample: what came back, what was read, how it compares, what it shows."""

    probe: str
    sample: int
    outcome: str  # one of OUTCOMES
    finish_reason: str | None
    block_reason: str | None
    model_text: list[str]
    image: bytes | None = None
    mime_type: str | None = None
    read: str | None = None
    comparison: Comparison | None = None  # current and canary probes
    context: Unexplained | None = None  # before and after probes: what the instruction explains
    finding: Finding = field(default_factory=lambda: Finding.none("not judged"))


@dataclass
class Sample:
    number: int
    results: list[ProbeResult]
    verdict: SampleVerdict


@dataclass
class Outcome:
    plan: Plan
    samples: list[Sample]
    verdict: Verdict


def battery(plan: Plan, reader: Reader) -> Battery:
    """Probe ``plan.repeat`` times and decide: yields the calls it needs, phase by phase."""
    asked = [(sample, spec) for sample in range(plan.repeat) for spec in plan.specs()]
    answers = yield [Call(plan.request(spec), sample=sample) for sample, spec in asked]
    results = [
        _result(spec, sample, answer) for (sample, spec), answer in zip(asked, answers, strict=True)
    ]
    shown = [r for r in results if r.image is not None]
    pictures = [Picture(r.image or b"", r.mime_type or "image/png", r.sample) for r in shown]
    calls = reader.calls(pictures)
    readings = (yield calls) if calls else []
    for result, text in zip(shown, reader.texts(pictures, readings), strict=True):
        _compare(plan, PROBES[result.probe], result, text)
    samples = [
        _judge_sample(plan, [r for r in results if r.sample == n], n) for n in range(plan.repeat)
    ]
    return Outcome(plan, samples, majority([s.verdict for s in samples]))


def _judge_sample(plan: Plan, results: list[ProbeResult], sample: int) -> Sample:
    """Judge one sample's results. What the control shows, beside what the "before" probe shows,
    decides how much the "before" probe is worth."""
    control = _control(results)
    remarks: list[str] = []
    for result in results:
        spec = PROBES[result.probe]
        result.finding = _judge(plan, spec, result, control)
        if spec.shows == "control":
            remarks.append(f"{spec.name} (control): {result.finding.note}")
    results = sorted(results, key=lambda r: plan.probes.index(r.probe))
    findings = {r.probe: r.finding for r in results}
    return Sample(sample, results, judge_sample(findings, remarks))


def _control(results: list[ProbeResult]) -> str:
    """What the control showed, beside the before probe (see ``verdict.CONTROL_STATES``)."""
    shown = {PROBES[r.probe].shows: r for r in results}
    after, before = shown.get("control"), shown.get("context")
    return control_state(
        before.context if before is not None else None,
        after.context if after is not None else None,
        quiet=after is not None and after.outcome == "no_image",
    )


def _result(spec: ProbeSpec, sample: int, response: ApiResponse) -> ProbeResult:
    result = ProbeResult(
        probe=spec.name,
        sample=sample,
        outcome=classify(response),
        finish_reason=response.finish_reason,
        block_reason=response.block_reason,
        model_text=list(response.texts),
    )
    if response.image is not None:
        result.image, result.mime_type = response.image, response.mime_type or "image/png"
    return result


def _compare(plan: Plan, spec: ProbeSpec, result: ProbeResult, read: str | None) -> None:
    """Record what was read off ``result``'s image and how it compares with what was asked."""
    result.read = read
    if read is None:
        return
    prompt = spec.prompt(plan.quoted)
    if spec.shows in ("context", "control"):
        result.context = unexplained(read, prompt)
    else:
        canary = plan.canary if spec.shows == "quoted" else None
        result.comparison = compare(spec.expected(plan.quoted), read, canary, prompt)


def classify(response: ApiResponse) -> str:
    """What kind of answer a probe got: an image, or which kind of no-image."""
    if response.image is not None:
        return "image"
    if response.block_reason or response.finish_reason in REFUSALS:
        return "refused"
    if response.finish_reason == "STOP" and response.texts:
        return "text_only"
    return "no_image"


def _judge(plan: Plan, spec: ProbeSpec, result: ProbeResult, control: str) -> Finding:
    if result.outcome != "image":
        reason = result.block_reason or result.finish_reason or "no reason given"
        what = f"{result.outcome.replace('_', ' ')} ({reason})"
        if spec.shows == "control" and result.outcome == "no_image":
            return Finding.none(f"{what}, as expected: nothing comes after a request", "control")
        return Finding.none(f"{what}: no evidence either way", "refused")
    if result.read is None:
        return Finding.none("the reader could not read the image", "unread")
    if spec.shows == "context":
        assert result.context is not None
        return judge_context(result.context, control)
    if spec.shows == "control":
        assert result.context is not None
        return judge_control(result.context, control)
    if not result.read.strip():
        return Finding.none("the image shows no text: the model did not letter it", "blank")
    assert result.comparison is not None
    canary = plan.canary if spec.shows == "quoted" else None
    return judge_words(result.comparison, canary)
