"""Is a step up to date? A status with a reason (as data), decided from the store, the lock file
and the disk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemflow.cache.lockfile import LockEntry
from gemflow.cache.store import ResultStore
from gemflow.engine.events import Status
from gemflow.engine.reasons import Reason, reason
from gemflow.fileio import DigestMemo
from gemflow.workflow import Step


@dataclass(frozen=True)
class Decision:
    status: Status
    reason: Reason
    digest: str | None = None  # the output's digest, when a stored or adopted result decides it
    adopt: bool = False  # the output on disk matches the lock file: take it into the store
    meta: dict[str, Any] | None = None  # the stored result's metadata, when there is one


def recorded_params(material: dict[str, Any]) -> dict[str, Any]:
    """What the lock file records of a key's material, to explain later what changed."""
    params = {**material["params"], "format": material["format"]}
    for name in ("service", "sample", "reroll"):
        if name in material:
            params[name] = material[name]
    return params


def decide(
    step: Step,
    key: str,
    material: dict[str, Any],
    *,
    store: ResultStore,
    lock_entry: LockEntry | None,
    memo: DigestMemo,
    forced: bool,
) -> Decision:
    if forced:
        return Decision(Status.RUN, reason("forced"))
    meta = store.meta(key)
    if meta is not None:
        on_disk = memo.digest(step.output)
        if on_disk == meta["digest"] and _attachments_match(step, meta.get("attachments"), memo):
            return Decision(Status.CACHED, reason("up-to-date"), meta["digest"], meta=meta)
        if lock_entry is not None and lock_entry.key != key:
            why = reason("earlier-result", changes=changes(step, material, lock_entry))
        elif on_disk is None:
            why = reason("output-missing")
        elif on_disk == meta["digest"]:
            why = reason("attachments-changed")
        else:
            why = reason("output-differs")
        return Decision(Status.RESTORE, why, meta["digest"], meta=meta)
    if lock_entry is not None and lock_entry.key == key:
        if memo.digest(step.output) == lock_entry.digest and _attachments_match(
            step, lock_entry.attachments, memo
        ):
            return Decision(
                Status.CACHED, reason("up-to-date-from-lock"), lock_entry.digest, adopt=True
            )
        return Decision(Status.RUN, reason("not-in-cache"))
    return Decision(Status.RUN, explain(step, material, lock_entry))


def _attachments_match(step: Step, expected: dict[str, str] | None, memo: DigestMemo) -> bool:
    folder = step.output.parent
    return all(memo.digest(folder / name) == value for name, value in (expected or {}).items())


def explain(step: Step, material: dict[str, Any], entry: LockEntry | None) -> Reason:
    """Why the key differs from the one the lock file recorded: what changed."""
    if entry is None:
        return reason("new-step")
    return reason("changed", changes=changes(step, material, entry))


def changes(step: Step, material: dict[str, Any], entry: LockEntry) -> list[dict[str, Any]]:
    """What differs between the lock file's entry and ``material``, field by field."""
    found: list[dict[str, Any]] = []
    if entry.kind != step.kind.name:
        found.append({"field": "kind", "old": entry.kind, "new": step.kind.name})
    old, new = entry.params, recorded_params(material)
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            found.append({"field": name, "old": old.get(name), "new": new.get(name)})
    old_refs = [item.get("ref") for item in entry.inputs]
    new_refs = [ref.text for ref in step.refs]
    if old_refs != new_refs:
        found.append({"field": "inputs", "old": old_refs, "new": new_refs})
    else:
        for item, now in zip(entry.inputs, material["inputs"], strict=True):
            if item.get("digest") != now:
                found.append({"field": "input", "ref": item["ref"]})
    return found
