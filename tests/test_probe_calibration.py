"""The probe does not cry wolf: its verdicts on the emulator's matrix of services (issue 10).

Every behaviour of ``gemflow.probe.calibration.BEHAVIOURS`` is probed with three prompts under
test, three samples each, through the real google-genai client against a real emulator: no false
"rewritten" for a service that passes prompts through, "rewritten" for every one that rewrites,
"inconclusive" only for a model that refuses probes. ``bench/probe_matrix.py`` runs a bigger matrix.
"""

from __future__ import annotations

import pytest

from gemflow.emulator.rewrite import EXPANSION, HIDDEN_SYSTEM
from gemflow.probe.calibration import (
    BEHAVIOURS,
    COMBINATIONS,
    PROMPTS,
    Matrix,
    Trial,
    calibrate,
)
from gemflow.probe.compare import words

REPEAT = 3


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return calibrate(BEHAVIOURS, PROMPTS[:3], repeat=REPEAT)


def trials(matrix: Matrix, label: str) -> list[Trial]:
    return [t for t in matrix.trials if t.behaviour.label == label]


def describe(found: list[Trial]) -> list[str]:
    return [f"{t.behaviour.label} {t.prompt!r}: {t.outcome.verdict.summary}" for t in found]


def test_a_faithful_service_is_never_called_rewritten(matrix: Matrix) -> None:
    assert describe(matrix.false_positives) == []


def test_a_rewriting_service_is_never_called_verbatim(matrix: Matrix) -> None:
    assert describe(matrix.false_negatives) == []


def test_every_verdict_is_one_its_service_allows(matrix: Matrix) -> None:
    """Rewriting services are "rewritten", faithful ones "verbatim"; only the model that refuses
    probes may leave the probe undecided."""
    assert describe(matrix.wrong) == []
    undecided = {t.behaviour.label for t in matrix.trials if t.verdict == "inconclusive"}
    assert undecided <= {"g"}


def test_every_behaviour_is_probed_with_three_prompts(matrix: Matrix) -> None:
    for behaviour in BEHAVIOURS:
        assert len({t.prompt for t in trials(matrix, behaviour.label)}) >= 3, behaviour.label


def test_the_samples_agree_unless_the_model_refuses(matrix: Matrix) -> None:
    split = [
        t
        for t in matrix.trials
        if not t.samples_agree and "refuse" not in (t.behaviour.modes or "")
    ]
    assert describe(split) == []


def test_a_hidden_system_prompt_is_named_in_one_sentence(matrix: Matrix) -> None:
    for trial in trials(matrix, "c"):
        summary = trial.outcome.verdict.summary
        assert summary.startswith("A hidden instruction was found before your prompt: 'You are")
        assert "shown by the before probe and confirmed by the control in 3/3 samples" in summary
        assert trial.outcome.verdict.supported_by == ["before", "after"]
        assert trial.outcome.verdict.confidence == 0.9


def test_a_faithful_service_is_verbatim_in_every_sample(matrix: Matrix) -> None:
    for trial in trials(matrix, "b") + trials(matrix, "a"):
        assert trial.outcome.verdict.summary.startswith(
            "Your prompt reached the model verbatim in 3/3 samples"
        )


def test_words_an_expander_adds_are_named(matrix: Matrix) -> None:
    for trial in trials(matrix, "e"):
        assert f"(added: {', '.join(words(EXPANSION))})" in trial.outcome.verdict.summary


def test_a_lost_canary_is_named(matrix: Matrix) -> None:
    for trial in trials(matrix, "d1"):
        assert trial.outcome.plan.canary in trial.outcome.verdict.summary


def test_invented_context_is_discounted_and_said_so(matrix: Matrix) -> None:
    for trial in trials(matrix, "h"):
        verdict = trial.outcome.verdict
        if verdict.confidence < 0.9:  # a sample whose before probe showed made-up text
            assert "discounted because the control shows this model makes up text" in (
                verdict.summary
            )


def test_hidden_text_leaves_out_the_instruction_a_literal_model_letters() -> None:
    """The issue's case: a faithful model that letters its whole prompt, behind a hidden prompt."""
    found = calibrate([c for c in COMBINATIONS if c.label == "c+a"], PROMPTS[:1], repeat=1)
    (trial,) = found.trials
    before = next(r for r in trial.outcome.samples[0].results if r.probe == "before")
    assert before.context is not None and before.context.ahead_text == HIDDEN_SYSTEM
    assert trial.verdict == "rewritten"


def test_the_matrix_is_the_same_every_time() -> None:
    noisy = [b for b in BEHAVIOURS if b.label == "f"]
    first, second = (calibrate(noisy, PROMPTS[:1], repeat=2) for _ in range(2))
    readings = [
        [r.read for s in m.trials[0].outcome.samples for r in s.results] for m in (first, second)
    ]
    assert readings[0] == readings[1]
