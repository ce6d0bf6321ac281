"""Secrets stay secret: the API key, and credentials written into a base URL, never reach the
lock file, the store, ``--json`` or the terminal, whatever the server sends back."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result
from conftest import FAKE_KEY, Project

from gemflow.cli import cli
from gemflow.errors import ConfigError
from gemflow.providers.registry import service_of

ONE_STEP = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  apple: {kind: generate, prompt: A red apple.}
"""


def with_fault(name: str) -> str:
    """The workflow, its step's prompt asking the emulator for fault ``name``."""
    return ONE_STEP.replace("A red apple.", f"'A red apple. [[emulator:{name}]]'")


def assert_nowhere(project: Project, result: Result, secret: str) -> None:
    """``secret`` is in no file of the project (outputs, lock file, store) and in no output."""
    assert secret not in result.stdout
    assert secret not in result.stderr
    for path in project.root.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("url", "service"),
    [
        ("http://bob:s3cret@example.com:8080/gemini", "http://example.com:8080/gemini"),
        ("https://bob@example.com", "https://example.com"),
        ("https://example.com/v?key=AIzaSECRET&x=1", "https://example.com/v"),
        ("https://example.com/#token", "https://example.com"),  # no trailing / (one service)
        ("http://bob:pw@[::1]:9000", "http://[::1]:9000"),
        ("https://example.com", "https://example.com"),
    ],
)
def test_the_service_of_a_base_url_carries_no_credentials(url: str, service: str) -> None:
    assert service_of(url) == service


def test_credentials_in_the_base_url_reach_neither_the_lock_nor_the_json(project: Project) -> None:
    project.write(ONE_STEP)
    url = project.emulator.url.replace("http://", "http://bob:s3cret-pw@")
    result = project.cli("run", str(project.workflow), "--base-url", url, "--json")
    doc = json.loads(result.stdout)
    assert doc["service"] == project.emulator.url
    assert project.lock["steps"]["apple"]["params"]["service"] == project.emulator.url
    assert len(project.calls()) == 1
    assert_nowhere(project, result, "s3cret-pw")
    assert_nowhere(project, result, FAKE_KEY)


def test_a_key_echoed_in_an_answer_is_redacted_everywhere(project: Project) -> None:
    project.write(with_fault("echo_key"))
    result = project.run("--json", expect=1)
    (step,) = json.loads(result.stdout)["steps"]
    assert step["error"] == (
        "no image returned (text only): Your request with API key [redacted] cannot be drawn. "
        "(emulated fault)"
    )
    assert "[redacted]" in result.stderr
    assert_nowhere(project, result, FAKE_KEY)


def test_the_provider_redacts_the_key_from_the_texts_of_an_answer(project: Project) -> None:
    from gemflow.providers.base import ApiRequest
    from gemflow.providers.gemini import GeminiProvider

    url = project.emulator.url.replace("http://", "http://bob:s3cret-pw@")
    provider = GeminiProvider(FAKE_KEY, base_url=url)
    try:
        project.emulator.faults.push("echo_key")
        answer = provider.generate(ApiRequest(model="gemini-3.1-flash-image", prompt="An apple."))
    finally:
        provider.close()
    assert answer.texts == [
        "Your request with API key [redacted] cannot be drawn. (emulated fault)"
    ]


def test_the_provider_redacts_the_key_in_any_form_and_the_url_credentials() -> None:
    from gemflow.providers.gemini import GeminiProvider

    provider = GeminiProvider(FAKE_KEY, base_url="http://bob:s3cret-pw@proxy.example/?token=t0ken")
    try:
        echoed = f"{FAKE_KEY} {FAKE_KEY.encode()!r} bob:s3cret-pw s3cret-pw t0ken"
        assert (
            provider.redact(echoed) == "[redacted] b'[redacted]' [redacted] [redacted] [redacted]"
        )
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("key", "what"),
    [
        (f"{FAKE_KEY}\r\nX-Injected: 1", "a line break at character 35"),
        (f"{FAKE_KEY[:10]}\x07{FAKE_KEY[10:]}", "a control character at character 11"),
        (f"{FAKE_KEY}é", "a non-ASCII character at character 35"),
    ],
    ids=["crlf", "bell", "non-ascii"],
)
def test_a_key_an_http_header_cannot_carry_stops_the_run_before_any_request(
    project: Project, key: str, what: str
) -> None:
    project.write(ONE_STEP)
    env = {"GEMINI_API_KEY": key, "GEMFLOW_CACHE_DIR": str(project.root / "cache")}
    argv = ["run", str(project.workflow), "--base-url", project.emulator.url, "--json"]
    result = CliRunner().invoke(cli, argv, env=env, catch_exceptions=False)
    message = f"GEMINI_API_KEY holds {what}, which an HTTP header cannot carry: set the key again"
    assert result.exit_code == 3, result.output
    assert result.stderr.endswith(f"\nerror: {message}\n")
    doc = json.loads(result.stdout)
    assert (doc["exit_code"], doc["errors"]) == (3, [{"message": message}])
    assert project.emulator.requests == []
    assert_nowhere(project, result, FAKE_KEY[10:])


def test_a_key_given_in_python_is_checked_the_same_way(project: Project) -> None:
    import gemflow

    project.write(ONE_STEP)
    with pytest.raises(ConfigError, match=r"^the API key given holds a line break at character 35"):
        gemflow.run(project.workflow, api_key=FAKE_KEY + "\n", base_url=project.emulator.url)
    assert project.emulator.requests == []
