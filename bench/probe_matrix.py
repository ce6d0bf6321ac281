"""The probe's calibration matrix (issue 10): its verdicts on the emulator's simulated services.

    python bench/probe_matrix.py                 # every behaviour, 6 prompts, 5 samples (~1 min)
    python bench/probe_matrix.py --quick         # the issue's matrix, 3 prompts, 3 samples (~5 s)
    python bench/probe_matrix.py --prompts 4 --repeat 3 --out /tmp/matrix.json

Each behaviour (``gemflow.probe.calibration``: the issue's a-h, combinations real services have,
heavier misreadings, and known limits) gets its own in-process emulator; the probe battery goes
through the real google-genai client, as a probe step sends it. It prints a row per behaviour and
the confusion matrix (which the README quotes), then what the probe says about its known limits.
Like the drill, it is a test: it exits 1 if any counted verdict is one its behaviour does not allow
(a false "rewritten", a false "verbatim", or "inconclusive" where it is not allowed), else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import machine
from gemflow.probe.calibration import (
    BEHAVIOURS,
    COMBINATIONS,
    LIMITS,
    NOISE_SWEEP,
    PROMPTS,
    SCALE,
    Matrix,
    Trial,
    calibrate,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "probe_matrix.json"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="the issue's matrix only, 3 prompts, 3 samples"
    )
    parser.add_argument(
        "--prompts", type=int, default=len(PROMPTS), help=f"prompts under test, 1-{len(PROMPTS)}"
    )
    parser.add_argument("--repeat", type=int, default=5, help="samples per probe (default 5)")
    parser.add_argument("--jobs", type=int, default=4, help="behaviours probed at once")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.repeat = 3, 3
    if not 1 <= args.prompts <= len(PROMPTS):
        parser.error(f"--prompts must be 1-{len(PROMPTS)}")
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    behaviours = BEHAVIOURS if args.quick else (*BEHAVIOURS, *COMBINATIONS, *NOISE_SWEEP, *LIMITS)
    prompts = PROMPTS[: args.prompts]
    about = machine() | {"emulator_scale": SCALE}
    print(
        f"probe matrix · {len(behaviours)} behaviours × {len(prompts)} prompts × "
        f"{args.repeat} samples · commit {about['commit']} · load {about['load_average']}",
        flush=True,
    )
    started = time.perf_counter()
    matrix = calibrate(behaviours, prompts, repeat=args.repeat, jobs=args.jobs)
    seconds = time.perf_counter() - started
    print()
    print(matrix.table())
    print()
    print(matrix.confusion_table())
    print()
    limits = [t for t in matrix.trials if t.behaviour.limit]
    for behaviour in dict.fromkeys(t.behaviour for t in limits):
        print(f"limit {behaviour.label} ({behaviour.modes}): {behaviour.limit}")
        print(
            f"  e.g. {next(t for t in limits if t.behaviour == behaviour).outcome.verdict.summary}"
        )
    wrong = matrix.wrong
    print(
        f"\n{len(matrix.counted)} counted trials: {len(matrix.false_positives)} false positives, "
        f"{len(matrix.false_negatives)} false negatives, {len(wrong)} verdicts not allowed "
        f"· {seconds:.1f} s"
    )
    for trial in wrong:
        print(f"  NOT ALLOWED {_name(trial)}: {trial.verdict} — {trial.outcome.verdict.summary}")
    write_json(args.out, matrix, about | {"prompts": list(prompts), "repeat": args.repeat})
    print(f"figures in {args.out}")
    return 1 if wrong else 0


def _name(trial: Trial) -> str:
    return f"{trial.behaviour.label} {trial.prompt!r}"


def write_json(path: Path, matrix: Matrix, about: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    trials = [
        {
            "behaviour": t.behaviour.label,
            "modes": t.behaviour.modes,
            "truth": t.behaviour.truth,
            "allowed": sorted(t.behaviour.allowed),
            "limit": t.behaviour.limit or None,
            "prompt": t.prompt,
            "verdict": t.verdict,
            "confidence": t.outcome.verdict.confidence,
            "samples": [s.verdict.verdict for s in t.outcome.samples],
            "summary": t.outcome.verdict.summary,
        }
        for t in matrix.trials
    ]
    confusion = {truth: dict(counts) for truth, counts in matrix.confusion().items()}
    document = {**about, "confusion": confusion, "trials": trials}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
