"""Retries and a per-model rate limit around any provider, for long runs on a busy, paid API.

google-genai retries nothing by default, and its optional retries ignore the server's RetryInfo
and ``Retry-After``. :class:`ResilientProvider` wraps any :class:`~gemflow.providers.base.Provider`:

- **Retries.** A retryable :class:`~gemflow.errors.ApiError` (429, 408, 500, 502, 503, 504, a
  timeout, a failed connection: ``ApiError.retryable``) is retried up to ``retries`` times. When
  the server says how long to wait (``ApiError.retry_delay``: RetryInfo, else Retry-After), the
  wait is that, stretched at random by up to ``SERVER_JITTER`` so a burst of failures does not come
  back in lockstep; otherwise retry *n* waits a full-jitter exponential backoff, uniform in
  ``[0, min(MAX_WAIT, BASE_DELAY * 2**(n-1))]``.
  No single wait is longer than ``MAX_WAIT``, so a bogus header cannot hang a run: a server asking
  for longer is not retried early but not at all, and the error says what it asked. Anything else
  (400, 401, 403, 404) fails at once with the API's message. An answer without an image is an
  answer, not an error: a safety refusal is never retried.
- **Rate limit.** With ``rpm`` set, requests to one model are spaced at least ``60 / rpm`` seconds
  apart, across every thread of the process (:data:`SHARED_LIMITER`; separate processes do not
  share it), so a wide fan-out does not turn into a burst of 429s. Retries take their turn like any
  request. Slots are spaced evenly rather than granted in bursts: gentler on per-second limits.
- **Never silent.** Each retry, and each rate-limit wait longer than ``NOTIFY_AFTER``, is told to
  the caller's ``notify`` ("503 UNAVAILABLE; retry 2/5 in 3.0 s").
- **Counted.** :meth:`ResilientProvider.send` returns the number of requests sent with the answer;
  an error raised after several carries it too (:func:`attempts_of`), so reports count every
  request sent.

Precedence: the ``retries``/``rpm`` given to the constructor (the command line's ``--retries`` and
``--rpm``) win over those given per call (a step's, or the workflow's ``defaults``), which win over
the defaults here. Sleeping, randomness and the clock are injectable, so tests never wait.
"""

from __future__ import annotations

import random as _random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from gemflow.errors import ApiError
from gemflow.providers.base import ApiRequest, ApiResponse, Provider

__all__ = [
    "BASE_DELAY",
    "DEFAULT_RETRIES",
    "MAX_WAIT",
    "NOTIFY_AFTER",
    "SERVER_JITTER",
    "SHARED_LIMITER",
    "GaveUpError",
    "RateLimiter",
    "ResilientProvider",
    "RetryPolicy",
    "Sent",
    "attempts_of",
    "resilient",
    "with_attempts",
]

DEFAULT_RETRIES = 5  # retries after the first attempt: at most 6 requests for one call
BASE_DELAY = 2.0  # seconds: the backoff ceiling of the first retry, doubled for each next one
SERVER_JITTER = 0.5  # a wait the server asked for is stretched by up to this share, at random
MAX_WAIT = 60.0  # seconds: no single wait is longer, whatever the server or the backoff says
NOTIFY_AFTER = 1.0  # seconds: a rate-limit wait longer than this is shown to the user

Notify = Callable[[str], None]
Sleep = Callable[[float], None]
E = TypeVar("E", bound=BaseException)


def _silent(message: str) -> None:
    """The default ``notify``: a caller that passes none has no one to tell."""


# -- counting requests across an error ------------------------------------------------------------


def with_attempts(error: E, attempts: int) -> E:
    """Mark ``error`` as raised after ``attempts`` requests were sent; returns it, to raise."""
    error.attempts = attempts  # type: ignore[attr-defined]
    return error


def attempts_of(error: BaseException) -> int:
    """How many requests were sent before ``error`` (1 unless the error says otherwise)."""
    return int(getattr(error, "attempts", 1))


class GaveUpError(ApiError):
    """A retryable error that is not retried (again): the last error, why, and how many tries."""

    def __init__(self, last: ApiError, attempts: int, why: str) -> None:
        # The last error's text already starts with its code and status: keep it as it is.
        super().__init__(f"{last} ({why})")
        self.code, self.status, self.retry_delay = last.code, last.status, last.retry_delay
        self._retryable = last.retryable
        self.last = last
        self.attempts = attempts


# -- the policy -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait: what the server asked, else a backoff."""

    retries: int = DEFAULT_RETRIES
    base_delay: float = BASE_DELAY
    max_wait: float = MAX_WAIT

    def backoff(self, retry: int, draw: float) -> float:
        """Full jitter: ``draw`` (uniform in [0, 1)) times the capped exponential ceiling.

        Full jitter spreads the retries of many steps that failed together (one 503 burst hits a
        whole fan-out) instead of sending them back in lockstep.
        """
        ceiling = min(self.max_wait, self.base_delay * 2 ** (retry - 1))
        return draw * ceiling

    def delay(self, error: ApiError, attempt: int, draw: float) -> float:
        """Seconds to wait after ``attempt`` failed with ``error``; raises when not to retry."""
        if not error.retryable or self.retries == 0:
            raise with_attempts(error, attempt)
        if attempt > self.retries:
            raise GaveUpError(error, attempt, f"gave up after {attempt} attempts")
        asked = error.retry_delay or 0.0
        if asked > self.max_wait:
            why = (
                f"not retried: the server asked for {asked:g} s, over the {self.max_wait:g} s limit"
            )
            if attempt > 1:
                why += f"; {attempt} attempts"
            raise GaveUpError(error, attempt, why)
        if asked:  # the server knows its load best: wait what it asked, plus a little jitter
            return min(self.max_wait, asked * (1 + SERVER_JITTER * draw))
        return self.backoff(attempt, draw)


