"""What a probe costs before it runs: every probe image, and a reading of each (at most: a probe
that gets no image is not read)."""

from __future__ import annotations

from gemflow.models import model_info, reader_models
from gemflow.probe.battery import PROBES
from gemflow.probe.method import Plan
from gemflow.probe.reading import READ_INSTRUCTION, TESSERACT

READ_CHARS = 200  # what a reading is assumed to cost in output


def estimate(plan: Plan, reader: str) -> tuple[int, float]:
    """(API calls, USD) for running ``plan`` with nothing cached; unknown models cost 0 USD."""
    probes = plan.repeat * len(plan.probes)
    reads = 0 if reader == TESSERACT else probes
    usd = 0.0
    info = model_info(plan.model)
    if info is not None:
        prompts = [PROBES[name].prompt(plan.quoted) for name in plan.probes]
        usd += plan.repeat * sum(
            info.estimate_cost(prompt_chars=len(p), input_images=0, image_size=None)
            for p in prompts
        )
    reading = reader_models().get(reader)
    if reading is not None:
        usd += reads * reading.estimate_cost(
            prompt_chars=len(READ_INSTRUCTION), input_images=1, output_chars=READ_CHARS
        )
    return probes + reads, usd
