"""Retries, timeouts and the per-model rate limit: the real google-genai client against the
emulator, with injected sleep and randomness so no test waits for a backoff."""

from __future__ import annotations

import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest
from conftest import FAKE_KEY, FakeTime, patient
from google.genai import errors as genai_errors

from gemflow.cache.local import Store
from gemflow.emulator import Emulator, Faults
from gemflow.engine.events import Event, Notice, RunSummary
from gemflow.engine.runner import RunOptions, run_workflow
from gemflow.errors import ApiError, WorkflowError
from gemflow.providers.base import ApiRequest
from gemflow.providers.connection import Connection
from gemflow.providers.gemini import GeminiProvider, server_retry_delay
from gemflow.providers.resilient import (
    GaveUpError,
    RateLimiter,
    ResilientProvider,
    RetryPolicy,
    attempts_of,
    resilient,
)
from gemflow.workflow.load import load_workflow

MODEL = "gemini-3.1-flash-image"
REQUEST = ApiRequest(model=MODEL, prompt="A red apple.")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(scale=0.125, faults=Faults(retry_delay=0.01)) as emulator:
        yield emulator


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def gemini(emu: Emulator) -> Iterator[GeminiProvider]:
    provider = GeminiProvider(FAKE_KEY, base_url=emu.url)
    yield provider
    provider.close()


# -- what is retried ------------------------------------------------------------------------------


