"""The probe report: the JSON document described by ``gemflow.probe.schema``, and the names of the
files written beside it."""

from __future__ import annotations

import json
import statistics
from typing import Any

from gemflow.probe.battery import PROBES
from gemflow.probe.method import Outcome, ProbeResult, Sample
from gemflow.probe.schema import REPORT_FORMAT, REPORT_VERSION


def folder(step_id: str) -> str:
    """The attachments' folder, relative to the report's: ``<step>.probe``."""
    return f"{step_id}.probe"


def image_name(step_id: str, probe: str, sample: int) -> str:
    return f"{folder(step_id)}/{probe}-{sample}.png"


def sheet_name(step_id: str) -> str:
    return f"{folder(step_id)}/sheet.png"


def build_report(outcome: Outcome, *, step_id: str, reader: str) -> dict[str, Any]:
    plan, verdict = outcome.plan, outcome.verdict
    deciding = outcome.samples[verdict.deciding_sample]
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "step": step_id,
        "model": plan.model,
        "reader": reader,
        "prompt": plan.prompt,
        "canary": plan.canary,
        "repeat": plan.repeat,
        "verdict": verdict.verdict,
        "confidence": verdict.confidence,
        "summary": verdict.summary,
        "supported_by": verdict.supported_by,
        "contradicted_by": verdict.contradicted_by,
        "why": verdict.why,
        "hidden_text": hidden_text(deciding),
        "recovered": {r.probe: r.read for r in deciding.results},
        "scores": _scores(outcome.samples),
        "battery": [
            {
                "probe": name,
                "purpose": PROBES[name].purpose,
                "prompt": PROBES[name].prompt(plan.quoted),
                "expected": PROBES[name].expected(plan.quoted),
            }
            for name in plan.probes
        ],
        "samples": [_sample(sample, step_id) for sample in outcome.samples],
        "sheet": sheet_name(step_id),
    }


def files(outcome: Outcome, step_id: str) -> dict[str, bytes]:
    """The files written beside the report: each probe image (as PNG) and the contact sheet."""
    from gemflow.imaging.operations import encode, open_image
    from gemflow.probe.sheet import contact_sheet

    found: dict[str, bytes] = {}
    for sample in outcome.samples:
        for result in sample.results:
            if result.image is None:
                continue
            data = result.image
            if not data.startswith(b"\x89PNG\r\n\x1a\n"):  # a JPEG answer, say
                data = encode(open_image(data, source=f"{result.probe} image"), "png")
            found[image_name(step_id, result.probe, sample.number)] = data
    found[sheet_name(step_id)] = contact_sheet(outcome)
    return found


def encode_report(report: dict[str, Any]) -> bytes:
    """Stable bytes: the same report always encodes the same way."""
    return (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode()


def hidden_text(sample: Sample) -> str | None:
    """Text the service put ahead of the user's words, if this sample caught any: what the before
    probe showed beyond its own instruction, else the words read in front of the user's."""
    for result in sample.results:
        if result.finding.signal != "rewritten":
            continue
        if result.context is not None:
            return result.context.text
        if result.comparison is not None and result.comparison.leads:
            return result.comparison.leading_text
    return None


def _scores(samples: list[Sample]) -> dict[str, Any]:
    def similarities(probe: str) -> float | None:
        values = [
            r.comparison.similarity
            for s in samples
            for r in s.results
            if r.probe == probe and r.comparison is not None
        ]
        return round(statistics.median(values), 3) if values else None

    results = [r for s in samples for r in s.results]
    return {
        "current_similarity": similarities("current"),
        "canary_similarity": similarities("canary"),
        "canary_found_in": sum(
            1 for r in results if r.comparison is not None and r.comparison.canary_found
        ),
        "hidden_words": max(
            (
                len(r.context.words)
                for r in results
                if r.context is not None and PROBES[r.probe].shows == "context"
            ),
            default=0,
        ),
    }


def _sample(sample: Sample, step_id: str) -> dict[str, Any]:
    return {
        "sample": sample.number,
        "verdict": sample.verdict.verdict,
        "confidence": sample.verdict.confidence,
        "reasons": sample.verdict.reasons,
        "results": [_result(r, step_id) for r in sample.results],
    }


def _result(result: ProbeResult, step_id: str) -> dict[str, Any]:
    c, context = result.comparison, result.context
    return {
        "probe": result.probe,
        "outcome": result.outcome,
        "finish_reason": result.finish_reason,
        "block_reason": result.block_reason,
        "model_text": result.model_text,
        "image": image_name(step_id, result.probe, result.sample) if result.image else None,
        "read": result.read,
        "similarity": c.similarity if c else None,
        "words_added": c.words_added if c else context.words if context else [],
        "words_dropped": c.words_dropped if c else [],
        "words_misread": c.words_misread if c else [],
        "words_moved": c.words_moved if c else [],
        "instruction_echo": c.echoed if c else context.echoed if context else [],
        "leading_text": c.leading_text if c else "",
        "canary_found": c.canary_found if c else None,
        "signal": result.finding.signal,
        "weight": result.finding.weight,
        "note": result.finding.note,
    }
