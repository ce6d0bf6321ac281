"""The engine's seams: one way to send (probes keep to the step's retries, rate limit and timeout
like any API step), providers that carry their service into the key, and stores and providers that
plug in with one module and one registry line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import FAKE_KEY, FakeTime, patient

from gemflow.cache.local import Store
from gemflow.cache.memory import MemoryStore
from gemflow.cache.store import STORES, ResultStore, open_store
from gemflow.emulator import Emulator
from gemflow.engine.events import RunSummary
from gemflow.engine.runner import RunOptions, run_workflow
from gemflow.errors import ConfigError
from gemflow.providers.base import ApiRequest, ApiResponse
from gemflow.providers.connection import Connection
from gemflow.providers.gemini import GeminiProvider
from gemflow.providers.registry import PROVIDERS
from gemflow.workflow.load import load_workflow

PROBE = """\
version: 1
defaults:
  model: gemini-3.1-flash-image
  {settings}
steps:
  check:
    kind: probe
    prompt: A kitten.
    probes: [before, current]
"""
GENERATE = """\
version: 1
defaults:
  model: gemini-3.1-flash-image
  {settings}
steps:
  apple:
    kind: generate
    prompt: A red apple.
  pear:
    kind: generate
    prompt: A green pear.
"""


def write(root: Path, text: str) -> Path:
    path = root / "wf.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def run(
    path: Path, store: ResultStore, connection: Connection, *, dry_run: bool = False
) -> RunSummary:
    return run_workflow(
        load_workflow(path), store, RunOptions(dry_run=dry_run), connection=connection
    )


def statuses(summary: RunSummary) -> list[str]:
    return [str(report.status) for report in summary.steps]


# -- one way to send ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["generate", "probe"])
def test_retries_0_in_the_defaults_sends_no_retry_for_any_kind(
    tmp_path: Path, emulator: Emulator, kind: str
) -> None:
    text = (PROBE if kind == "probe" else GENERATE).format(settings="retries: 0")
    emulator.faults.push("503")
    with Store(tmp_path / "cache") as store, Connection.emulator(url=emulator.url) as connection:
        summary = run(write(tmp_path, text), store, connection)
    failed = [r for r in summary.steps if r.status == "failed"]
    assert [r.api_calls for r in failed] == [1]
    assert failed[0].error is not None and failed[0].error.startswith("503 UNAVAILABLE")
    assert emulator.api_calls()[0]["status"] == 503
    assert [call["status"] for call in emulator.api_calls()].count(503) == 1


def test_a_probe_retries_as_its_step_says(tmp_path: Path, emulator: Emulator) -> None:
    emulator.faults.push("503", count=2)
    fake = FakeTime()
    inner = GeminiProvider(FAKE_KEY, base_url=emulator.url, service="emulator")
    text = PROBE.format(settings="retries: 1")
    with Store(tmp_path / "cache") as store, Connection.of(patient(inner, fake)) as connection:
        summary = run(write(tmp_path, text), store, connection)
    [report] = summary.steps
    assert report.status == "failed"
    assert report.error is not None and report.error.endswith("(gave up after 2 attempts)")
    assert report.api_calls == 2
    assert len(emulator.api_calls()) == 2


def test_a_probe_keeps_to_the_rate_limit_in_the_defaults(
    tmp_path: Path, emulator: Emulator
) -> None:
    fake = FakeTime()
    inner = GeminiProvider(FAKE_KEY, base_url=emulator.url, service="emulator")
    with Store(tmp_path / "cache") as store, Connection.of(patient(inner, fake)) as connection:
        summary = run(write(tmp_path, PROBE.format(settings="rpm: 6")), store, connection)
    assert statuses(summary) == ["run"]
    # two probe images to one model, two readings by another: each model's second request waited
    # the 10 s that 6 requests a minute allow
    assert sorted(fake.sleeps) == [10.0, 10.0]
    assert len(emulator.api_calls()) == 4


def test_a_probe_waits_no_longer_than_its_timeout(tmp_path: Path, emulator: Emulator) -> None:
    emulator.faults.push("hang")
    text = PROBE.format(settings="retries: 0") + "    timeout: 0.3\n"
    with Store(tmp_path / "cache") as store, Connection.emulator(url=emulator.url) as connection:
        summary = run(write(tmp_path, text), store, connection)
    [report] = summary.steps
    assert report.status == "failed"
    assert report.error == "no answer within 0.3 s"
    assert report.api_calls == 1


def test_a_refused_request_is_counted_with_its_tokens_and_cost(
    tmp_path: Path, emulator: Emulator
) -> None:
    emulator.faults.push("image_safety")
    with Store(tmp_path / "cache") as store, Connection.emulator(url=emulator.url) as connection:
        summary = run(write(tmp_path, GENERATE.format(settings="")), store, connection)
    [refused] = [r for r in summary.steps if r.status == "failed"]  # whichever was first
    assert refused.status == "failed"
    assert refused.api_calls == 1
    assert refused.tokens.get("input", 0) > 0
    assert refused.usd > 0


# -- providers own their identity -----------------------------------------------------------------


def test_a_provider_made_for_the_emulator_never_stores_under_googles_keys(
    tmp_path: Path, emulator: Emulator
) -> None:
    path = write(tmp_path, GENERATE.format(settings=""))
    made_by_hand = Connection.of(GeminiProvider(FAKE_KEY, base_url=emulator.url))
    with Store(tmp_path / "cache") as store, made_by_hand:
        emulated = run(path, store, made_by_hand)
        google = run(path, store, Connection.google(api_key=FAKE_KEY), dry_run=True)
    assert emulated.service == emulator.url
    assert statuses(emulated) == ["run", "run"]
    assert statuses(google) == ["run", "run"]  # Google's keys hold nothing the emulator made
    assert {r.key for r in emulated.steps}.isdisjoint({r.key for r in google.steps})


def test_the_emulator_connection_is_the_emulator_service_whatever_its_address(
    tmp_path: Path, emulator: Emulator
) -> None:
    path = write(tmp_path, GENERATE.format(settings=""))
    with Store(tmp_path / "cache") as store, Connection.emulator(url=emulator.url) as first:
        assert statuses(run(path, store, first)) == ["run", "run"]
    with Emulator(scale=0.125) as other, Store(tmp_path / "cache") as store:
        with Connection.emulator(url=other.url) as second:
            again = run(path, store, second)
        assert statuses(again) == ["cached", "cached"]
        assert again.service == "emulator"
        assert other.api_calls() == []


def test_without_a_connection_a_run_goes_to_google_and_asks_for_a_key(tmp_path: Path) -> None:
    with Store(tmp_path / "cache") as store, pytest.raises(ConfigError, match="no API key"):
        run_workflow(
            load_workflow(write(tmp_path, GENERATE.format(settings=""))), store, RunOptions()
        )


# -- a new store or provider is one module and one registry line ----------------------------------


def test_a_workflow_runs_on_the_memory_store_and_reruns_for_free(
    tmp_path: Path, emulator: Emulator
) -> None:
    path = write(tmp_path, GENERATE.format(settings=""))
    store = open_store("memory:")
    assert isinstance(store, MemoryStore)
    with Connection.emulator(url=emulator.url) as connection:
        assert statuses(run(path, store, connection)) == ["run", "run"]
        assert statuses(run(path, store, connection)) == ["cached", "cached"]
        (tmp_path / "out" / "apple.png").unlink()
        assert statuses(run(path, store, connection)) == ["restore", "cached"]
    assert len(emulator.api_calls()) == 2
    assert not (tmp_path / "cache").exists()


def test_a_new_store_is_one_registry_line(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(STORES, "scratch", "gemflow.cache.memory:MemoryStore")
    store = open_store("scratch:")
    with Connection.emulator(url=emulator.url) as connection:
        summary = run(write(tmp_path, GENERATE.format(settings="")), store, connection)
    assert statuses(summary) == ["run", "run"]
    assert all(store.meta(report.key or "") is not None for report in summary.steps)


def test_store_locations(tmp_path: Path) -> None:
    with open_store(tmp_path / "c") as folder, open_store(f"file:{tmp_path / 'd'}") as named:
        assert isinstance(folder, Store) and isinstance(named, Store)
    assert (tmp_path / "d").is_dir()
    with pytest.raises(ConfigError, match="takes no path"):
        open_store("memory:/somewhere")


class Recording(GeminiProvider):
    """A provider of its own (here the Gemini one, noting each prompt it sends)."""

    sent: ClassVar[list[str]] = []

    def generate(self, request: ApiRequest, *, timeout: float | None = None) -> ApiResponse:
        Recording.sent.append(request.prompt)
        return super().generate(request, timeout=timeout)


def test_a_new_provider_is_one_registry_line(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PROVIDERS, "gemini", f"{__name__}:Recording")
    monkeypatch.setattr(Recording, "sent", [])
    with Store(tmp_path / "cache") as store, Connection.emulator(url=emulator.url) as connection:
        summary = run(write(tmp_path, GENERATE.format(settings="")), store, connection)
    assert statuses(summary) == ["run", "run"]
    assert sorted(Recording.sent) == ["A green pear.", "A red apple."]
    assert sorted(Recording.sent) == sorted(call["prompt"] for call in emulator.api_calls())


@pytest.mark.parametrize(
    ("written", "service"),
    [
        ("https://generativelanguage.googleapis.com", None),
        ("https://generativelanguage.googleapis.com/", None),
        ("HTTPS://GenerativeLanguage.googleapis.com:443/", None),
        ("http://localhost:8080/", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://proxy.example:80/gemini/", "http://proxy.example/gemini"),
        ("http://user:pw@proxy.example/?key=x#y", "http://proxy.example"),
    ],
)
def test_one_endpoint_written_two_ways_is_one_service(written: str, service: str | None) -> None:
    from gemflow.providers.registry import service_of

    assert service_of(written) == service
