"""``probe``: does the service rewrite my prompt? Sends the probe battery, reads the images back,
and writes a verdict with its evidence as ``<step>.probe.json`` (the method is ``gemflow.probe``).

Every probe and reader call is a ``Call`` with its sample number, cached on its own: a rerun sends
nothing, ``--force`` asks again, and raising ``repeat`` pays only for the new samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from gemflow.kinds.base import (
    SEND_FIELDS,
    ApiKind,
    Estimate,
    Exchange,
    Field,
    InputImage,
    StepOutput,
)
from gemflow.kinds.prompts import (
    ALLOW_UNKNOWN,
    MODEL,
    model_id_problem,
    model_problems,
    model_warnings,
    prompt_problems,
    resolve_model,
)
from gemflow.models import default_reader, reader_models
from gemflow.probe.battery import DEFAULT_PROMPT, PROBE_NAMES, PROBES, canary_for, quoted_text
from gemflow.probe.reading import INSTALL_TESSERACT, TESSERACT, tesseract_missing

if TYPE_CHECKING:
    from gemflow.probe.method import Plan
    from gemflow.workflow import Step

LONG_PROMPT_WORDS = 40
LONG_PROMPT_WHY = "image models set long text poorly, and garbled text reads as rewritten"


class Probe(ApiKind):
    name = "probe"
    # 2: the instruction a model letters back is discounted, the control discounts only text
    # unlike what "before" showed, high confidence needs two signals (issue 10). The calls are
    # unchanged, so old probes are judged again from the per-call cache, sending nothing.
    recipe_version = 2
    defaults: ClassVar[Mapping[str, Field]] = {
        "model": MODEL,
        "allow_unknown_model": ALLOW_UNKNOWN,
        **SEND_FIELDS,
    }
    fields: ClassVar[Mapping[str, Field]] = {
        "model": MODEL,
        "allow_unknown_model": ALLOW_UNKNOWN,
        "prompt": Field("str", doc="the prompt under test (default: a neutral one)"),
        "probes": Field("list", doc=f"which probes, in order (default: {', '.join(PROBE_NAMES)})"),
        "repeat": Field("int", minimum=1, maximum=20, doc="samples to take; the majority decides"),
        "reader": Field(
            "str", doc="a text model id (default: [readers] in models.toml) or tesseract"
        ),
        "description": Field("str", in_key=False, doc="a note for people; not in the key"),
        **SEND_FIELDS,
    }

    def output_format(self, params: Mapping[str, Any], suffix: str | None) -> str:
        return "json"

    def default_output(self, step_id: str, fmt: str) -> str:
        return f"out/{step_id}.probe.json"

    def resolve(self, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
        return resolve_model(super().resolve(params, defaults))

    def check(self, params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        problems = model_problems(params) + prompt_problems(params) + self._probe_problems(params)
        reader = params.get("reader")
        if reader and reader != TESSERACT and (problem := model_id_problem(reader)):
            problems.append(("reader", problem))
        return problems

    def _probe_problems(self, params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        probes = params.get("probes")
        if probes is None:
            return []
        if not probes:
            return [("probes", f"list at least one probe ({', '.join(PROBE_NAMES)})")]
        unknown = [p for p in probes if not isinstance(p, str) or p not in PROBES]
        if unknown:
            return [("probes", f"unknown probe {unknown[0]!r} (probes: {', '.join(PROBE_NAMES)})")]
        if len(set(probes)) != len(probes):
            return [("probes", "a probe is listed twice")]
        if not set(probes) - {"after"}:
            return [("probes", "'after' is a control: add before, current or canary")]
        return []

    def warnings(self, params: Mapping[str, Any]) -> list[tuple[str | None, str]]:
        found = model_warnings(params)
        if problem := _reader_problem(_reader(params)):
            found.append(("reader", problem))
        if len(_prompt(params).split()) > LONG_PROMPT_WORDS:
            found.append(("prompt", f"over {LONG_PROMPT_WORDS} words: {LONG_PROMPT_WHY}"))
        return found

    def recipe(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter resolved, defaults included: writing a default out changes nothing."""
        return {
            "model": params["model"],
            "prompt": _prompt(params),
            "probes": list(_probes(params)),
            "repeat": _repeat(params),
            "reader": _reader(params),
        }

    def estimate(self, step: Step) -> Estimate:
        from gemflow.probe.cost import estimate

        calls, usd = estimate(self.plan(step.params), _reader(step.params))
        return Estimate(api_calls=calls, usd=usd)

    def plan(self, params: Mapping[str, Any]) -> Plan:
        from gemflow.probe.method import Plan

        prompt = _prompt(params)
        canary = canary_for(params["model"], prompt)
        return Plan(
            model=params["model"],
            prompt=prompt,
            canary=canary,
            quoted=quoted_text(prompt, canary),
            probes=_probes(params),
            repeat=_repeat(params),
        )

    def exchange(self, step: Step, inputs: Sequence[InputImage]) -> Exchange:
        from gemflow.probe.method import battery
        from gemflow.probe.reading import make_reader
        from gemflow.probe.report import build_report, encode_report, files

        reader = make_reader(_reader(step.params))  # a missing OCR fails before any call
        outcome = yield from battery(self.plan(step.params), reader)
        report = build_report(outcome, step_id=step.id, reader=reader.name)
        verdict = outcome.verdict
        return StepOutput(
            data=encode_report(report),
            attachments=files(outcome, step.id),
            summary={"verdict": verdict.verdict, "confidence": verdict.confidence},
        )


def _reader_problem(reader: str) -> str | None:
    """Why ``reader`` may not work as hoped, or None."""
    if reader == TESSERACT:
        if tesseract_missing():
            return f"tesseract is not on PATH, so this step cannot run: {INSTALL_TESSERACT}"
        return None
    if reader not in reader_models():
        return f"unknown reader model {reader!r}: no cost estimate"
    return None


def _prompt(params: Mapping[str, Any]) -> str:
    return params.get("prompt") or DEFAULT_PROMPT


def _probes(params: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(params.get("probes") or PROBE_NAMES)


def _repeat(params: Mapping[str, Any]) -> int:
    return params.get("repeat") or 1


def _reader(params: Mapping[str, Any]) -> str:
    return params.get("reader") or default_reader()
