"""Why a step has the status it has: a code and its values, as data; words only when shown.

The engine decides with ``Reason`` values; ``--json`` carries them as data (``why``) beside the
words, and every reporter turns them into the same words with ``describe``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECIPE_CHANGED = "recipe changed (a newer gemflow makes this kind differently)"

_WORDS = {
    "up-to-date": "up to date",
    "up-to-date-from-lock": "up to date (taken from the lock file)",
    "forced": "forced",
    "new-step": "new step",
    "output-missing": "output missing",
    "attachments-changed": "attached files missing or changed",
    "output-differs": "output differs from the stored result",
    "not-in-cache": "output missing or changed, and not in the cache",
    "corrupt": "stored result was corrupt",
    "input-failed": "input step {step} failed",
    "input-will-run": "input step {step} will run",
    "input-unreadable": "input file unreadable",
    "output-unreadable": "output file unreadable",
    "fail-fast": "not started: {step} failed and --fail-fast is set",
    "made-meanwhile": "made meanwhile by another gemflow run",
    "rerolled": "re-rolled: take {take}",
    "refused-as-expected": "refused as expected ({refusal})",
    "in-batch": "in batch job {job}; a run collects it once the job has ended",
    "input-in-batch": "input step {step} is in a batch job",
    "disk-full": "not started: the disk is full",
    "output-taken": "its output file is not this step's to replace",
    "refused-before": "refused before; the answer is cached (--retry-refused asks again)",
}


@dataclass(frozen=True)
class Reason:
    """``code`` names the case; ``values`` are what the words need (a step id, what changed).

    ``changed`` and ``earlier-result`` carry ``changes``: a list of ``{"field", "old", "new"}``
    (``field`` is a parameter name, ``kind``, ``inputs``, or ``input`` with its ``ref``).
    """

    code: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return describe(self)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, **self.values}


def reason(code: str, **values: Any) -> Reason:
    return Reason(code, values)


def describe(why: Reason) -> str:
    """The reason in words, as every reporter shows it."""
    if why.code == "changed":
        return _changes(why.values["changes"])
    if why.code == "earlier-result":
        return f"earlier result for these inputs ({_changes(why.values['changes'])})"
    return _WORDS[why.code].format(**why.values)


def _changes(changes: list[dict[str, Any]]) -> str:
    return "; ".join(_change(change) for change in changes) or RECIPE_CHANGED


def _change(change: Mapping[str, Any]) -> str:
    name = change["field"]
    old, new = change.get("old"), change.get("new")
    if name == "input":
        return f"input {change['ref']} changed"
    if name == "inputs":
        return f"inputs changed from [{', '.join(map(str, old or []))}] to [{', '.join(new or [])}]"
    if name in ("prompt", "system"):
        return f"{name} changed"
    if name == "service":
        return f"service changed from {_service(old)} to {_service(new)}"
    if name == "kind":
        return f"kind changed from {old} to {new}"
    return f"{name} changed from {_show(old)} to {_show(new)}"


def _service(value: Any) -> str:
    return {None: "Google's API", "emulator": "the emulator"}.get(value, str(value))


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
