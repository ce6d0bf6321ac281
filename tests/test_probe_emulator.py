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
from gemflow.emulator.rewrite import ENHANCER, HIDDEN_SYSTEM, PREFIX, Rewriter, paraphrase
from gemflow.models import default_reader, reader_models
from gemflow.probe.battery import PROBES

MODEL = "gemini-3.1-flash-image"
BEFORE = PROBES["before"].prompt("")
AFTER = PROBES["after"].prompt("")
CURRENT = PROBES["current"].prompt("")


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


def test_rewrite_modes_combine() -> None:
    rewriter = Rewriter.parse("system, paraphrase")
    assert (rewriter.system, rewriter.prefix, rewriter.paraphrase) == (HIDDEN_SYSTEM, None, True)


def test_an_unknown_rewrite_mode_is_a_usage_error() -> None:
    result = CliRunner().invoke(emulator_command, ["--port", "0", "--rewrite", "system,sneaky"])
    assert result.exit_code == 2
    assert "unknown rewrite mode 'sneaky'" in result.output


# --------------------------------------------------------------------------- reader models


def test_reader_models_come_from_the_model_table() -> None:
    assert default_reader() in reader_models()


def test_a_reader_model_refuses_to_make_images(client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        draw(client(), "A cat", model=default_reader(), response_modalities=["IMAGE"])
    assert caught.value.code == 400
    assert "response modalities" in caught.value.message
