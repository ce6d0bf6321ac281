"""How batch jobs go, slowly or wrong: their timings, job faults and per-item faults.

Timings (seconds; real jobs take minutes to 24 h and expire after 48 h)::

    pending_seconds   a new job stays PENDING this long (default 0)
    running_seconds   then RUNNING at least this long, and until its items are answered (0.2)
    expire_seconds    a job not finished this long after its creation EXPIRES (48 h, as the
                      real service); only stuck jobs, or long ones, get there

A job gets at most one job fault, from the FIFO queue (:meth:`BatchFaults.push_job`), else from the
random ``job_rates`` (one draw per created job, from ``random.Random(seed)``)::

    fail            RUNNING, then FAILED with an error where it would have succeeded; no output
    expire          RUNNING, then EXPIRED where it would have succeeded; no output
    stuck_pending   PENDING until cancelled, deleted or expired (``expire_seconds``)
    stuck_running   RUNNING until cancelled, deleted or expired

Each item of a job that runs gets at most one item fault: a ``[[emulator:NAME]]`` marker in its
prompt first (the interactive markers: ``image_safety`` and the other content faults answer with a
refusal; ``429``, ``500`` and ``503`` become item errors 8, 13 and 14; ``hang`` is ignored), else
``item_at`` (item index within its job, from 0, for every job), else the random ``item_rates``
(one draw per item, from a generator seeded with ``seed`` and the job's number, so a job's items
meet the same faults whatever other jobs run beside it)::

    3 4 8 13 14     the item gets an ``error`` (a google.rpc.Status) with that code instead of a
                    response: INVALID_ARGUMENT (not worth retrying), DEADLINE_EXCEEDED,
                    RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE (retryable)
    missing         the item is answered, but its line is left out of the output file (an inline
                    job's response loses its ``metadata``): the requested key is missing

``error_details`` gives every item error a ``details`` list of objects, as google.rpc.Status allows;
google-genai types them as strings, so ``batches.get()`` of an inline job then fails to parse.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gemflow.emulator.wire import error_detail

JOB_FAULTS = ("fail", "expire", "stuck_pending", "stuck_running")
ITEM_ERRORS: dict[str, tuple[str, str]] = {
    "3": ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    "4": ("DEADLINE_EXCEEDED", "Deadline expired before the request could complete."),
    "8": ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "13": ("INTERNAL", "An internal error has occurred."),
    "14": ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}
ITEM_FAULTS: tuple[str, ...] = (*ITEM_ERRORS, "missing")
EXPIRE_SECONDS = 48 * 3600.0
_SUFFIX = " (emulated fault)"


@dataclass
class BatchFaults:
    """Batch timings and faults; deterministic for a given ``seed`` and order of job creation."""

    pending_seconds: float = 0.0
    running_seconds: float = 0.2
    expire_seconds: float = EXPIRE_SECONDS
    job_rates: dict[str, float] = field(default_factory=dict)
    item_rates: dict[str, float] = field(default_factory=dict)
    item_at: dict[int, str] = field(default_factory=dict)
    error_details: bool = False
    seed: int = 0
    _queue: deque[str] = field(default_factory=deque, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if min(self.pending_seconds, self.running_seconds, self.expire_seconds) < 0:
            raise ValueError("batch timings must not be negative")
        _check_rates(self.job_rates, JOB_FAULTS, "job")
        _check_rates(self.item_rates, ITEM_FAULTS, "item")
        for index, fault in self.item_at.items():
            _check_name(fault, ITEM_FAULTS, "item")
            if index < 0:
                raise ValueError(f"item index must not be negative, got {index}")
        self._rng = random.Random(self.seed)

    def push_job(self, fault: str, count: int = 1) -> None:
        """Make the next ``count`` created jobs go wrong with ``fault`` (after any queued ones)."""
        _check_name(fault, JOB_FAULTS, "job")
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        with self._lock:
            self._queue.extend([fault] * count)

    @staticmethod
    def parse_jobs(spec: str) -> dict[str, float]:
        """``"fail=0.1,expire=0.05"`` as job rates. Raises ValueError on anything else."""
        return _parse(spec, JOB_FAULTS, "job")

    @staticmethod
    def parse_items(spec: str) -> dict[str, float]:
        """``"14=0.1,3=0.01,missing=0.02"`` as item rates. Raises ValueError on anything else."""
        return _parse(spec, ITEM_FAULTS, "item")

    def job_fault(self) -> str | None:
        """The fault of one new job, or None: the queue first, then one draw of the rates."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if not self.job_rates:
                return None
            return _pick(self.job_rates, self._rng.random())

    def items(self, job_number: int) -> ItemFaults:
        """The item faults of the job created ``job_number``-th (from 1) by this emulator."""
        return ItemFaults(self, random.Random(f"{self.seed}:{job_number}"))

    def item_error(self, code: str) -> dict[str, Any]:
        """The google.rpc.Status an item gets for the fault named by its code."""
        status_name, message = ITEM_ERRORS[code]
        error: dict[str, Any] = {"code": int(code), "message": message + _SUFFIX}
        if self.error_details:
            error["details"] = [
                error_detail(
                    "ErrorInfo",
                    reason=status_name,
                    domain="generativelanguage.googleapis.com",
                    metadata={"emulated": "true"},
                )
            ]
        return error


class ItemFaults:
    """The per-item faults of one job, drawn in item order."""

    def __init__(self, faults: BatchFaults, rng: random.Random) -> None:
        self._faults = faults
        self._rng = rng

    def choose(self, index: int) -> str | None:
        """The fault of the item at ``index`` (markers in its prompt are the caller's business).

        With rates, every item takes one draw, so the n-th item's fault never depends on which
        items before it had a fixed one.
        """
        drawn = (
            _pick(self._faults.item_rates, self._rng.random()) if self._faults.item_rates else None
        )
        return self._faults.item_at.get(index, drawn)


def _pick(rates: dict[str, float], draw: float) -> str | None:
    threshold = 0.0
    for name, rate in rates.items():
        threshold += rate
        if draw < threshold:
            return name
    return None


def _check_name(name: str, known: tuple[str, ...], kind: str) -> None:
    if name not in known:
        raise ValueError(f"unknown {kind} fault {name!r}; known {kind} faults: {', '.join(known)}")


def _check_rates(rates: dict[str, float], known: tuple[str, ...], kind: str) -> None:
    for name, rate in rates.items():
        _check_name(name, known, kind)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate for {name!r} must be between 0 and 1, got {rate}")
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"{kind} fault rates add up to more than 1: {sum(rates.values()):g}")


def _parse(spec: str, known: tuple[str, ...], kind: str) -> dict[str, float]:
    rates: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep:
            raise ValueError(f"expected NAME=PROBABILITY, got {item!r}")
        _check_name(name, known, kind)
        if name in rates:
            raise ValueError(f"{kind} fault {name!r} given twice")
        try:
            rates[name] = float(value)
        except ValueError:
            raise ValueError(f"not a probability for {name!r}: {value!r}") from None
    _check_rates(rates, known, kind)
    return rates
