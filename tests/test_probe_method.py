"""The probe method without the network: the battery, comparing texts, judging, the report schema."""

from __future__ import annotations

import re
from pathlib import Path

from gemflow.probe.battery import PROBES, canary_for, quoted_text
from gemflow.probe.compare import compare, unexplained_words, words
from gemflow.probe.schema import PROBE_RESULT, SAMPLE, SCHEMA, validate
from gemflow.probe.verdict import (
    Finding,
    SampleVerdict,
    judge_context,
    judge_sample,
    judge_words,
    majority,
)

PROBE_DOCS = Path(__file__).parent.parent / "docs" / "probe.md"
MODEL = "gemini-3.1-flash-image"

# --------------------------------------------------------------------------- the battery


def test_the_canary_depends_only_on_model_and_prompt() -> None:
    assert canary_for(MODEL, "a cat") == canary_for(MODEL, "a cat")
    assert canary_for(MODEL, "a cat") != canary_for(MODEL, "a dog")
    assert re.fullmatch(r"[B-Z]{4}-\d{4}", canary_for(MODEL, "a cat"))


def test_the_canary_sits_inside_the_prompt_not_at_its_end() -> None:
    assert (
        quoted_text("a red bicycle by a door", "KTVR-4821") == "a red bicycle KTVR-4821 by a door"
    )


def test_the_current_probe_expects_itself_and_the_context_probes_nothing() -> None:
    assert PROBES["current"].expected("x") == PROBES["current"].prompt("x")
    assert PROBES["before"].expected("x") == PROBES["after"].expected("x") == ""


# --------------------------------------------------------------------------- comparing


def test_words_ignore_case_punctuation_and_width() -> None:
    assert words("Ｈello, WORLD — it's purple-and-green!") == [
        "hello", "world", "it", "s", "purple", "and", "green"
    ]  # fmt: skip


def test_the_same_words_are_fully_similar() -> None:
    c = compare("A red bicycle.", "a red BICYCLE")
    assert (c.similarity, c.changed) == (1.0, 0)


def test_a_misspelt_word_is_a_misreading_not_a_change() -> None:
    c = compare("large legible letters", "large legable letters")
    assert c.words_misread == ["legible→legable"]
    assert c.changed == 0


def test_a_replaced_word_is_added_and_dropped() -> None:
    c = compare("a kitten with fur", "a cat with fur")
    assert (c.words_added, c.words_dropped) == (["cat"], ["kitten"])


def test_words_before_the_expected_text_are_leading_text() -> None:
    c = compare("a red bicycle", "a vivid picture of: a red bicycle")
    assert c.leading_text == "a vivid picture of"
    assert c.leads


def test_a_replaced_first_word_is_not_leading_text() -> None:
    assert compare("large legible magnets", "big readable magnets").leading_text == ""


def test_the_canary_is_found_whatever_its_case_or_hyphen() -> None:
    assert compare("a KTVR-4821 b", "a ktvr 4821 b", canary="KTVR-4821").canary_found


def test_the_instruction_echoed_back_is_not_unexplained() -> None:
    assert (
        unexplained_words("the text before this request", "spell the text before this request")
        == []
    )


# --------------------------------------------------------------------------- judging


def test_hidden_text_before_the_request_is_a_strong_sign() -> None:
    finding = judge_context(["you", "are", "nano", "banana"], control_invents=False)
    assert (finding.signal, finding.weight) == ("rewritten", 2)


def test_a_control_that_invents_text_weakens_the_before_probe() -> None:
    finding = judge_context(["you", "are", "nano", "banana"], control_invents=True)
    assert (finding.signal, finding.weight) == ("rewritten", 1)


def test_a_missing_canary_with_nothing_else_changed_is_a_weak_sign() -> None:
    finding = judge_words(compare("a KTVR-4821 b c", "a b c", canary="KTVR-4821"), "KTVR-4821")
    assert (finding.signal, finding.weight) == ("rewritten", 1)


def test_a_misspelt_canary_still_arrived() -> None:
    finding = judge_words(
        compare("a KTVR-4821 b", "a KTVP-4821 b", canary="KTVR-4821"), "KTVR-4821"
    )
    assert finding.signal != "rewritten"


def test_one_weak_sign_alone_is_inconclusive() -> None:
    assert judge_sample({"canary": Finding("rewritten", 1, "")}).verdict == "inconclusive"


def test_verbatim_needs_the_words_intact_and_no_sign_of_rewriting() -> None:
    intact = {"current": Finding("verbatim", 2, ""), "canary": Finding("verbatim", 2, "")}
    assert judge_sample(intact).verdict == "verbatim"
    assert judge_sample({**intact, "before": Finding("rewritten", 2, "")}).verdict == "rewritten"


def test_the_majority_needs_more_than_half_of_the_samples() -> None:
    split = [SampleVerdict("rewritten", 0.9, []), SampleVerdict("verbatim", 0.9, [])]
    assert majority(split).verdict == "inconclusive"
    assert majority(split).confidence == 0.0


def test_confidence_scales_with_how_many_samples_agree() -> None:
    samples = [SampleVerdict("rewritten", 0.9, [])] * 2 + [SampleVerdict("inconclusive", 0.0, [])]
    assert majority(samples).confidence == 0.6


# --------------------------------------------------------------------------- the report schema


def test_every_field_of_the_schema_is_documented() -> None:
    for schema in (SCHEMA, SAMPLE, PROBE_RESULT, SCHEMA["properties"]["scores"]):
        for name, field in schema["properties"].items():
            assert field.get("description"), name


def test_every_top_level_field_is_explained_in_the_docs() -> None:
    section = PROBE_DOCS.read_text()
    for name in SCHEMA["properties"]:
        assert f"`{name}`" in section, name


def test_the_validator_reports_missing_misnamed_and_mistyped_fields() -> None:
    problems = validate({"format": "gemflow-probe", "version": "1", "extra": 1})
    assert "$: missing 'verdict'" in problems
    assert "$.extra: not allowed" in problems
    assert "$.version: expected 1, got '1'" in problems
