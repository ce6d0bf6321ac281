"""The emulator as a service that rewrites prompts (or not), and its reader models, spoken to by the
real google-genai client: what a probe meets on the wire."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner
from google import genai
from google.genai import errors, types

from gemflow.emulator import Emulator
from gemflow.emulator.command import emulator_command
from gemflow.emulator.lettering import CLOSINGS, OPENINGS, misspell
from gemflow.emulator.rewrite import (
    ENHANCER,
    EXPANSION,
    HIDDEN_SYSTEM,
    PREFIX,
    Rewriter,
    expand,
    paraphrase,
    reword,
)
from gemflow.models import default_reader, reader_models
from gemflow.probe.battery import PROBES
from gemflow.probe.compare import is_misreading, words

MODEL = "gemini-3.1-flash-image"
BEFORE = PROBES["before"].prompt("")
AFTER = PROBES["after"].prompt("")
CURRENT = PROBES["current"].prompt("")
QUOTED = PROBES["canary"].prompt("A kitten KTVR-4821 with prominent fur.")


@pytest.fixture
def client() -> Iterator[Callable[..., genai.Client]]:
    """A client on a fresh emulator with the given rewrite modes; all stopped at teardown."""
    opened: list[tuple[Emulator, genai.Client]] = []

    def connect(rewrite: str | None = None) -> genai.Client:
        emulator = Emulator(scale=1 / 16, rewrite=rewrite).start()
        options = types.HttpOptions(base_url=emulator.url)
        opened.append((emulator, genai.Client(api_key="k", http_options=options)))
        return opened[-1][1]

    yield connect
    for emulator, sdk in opened:
        sdk.close()
        emulator.stop()


def draw(
    sdk: genai.Client, prompt: str, model: str = MODEL, **config: object
) -> types.GenerateContentResponse:
    return sdk.models.generate_content(
        model=model, contents=[prompt], config=types.GenerateContentConfig(**config)
    )


def image_of(response: types.GenerateContentResponse) -> bytes:
    parts = [p for p in response.parts or [] if p.inline_data and not p.thought]
    assert parts, response
    return parts[-1].inline_data.data


def read(sdk: genai.Client, image: bytes, model: str | None = None) -> str | None:
    return sdk.models.generate_content(
        model=model or default_reader(),
        contents=["Transcribe the text.", types.Part.from_bytes(data=image, mime_type="image/png")],
        config=types.GenerateContentConfig(response_modalities=["TEXT"]),
    ).text


# --------------------------------------------------------------------------- without a rewriter


def test_without_a_rewriter_nothing_came_before_the_request(client) -> None:
    sdk = client()
    assert read(sdk, image_of(draw(sdk, BEFORE))) == "NO_TEXT"


def test_a_system_instruction_is_the_text_before_the_request(client) -> None:
    sdk = client()
    drawn = image_of(draw(sdk, BEFORE, system_instruction="Be terse."))
    assert read(sdk, drawn) == "Be terse."


def test_what_comes_after_the_request_is_no_image(client) -> None:
    candidate = draw(client(), AFTER).candidates[0]
    assert candidate.finish_reason == types.FinishReason.NO_IMAGE
    assert candidate.content is None


def test_quoted_text_is_drawn_alone(client) -> None:
    sdk = client()
    prompt = PROBES["canary"].prompt('a "red" bicycle')
    assert read(sdk, image_of(draw(sdk, prompt))) == 'a "red" bicycle'


def test_the_current_text_is_drawn_as_sent(client) -> None:
    sdk = client()
    assert read(sdk, image_of(draw(sdk, CURRENT))) == CURRENT


# --------------------------------------------------------------------------- rewriting


def test_a_hidden_system_prompt_is_drawn_for_the_text_before_the_request(client) -> None:
    sdk = client("system")
    assert read(sdk, image_of(draw(sdk, BEFORE))) == HIDDEN_SYSTEM


def test_a_prefix_is_drawn_in_front_of_the_current_text(client) -> None:
    sdk = client("prefix")
    assert read(sdk, image_of(draw(sdk, CURRENT))) == f"{PREFIX} {CURRENT}"


def test_a_paraphrased_prompt_is_drawn_as_the_model_received_it(client) -> None:
    sdk = client("paraphrase")
    assert read(sdk, image_of(draw(sdk, CURRENT))) == paraphrase(CURRENT)


def test_paraphrase_swaps_words_drops_noise_and_adds_an_enhancer() -> None:
    assert paraphrase("A kitten, KTVR-4821 verbatim.") == f"A young cat. {ENHANCER}"


def test_reword_keeps_the_canary_and_moves_a_phrase_to_the_front() -> None:
    assert reword("A kitten KTVR-4821 with prominent fur.") == (
        "With striking coat, a young cat KTVR-4821."
    )


def test_reword_rewords_inside_the_quotes_too() -> None:
    assert '"With striking coat, a young cat KTVR-4821."' in reword(QUOTED)


def test_expand_appends_style_words() -> None:
    assert expand("A kitten with fur.") == f"A kitten with fur, {EXPANSION}"


def test_an_expanded_prompt_is_drawn_as_the_model_received_it(client) -> None:
    sdk = client("expand")
    assert read(sdk, image_of(draw(sdk, CURRENT))) == expand(CURRENT)


# --------------------------------------------------------------------------- model habits


def test_a_literal_model_letters_the_whole_prompt_for_the_quoted_text(client) -> None:
    sdk = client("literal")
    assert read(sdk, image_of(draw(sdk, QUOTED))) == QUOTED


def test_a_literal_model_letters_its_context_and_prompt_for_what_came_before(client) -> None:
    sdk = client("literal,system")
    assert read(sdk, image_of(draw(sdk, BEFORE))) == f"{HIDDEN_SYSTEM}\n{BEFORE}"


def test_a_literal_model_letters_its_prompt_for_what_comes_after(client) -> None:
    sdk = client("literal")
    assert read(sdk, image_of(draw(sdk, AFTER))) == AFTER


def test_an_inventing_model_makes_up_an_opening_and_a_closing_line(client) -> None:
    sdk = client("invent")
    assert read(sdk, image_of(draw(sdk, BEFORE))) in OPENINGS
    assert read(sdk, image_of(draw(sdk, AFTER))) in CLOSINGS


def test_an_inventing_model_shows_the_context_it_has(client) -> None:
    sdk = client("invent,system")
    assert read(sdk, image_of(draw(sdk, BEFORE))) == HIDDEN_SYSTEM


def test_a_noisy_model_and_its_reader_get_a_few_letters_wrong(client) -> None:
    sdk = client("noisy")
    text = read(sdk, image_of(draw(sdk, CURRENT)))
    assert text != CURRENT
    sent, got = words(CURRENT), words(text)
    assert len(got) == len(sent)
    assert all(is_misreading(a, b) for a, b in zip(sent, got, strict=True))


def test_misspelling_is_deterministic_and_spares_a_words_only_letter() -> None:
    text = "a b c " * 50
    assert misspell(text, 0.5, "x") == misspell(text, 0.5, "x")
    assert len(misspell(text, 0.5, "x").split()) == 150


def test_a_refusing_model_never_shows_what_came_before(client) -> None:
    candidate = draw(client("refuse"), BEFORE).candidates[0]
    assert candidate.finish_reason == types.FinishReason.IMAGE_SAFETY


def test_a_refusing_model_refuses_some_requests_for_text_and_draws_others(client) -> None:
    sdk = client("refuse")
    answers = [draw(sdk, CURRENT).candidates[0] for _ in range(12)]
    refused = [a for a in answers if not any(p.inline_data for p in a.content.parts or [])]
    assert 0 < len(refused) < len(answers)
    reasons = {a.finish_reason for a in refused}
    assert reasons <= {types.FinishReason.IMAGE_SAFETY, types.FinishReason.STOP}


def test_a_refusing_model_draws_ordinary_pictures(client) -> None:
    sdk = client("refuse")
    assert all(image_of(draw(sdk, "A red bicycle.")) for _ in range(5))


def test_rewrite_modes_combine() -> None:
    rewriter = Rewriter.parse("system, paraphrase")
    assert (rewriter.system, rewriter.prefix, rewriter.paraphrase) == (HIDDEN_SYSTEM, None, True)


def test_an_unknown_rewrite_mode_is_a_usage_error() -> None:
    result = CliRunner().invoke(emulator_command, ["--port", "0", "--rewrite", "system,sneaky"])
    assert result.exit_code == 2
    assert "unknown rewrite mode 'sneaky'" in result.output


def test_modes_that_exclude_each_other_are_a_usage_error() -> None:
    result = CliRunner().invoke(emulator_command, ["--port", "0", "--rewrite", "literal,invent"])
    assert result.exit_code == 2
    assert "'literal' and 'invent' exclude each other" in result.output


def test_every_mode_is_in_the_help() -> None:
    from gemflow.emulator.rewrite import MODES

    help_text = " ".join(CliRunner().invoke(emulator_command, ["--help"]).output.split())
    for mode in MODES:
        assert f"{mode} (" in help_text, mode


# --------------------------------------------------------------------------- reader models


def test_reader_models_come_from_the_model_table() -> None:
    assert default_reader() in reader_models()


def test_a_reader_model_refuses_to_make_images(client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        draw(client(), "A cat", model=default_reader(), response_modalities=["IMAGE"])
    assert caught.value.code == 400
    assert "response modalities" in caught.value.message