def test_a_429_is_retried_after_the_delay_the_server_asked_for(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    emu.faults = Faults(retry_delay=7.0)
    emu.faults.push("429")
    sent = patient(gemini, fake).send(REQUEST)
    assert sent.response.image is not None
    assert sent.attempts == 2
    assert [call["status"] for call in emu.api_calls()] == [429, 200]
    assert fake.sleeps == [8.75]  # RetryInfo's 7 s, stretched by the draw (0.5 x 50%), no backoff


def test_a_503_is_retried_after_the_delay_the_server_asked_for_and_said(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    emu.faults = Faults(retry_delay=3.0)
    emu.faults.push("503")
    told: list[str] = []
    sent = patient(gemini, fake).send(REQUEST, notify=told.append)
    assert sent.attempts == 2
    assert len(emu.api_calls()) == 2
    assert fake.sleeps == [3.75]
    assert told == ["503 UNAVAILABLE; retry 1/5 in 3.8 s"]


def test_a_500_is_retried_after_a_jittered_backoff(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    emu.faults.push("500")
    sent = patient(gemini, fake).send(REQUEST)
    assert sent.attempts == 2
    assert fake.sleeps == [1.0]  # no RetryInfo: draw 0.5 x the first ceiling, 2 s


def test_a_refused_connection_is_retried(fake: FakeTime) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = GeminiProvider(FAKE_KEY, base_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(GaveUpError, match="could not reach the API") as caught:
            patient(provider, fake, retries=2).send(REQUEST)
    finally:
        provider.close()
    assert caught.value.attempts == 3
    assert len(fake.sleeps) == 2


# -- what is not ----------------------------------------------------------------------------------


def test_an_invalid_argument_fails_at_once_with_the_api_message(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    bad = ApiRequest(model=MODEL, prompt="A red apple.", aspect_ratio="7:3")
    with pytest.raises(ApiError, match="Unsupported aspect ratio '7:3'") as caught:
        patient(gemini, fake).send(bad)
    assert caught.value.code == 400
    assert not isinstance(caught.value, GaveUpError)
    assert attempts_of(caught.value) == 1
    assert len(emu.api_calls()) == 1
    assert fake.sleeps == []


def test_an_unknown_model_fails_at_once(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    with pytest.raises(ApiError, match="models/gemini-9-image is not found") as caught:
        patient(gemini, fake).send(ApiRequest(model="gemini-9-image", prompt="A red apple."))
    assert caught.value.code == 404
    assert len(emu.api_calls()) == 1
    assert fake.sleeps == []


def test_a_server_asking_to_wait_longer_than_the_limit_is_not_retried(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    emu.faults = Faults(retry_delay=3600.0)
    emu.faults.push("429")
    with pytest.raises(GaveUpError, match="the server asked for 3600 s, over the 60 s limit"):
        patient(gemini, fake).send(REQUEST)
    assert len(emu.api_calls()) == 1
    assert fake.sleeps == []


def test_exhausted_retries_fail_with_the_last_error_and_the_attempt_count(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    emu.faults.push("500")
    emu.faults.push("503", count=2)
    with pytest.raises(GaveUpError) as caught:
        patient(gemini, fake).send(REQUEST, retries=2)
    assert str(caught.value).startswith("503 UNAVAILABLE: The model is overloaded.")
    assert str(caught.value).endswith("(gave up after 3 attempts)")
    assert (caught.value.code, caught.value.attempts) == (503, 3)
    assert len(emu.api_calls()) == 3


def test_the_command_line_retries_win_over_the_step(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    emu.faults.push("503", count=3)
    with pytest.raises(GaveUpError, match="gave up after 2 attempts"):
        patient(gemini, fake, retries=1).send(REQUEST, retries=5)
    assert len(emu.api_calls()) == 2


def test_a_plain_provider_is_wrapped_and_a_resilient_one_kept(gemini: GeminiProvider) -> None:
    wrapped = resilient(gemini)
    assert isinstance(wrapped, ResilientProvider)
    assert wrapped.inner is gemini
    assert resilient(wrapped) is wrapped


# -- timeouts -------------------------------------------------------------------------------------


def test_a_request_that_times_out_is_retried_and_can_succeed(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    emu.faults.push("hang")
    told: list[str] = []
    started = time.monotonic()
    sent = patient(gemini, fake).send(
        ApiRequest(model=MODEL, prompt="A red apple."), timeout=0.3, notify=told.append
    )
    assert time.monotonic() - started < 2
    assert sent.attempts == 2
    assert told == ["no answer within 0.3 s; retry 1/5 in 1.0 s"]


def test_requests_that_keep_timing_out_fail_quickly(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    emu.faults.push("hang", count=2)
    started = time.monotonic()
    with pytest.raises(GaveUpError, match=r"no answer within 0.3 s .*gave up after 2") as caught:
        patient(gemini, fake, retries=1).send(
            ApiRequest(model=MODEL, prompt="A red apple."), timeout=0.3
        )
    assert time.monotonic() - started < 2
    assert caught.value.code is None
    assert caught.value.attempts == 2


def test_an_answer_not_whole_by_the_deadline_is_abandoned_and_its_connection_cut(
    emu: Emulator, gemini: GeminiProvider
) -> None:
    emu.faults.push("trickle")  # a byte every 0.05 s: no read waits long, the whole takes minutes
    started = time.monotonic()
    with pytest.raises(ApiError, match=r"^no answer within 1 s$") as caught:
        gemini.generate(REQUEST, timeout=1)
    assert 1 <= time.monotonic() - started < 1.5
    assert caught.value.retryable
    assert_no_request_left_running()  # while the client is still open
    assert gemini.generate(REQUEST, timeout=1).image  # and the client still works


# -- the policy and the server's delay ------------------------------------------------------------


def test_backoff_is_full_jitter_doubling_from_2_s_up_to_60_s() -> None:
    policy = RetryPolicy()
    assert [policy.backoff(n, 1.0) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert policy.backoff(3, 0.0) == 0.0
    assert policy.backoff(3, 0.25) == 2.0


def test_the_server_delay_replaces_the_backoff_with_a_little_jitter() -> None:
    policy = RetryPolicy()
    asked_5 = ApiError("quota", code=429, status="RESOURCE_EXHAUSTED", retry_delay=5.0)
    assert policy.delay(asked_5, attempt=1, draw=0.0) == 5.0  # never less than asked
    assert policy.delay(asked_5, attempt=1, draw=0.9) == pytest.approx(7.25)
    assert policy.delay(asked_5, attempt=4, draw=0.9) == pytest.approx(7.25)  # no growth


def test_a_stretched_server_delay_stays_under_the_cap() -> None:
    asked_50 = ApiError("quota", code=429, status="RESOURCE_EXHAUSTED", retry_delay=50.0)
    assert RetryPolicy().delay(asked_50, attempt=1, draw=0.9) == 60.0


def sdk_error(headers: dict[str, str], details: list[dict] | None = None) -> genai_errors.APIError:
    body = {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}
    body["error"]["details"] = details or []
    return genai_errors.ClientError(429, body, httpx2.Response(429, headers=headers, json=body))


def test_retry_after_is_honoured_when_there_is_no_retry_info() -> None:
    assert server_retry_delay(sdk_error({"Retry-After": "12"})) == 12.0


def test_retry_after_may_be_an_http_date() -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    error = sdk_error({"Retry-After": "Wed, 21 Oct 2026 07:28:30 GMT"})
    assert server_retry_delay(error, now=now) == 30.0


def test_retry_info_wins_over_retry_after() -> None:
    info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.5s"}
    assert server_retry_delay(sdk_error({"Retry-After": "1"}, [info])) == 0.5


def test_no_retry_info_and_no_retry_after_means_no_delay_asked() -> None:
    assert server_retry_delay(sdk_error({})) is None


@pytest.mark.parametrize("delay", ["1.2.3s", ".s", "1e999s", "s", "-1s", "1.5", "", "NaNs"])
def test_a_malformed_retry_delay_is_ignored(delay: str) -> None:
    info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
    assert server_retry_delay(sdk_error({}, [info])) is None
    assert server_retry_delay(sdk_error({"Retry-After": "3"}, [info])) == 3.0


@pytest.mark.parametrize(
    "value", ["1.2.3", "soon", "Wed, 99 Foo 2026 07:28:30 GMT", "1" * 400, "-5", "", " "]
)
def test_a_malformed_retry_after_is_ignored(value: str) -> None:
    assert server_retry_delay(sdk_error({"Retry-After": value})) is None


@pytest.mark.parametrize(
    "details", [[{"@type": "RetryInfo", "retryDelay": 5}], ["RetryInfo"], [None], [[1, 2]]]
)
def test_retry_details_of_the_wrong_shape_are_ignored(details: list) -> None:
    assert server_retry_delay(sdk_error({}, details)) is None


@pytest.mark.parametrize("body", [{"error": "slow down"}, {"error": {"details": "x"}}, [1, 2], "x"])
def test_an_error_body_of_the_wrong_shape_asks_no_delay(body: object) -> None:
    error = genai_errors.ClientError(429, body, httpx2.Response(429))  # type: ignore[arg-type]
    assert server_retry_delay(error) is None


# -- the rate limiter -----------------------------------------------------------------------------


def test_the_rate_limiter_spaces_requests_to_a_model(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    sent_at = []
    for _ in range(3):
        limiter.acquire(MODEL, rpm=30)
        sent_at.append(fake.now)
    assert sent_at == [0.0, 2.0, 4.0]


def test_the_rate_limiter_keeps_models_apart(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    limiter.acquire(MODEL, rpm=1)
    limiter.acquire("gemini-3-pro-image", rpm=1)
    limiter.acquire(MODEL, rpm=None)  # no limit set: never waits
    assert fake.sleeps == []


def test_the_rate_limiter_is_shared_across_threads() -> None:
    still = FakeTime(advance=False)  # every thread asks at the same instant
    limiter = RateLimiter(clock=still.clock, sleep=still.sleep)
    threads = [threading.Thread(target=limiter.acquire, args=(MODEL, 60)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(still.sleeps) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]  # and one went at once


def test_a_rate_limit_wait_over_a_second_is_told_and_a_shorter_one_is_not(
    fake: FakeTime,
) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    told: list[str] = []
    for _ in range(2):
        limiter.acquire(MODEL, rpm=120, notify=told.append)  # 0.5 s apart
    assert told == []
    for _ in range(2):
        limiter.acquire("gemini-3-pro-image", rpm=14, notify=told.append)
    assert told == ["rate limit: waiting 4.3 s for gemini-3-pro-image"]


def test_retries_wait_their_turn_in_the_rate_limit(
    emu: Emulator, gemini: GeminiProvider, fake: FakeTime
) -> None:
    emu.faults.push("503")
    patient(gemini, fake, rpm=6).send(REQUEST)
    assert fake.sleeps == [0.0125, 9.9875]  # the 0.01 s asked (stretched), then the rest of 10 s


# -- through the runner ---------------------------------------------------------------------------

WORKFLOW = """\
version: 1
defaults:
  model: gemini-3.1-flash-image
  retries: 3
  timeout: 30
  rpm: 600
steps:
  apple:
    kind: generate
    prompt: A red apple.
"""


class Runs:
    """Runs a workflow file with run_workflow and a ResilientProvider that sleeps on ``fake``."""

    def __init__(self, root: Path, emu: Emulator, fake: FakeTime) -> None:
        self.root, self.emu, self.fake = root, emu, fake
        self.notices: list[str] = []

    def run(self, text: str = WORKFLOW) -> RunSummary:
        path = self.root / "wf.yaml"
        path.write_text(textwrap.dedent(text))
        with Store(self.root / "cache") as store:
            inner = GeminiProvider(FAKE_KEY, base_url=self.emu.url, service="emulator")
            with Connection.of(patient(inner, self.fake)) as connection:
                return run_workflow(
                    load_workflow(path),
                    store,
                    RunOptions(),
                    connection=connection,
                    emit=self._listen,
                )

    def meta(self, key: str) -> dict:
        with Store(self.root / "cache") as store:
            return store.meta(key) or {}

    def _listen(self, event: Event) -> None:
        if isinstance(event, Notice):
            self.notices.append(event.message)


@pytest.fixture
def workflow(tmp_path: Path, emu: Emulator, fake: FakeTime) -> Runs:
    return Runs(tmp_path, emu, fake)


def test_a_step_that_was_retried_reports_every_request_it_sent(workflow: Runs) -> None:
    workflow.emu.faults.push("503")
    summary = workflow.run()
    [report] = summary.steps
    assert (report.status, report.api_calls, summary.api_calls) == ("run", 2, 2)
    assert workflow.meta(report.key)["attempts"] == 2
    assert workflow.notices == ["apple: 503 UNAVAILABLE; retry 1/3 in 0.01 s"]
    assert len(workflow.emu.api_calls()) == 2


def test_retries_timeout_and_rpm_are_not_in_the_key(workflow: Runs) -> None:
    workflow.run()
    changed = WORKFLOW.replace("retries: 3", "retries: 0").replace("timeout: 30", "timeout: 99")
    summary = workflow.run(changed.replace("rpm: 600", "rpm: 1"))
    assert [s.status for s in summary.steps] == ["cached"]
    assert len(workflow.emu.api_calls()) == 1


def test_a_step_with_no_retries_fails_at_once(workflow: Runs) -> None:
    workflow.emu.faults.push("503")
    summary = workflow.run(WORKFLOW + "    retries: 0\n")
    [report] = summary.steps
    assert report.status == "failed"
    assert report.error.startswith("503 UNAVAILABLE: The model is overloaded.")
    assert len(workflow.emu.api_calls()) == 1


def test_an_image_safety_refusal_fails_the_step_without_a_retry(workflow: Runs) -> None:
    workflow.emu.faults.push("image_safety")
    [report] = workflow.run().steps
    assert report.status == "failed"
    assert report.error.startswith("no image returned (IMAGE_SAFETY)")
    assert len(workflow.emu.api_calls()) == 1
    assert workflow.fake.sleeps == []


def test_a_step_timeout_bounds_each_of_its_requests(workflow: Runs) -> None:
    workflow.emu.faults.push("hang")
    started = time.monotonic()
    summary = workflow.run(WORKFLOW + "    timeout: 0.3\n")
    assert time.monotonic() - started < 3
    [report] = summary.steps
    assert (report.status, report.api_calls) == ("run", 2)
    assert workflow.notices == ["apple: no answer within 0.3 s; retry 1/3 in 1.0 s"]


def test_a_step_timeout_is_a_deadline_for_the_whole_answer(workflow: Runs) -> None:
    workflow.emu.faults.push("trickle")  # a byte every 0.05 s: each read is quick, the whole is not
    started = time.monotonic()
    summary = workflow.run(WORKFLOW + "    timeout: 1\n")
    assert time.monotonic() - started < 4
    [report] = summary.steps
    assert (report.status, report.api_calls) == ("run", 2)
    assert workflow.notices == ["apple: no answer within 1 s; retry 1/3 in 1.0 s"]
    assert_no_request_left_running()


def assert_no_request_left_running(within: float = 2.0) -> None:
    """The abandoned request's connection was cut, so no thread is still reading its answer."""
    deadline = time.monotonic() + within
    while any(t.name == "gemflow-request" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "an abandoned request is still being read"
        time.sleep(0.05)


def test_a_step_that_gave_up_reports_every_request_it_sent(workflow: Runs) -> None:
    workflow.emu.faults.push("503", count=4)
    summary = workflow.run()
    [report] = summary.steps
    assert report.status == "failed"
    assert report.error.endswith("(gave up after 4 attempts)")
    assert report.api_calls == 4


def test_retries_below_0_are_refused_when_loading(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW.replace("retries: 3", "retries: -1"))
    with pytest.raises(WorkflowError, match=r"'defaults\.retries' must be at least 0, not -1"):
        load_workflow(path)
