"""Refusals are answers: a step the model refused is not asked again on the next run (unless
``--retry-refused``), and a step written with ``expect: refusal`` succeeds when refused.

A refusal is stored beside the step's key as ``refusal/<key>`` (no bytes; its reason, the model's
text and the tokens it cost), and an expected one is also recorded in the lock file, so a fresh
clone knows it without asking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemflow.cache.lockfile import LockEntry
from gemflow.cache.store import ResultStore
from gemflow.errors import NoImageError
from gemflow.workflow import Step

PREFIX = "refusal/"


@dataclass(frozen=True)
class Refusal:
    reason: str  # IMAGE_SAFETY, "text only", ...
    text: str = ""  # what the model said instead

    def message(self) -> str:
        return str(NoImageError(self.reason, self.text))


def expects_refusal(step: Step) -> bool:
    return step.params.get("expect") == "refusal"


def remember(store: ResultStore, key: str, error: NoImageError, meta: dict[str, Any]) -> Refusal:
    refusal = Refusal(error.reason, error.text)
    store.put(
        PREFIX + key, b"", {**meta, "refusal": {"reason": refusal.reason, "text": refusal.text}}
    )
    return refusal


def recall(store: ResultStore, key: str, entry: LockEntry | None) -> Refusal | None:
    """The refusal already answered for ``key``: from the store, else from the lock file."""
    meta = store.meta(PREFIX + key)
    if meta is not None and isinstance(meta.get("refusal"), dict):
        return Refusal(str(meta["refusal"].get("reason")), str(meta["refusal"].get("text") or ""))
    if entry is not None and entry.key == key and entry.refused:
        return Refusal(entry.refused)
    return None