# -- the rate limiter -----------------------------------------------------------------------------


class RateLimiter:
    """Spaces the requests to each model at least ``60 / rpm`` seconds apart; thread-safe.

    Each request reserves the next free slot for its model under a lock, then sleeps outside it,
    so concurrent steps queue in order without holding the lock while they wait. A slot, once
    reserved, counts even if its request fails: the server counted it too.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}  # model -> the earliest time its next request may go

    def reserve(self, model: str, rpm: float) -> float:
        """Claim the next slot for ``model``; returns the seconds until it comes.

        The gap after a request is its own ``60 / rpm``: should steps set different rates for one
        model, each keeps the promise it made, and no request ever jumps the queue.
        """
        with self._lock:
            now = self._clock()
            slot = max(now, self._next.get(model, now))
            self._next[model] = slot + 60.0 / rpm
        return slot - now

    def acquire(self, model: str, rpm: float | None, notify: Notify = _silent) -> float:
        """Wait for a slot (no wait when ``rpm`` is None); returns the seconds waited."""
        if not rpm:
            return 0.0
        wait = self.reserve(model, rpm)
        if wait > NOTIFY_AFTER:
            notify(f"rate limit: waiting {wait:.1f} s for {model}")
        if wait > 0:
            self._sleep(wait)
        return wait


SHARED_LIMITER = RateLimiter()  # one per process: every step, every thread, every run in it


# -- the provider ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """An answer and the number of requests it took (1 + retries)."""

    response: ApiResponse
    attempts: int


class ResilientProvider:
    """A provider that retries what is worth retrying and keeps to a rate limit per model.

    ``retries`` and ``rpm`` override whatever each call asks for (they are the command line's);
    ``policy`` holds the defaults and the backoff. ``sleep`` and ``random`` (uniform in [0, 1))
    are for tests; ``limiter`` defaults to the one the whole process shares.
    """

    def __init__(
        self,
        inner: Provider,
        *,
        retries: int | None = None,
        rpm: float | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.inner = inner
        self.retries = retries
        self.rpm = rpm
        self.policy = policy or RetryPolicy()
        self.limiter = limiter or SHARED_LIMITER
        self._sleep = sleep
        self._random = random

    @property
    def service(self) -> str | None:
        return self.inner.service

    def generate(self, request: ApiRequest, *, timeout: float | None = None) -> ApiResponse:
        """The ``Provider`` interface: this provider's settings, and no one told of waits (a step
        calls :meth:`send` instead, with its own settings and ``notify``)."""
        return self.send(request, timeout=timeout).response

    def close(self) -> None:
        self.inner.close()

    def send(
        self,
        request: ApiRequest,
        *,
        retries: int | None = None,
        rpm: float | None = None,
        timeout: float | None = None,
        notify: Notify = _silent,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Sent:
        """Send ``request`` until it is answered or not worth retrying.

        ``retries`` and ``rpm`` are the caller's (a step's) settings, used unless this provider
        overrides them; ``timeout`` bounds each attempt; once ``cancelled()`` is true nothing is
        retried. Raises the last ``ApiError``, marked with the attempts made.
        """
        policy = self._policy(retries)
        rpm = self.rpm if self.rpm is not None else rpm
        attempt = 0
        while True:
            attempt += 1
            self.limiter.acquire(request.model, rpm, notify)
            try:
                return Sent(self.inner.generate(request, timeout=timeout), attempt)
            except ApiError as error:
                if cancelled():  # the run was abandoned: no retry of what nobody waits for
                    raise with_attempts(error, attempt) from None
                wait = policy.delay(error, attempt, self._random())
                notify(f"{_label(error)}; retry {attempt}/{policy.retries} in {_seconds(wait)}")
                self._sleep(wait)

    def _policy(self, retries: int | None) -> RetryPolicy:
        chosen = self.retries if self.retries is not None else retries
        return self.policy if chosen is None else replace(self.policy, retries=chosen)


def resilient(provider: Provider) -> ResilientProvider:
    """``provider`` if it already retries, else ``provider`` wrapped with the defaults."""
    if isinstance(provider, ResilientProvider):
        return provider
    return ResilientProvider(provider)


def _seconds(wait: float) -> str:
    return f"{wait:.1f} s" if wait >= 1 else f"{wait:.2f} s"


def _label(error: ApiError) -> str:
    """A short name for what went wrong: "503 UNAVAILABLE", or the message of a transport error."""
    if error.code is not None:
        return " ".join(str(part) for part in (error.code, error.status) if part)
    text = str(error)
    return text if len(text) <= 100 else text[:99] + "…"
