"""Is a step up to date? A status with a reason, decided from the store, the lock file and the disk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemflow.cache.local import Store
from gemflow.cache.lockfile import LockEntry
from gemflow.engine.events import Status
from gemflow.fileio import DigestMemo
from gemflow.workflow import Step


@dataclass(frozen=True)
class Decision:
    status: Status
    reason: str
    digest: str | None = None  # the output's digest, when a stored or adopted result decides it
    adopt: bool = False  # the output on disk matches the lock file: take it into the store
    meta: dict[str, Any] | None = None  # the stored result's metadata, when there is one


def recorded_params(material: dict[str, Any]) -> dict[str, Any]:
    """What the lock file records of a key's material, to explain later what changed."""
    params = {**material["params"], "format": material["format"]}
    if "service" in material:
        params["service"] = material["service"]
    return params


def decide(
    step: Step,
    key: str,
    material: dict[str, Any],
    *,
    store: Store,
    lock_entry: LockEntry | None,
    memo: DigestMemo,
    forced: bool,
) -> Decision:
    if forced:
        return Decision(Status.RUN, "forced")
    meta = store.meta(key)
    if meta is not None:
        on_disk = memo.digest(step.output)
        if on_disk == meta["digest"] and _attachments_match(step, meta.get("attachments"), memo):
            return Decision(Status.CACHED, "up to date", meta["digest"], meta=meta)
        if lock_entry is not None and lock_entry.key != key:
            reason = "earlier result for these inputs (" + explain(step, material, lock_entry) + ")"
        elif on_disk is None:
            reason = "output missing"
        elif on_disk == meta["digest"]:
            reason = "attached files missing or changed"
        else:
            reason = "output differs from the stored result"
        return Decision(Status.RESTORE, reason, meta["digest"], meta=meta)
    if lock_entry is not None and lock_entry.key == key:
        if memo.digest(step.output) == lock_entry.digest and _attachments_match(
            step, lock_entry.attachments, memo
        ):
            return Decision(
                Status.CACHED,
                "up to date (taken from the lock file)",
                lock_entry.digest,
                adopt=True,
            )
        return Decision(Status.RUN, "output missing or changed, and not in the cache")
    return Decision(Status.RUN, explain(step, material, lock_entry))


def _attachments_match(step: Step, expected: dict[str, str] | None, memo: DigestMemo) -> bool:
    folder = step.output.parent
    return all(memo.digest(folder / name) == value for name, value in (expected or {}).items())


def explain(step: Step, material: dict[str, Any], entry: LockEntry | None) -> str:
    """Why the key differs from the one the lock file recorded: what changed, in words."""
    if entry is None:
        return "new step"
    reasons = []
    if entry.kind != step.kind.name:
        reasons.append(f"kind changed from {entry.kind} to {step.kind.name}")
    old, new = entry.params, recorded_params(material)
    for name in sorted(set(old) | set(new)):
        if old.get(name) == new.get(name):
            continue
        if name in ("prompt", "system"):
            reasons.append(f"{name} changed")
        elif name == "service":
            reasons.append(
                f"service changed from {_service(old.get(name))} to {_service(new.get(name))}"
            )
        else:
            reasons.append(f"{name} changed from {_show(old.get(name))} to {_show(new.get(name))}")
    old_refs = [item.get("ref") for item in entry.inputs]
    new_refs = [ref.text for ref in step.refs]
    if old_refs != new_refs:
        reasons.append(
            f"inputs changed from [{', '.join(map(str, old_refs))}] to [{', '.join(new_refs)}]"
        )
    else:
        for item, now in zip(entry.inputs, material["inputs"], strict=True):
            if item.get("digest") != now:
                reasons.append(f"input {item['ref']} changed")
    return "; ".join(reasons) or "recipe changed (a newer gemflow makes this kind differently)"


def _service(value: Any) -> str:
    return {None: "Google's API", "emulator": "the emulator"}.get(value, str(value))


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
