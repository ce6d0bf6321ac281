"""Where an output came from: the step that made it, from which prompt, model and inputs, when, and
at what cost.

The lock file is the record (it is committed with the outputs, so this works in a fresh clone with
no cache): the step's parameters as they went into its key, its inputs' digests, the output's
digest, the model version and the tokens, priced here by gemflow's model table. The lock keeps no
times; the cache, when there is one, says when a result was stored.
"""

from __future__ import annotations

import datetime
import difflib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemflow.cache.lockfile import LockEntry, LockFile, lock_files, workflow_for
from gemflow.errors import EXIT_USAGE, GemflowError
from gemflow.fileio import hash_file
from gemflow.workflow.instances import parse_selector

# Parameters shown on lines of their own, or not at all (what the key records about sending).
_OWN_LINES = ("prompt", "system", "model", "service", "sample", "reroll")


class NotRecorded(GemflowError):
    """No lock file records what was asked for."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Record:
    """One file (or one step's result) and the lock entry that made it."""

    workflow: Path  # the workflow file beside the lock (it may be gone)
    lock: LockFile
    step: str  # the instance name
    entry: LockEntry
    attachment: str | None = None  # the file is this attachment of the step's output

    @property
    def root(self) -> Path:
        return self.lock.path.parent

    @property
    def file(self) -> str:
        """The file, relative to the workflow's folder."""
        if self.attachment is None:
            return self.entry.output
        return _posix(os.path.join(os.path.dirname(self.entry.output), self.attachment))

    @property
    def expected(self) -> str:
        """The digest the lock records for the file."""
        if self.attachment is None:
            return self.entry.digest
        return self.entry.attachments[self.attachment]

    def on_disk(self) -> str:
        """``matches``, ``differs`` (edited, or re-made and not yet locked) or ``missing``."""
        path = self.root / self.file
        if not path.is_file():
            return "missing"
        return "matches" if hash_file(path) == self.expected else "differs"


def lock_of(workflow: Path) -> LockFile:
    """The lock file of ``workflow`` (its emulator runs' when that is the only one);
    ``NotRecorded`` when there is none."""
    path, emulated = lock_files(workflow)
    lock = LockFile.load(emulated if not path.is_file() and emulated.is_file() else path)
    if lock.problem:
        raise NotRecorded(lock.problem)
    if lock.signature is None:
        raise NotRecorded(
            f"{lock.path.name} does not exist: nothing of {workflow.name} has been made yet"
        )
    return lock


DEFAULT_WORKFLOW = "gemflow.yaml"


def find(text: str, workflow: Path | None = None) -> list[Record]:
    """The records ``text`` names: a file (made by ``workflow``, else by a workflow whose lock
    file is in the file's folder or above), or a step of ``workflow`` (default: gemflow.yaml)."""
    if os.path.lexists(text) or not _names_a_step(text):
        return by_path(Path(text), workflow)
    if workflow is None:
        workflow = Path(DEFAULT_WORKFLOW)
        if not workflow.is_file():
            raise NotRecorded(
                f"no file '{text}', and no {DEFAULT_WORKFLOW} here to look up a step: "
                "name the workflow with --workflow"
            )
    return by_step(text, workflow)


def _names_a_step(text: str) -> bool:
    from gemflow.workflow.load import STEP_ID

    return bool(STEP_ID.match(text)) or parse_selector(text) is not None


def by_path(path: Path, workflow: Path | None = None) -> list[Record]:
    """The records of the file at ``path`` (it may be gone): from ``workflow``'s lock, else from
    the nearest folder, from the file's own upwards, whose lock files list it."""
    target = Path(os.path.abspath(path))
    candidates = [lock_of(workflow)] if workflow is not None else _locks_above(target.parent)
    locks: list[LockFile] = []
    uses: list[str] = []
    for lock in candidates:
        locks.append(lock)
        found = list(_matches(lock, target))
        if found:
            return found
        uses += [
            f"{lock.path.with_suffix('').name}: {name}"
            for name, entry in lock.entries.items()
            if any(_same(lock.path.parent / i.get("ref", ""), target) for i in entry.inputs)
        ]
    where = ", ".join(_shown(lock.path) for lock in locks) or "none in its folder or above"
    hint = f"; it is an input of {', '.join(uses)}" if uses else ""
    raise NotRecorded(
        f"{_shown(target)}: no lock file lists it as an output (looked at: {where}){hint}"
    )


def by_step(text: str, workflow: Path) -> list[Record]:
    """The records of step ``text`` of ``workflow``: an instance, a step id (each of its
    instances) or ``step[key=value,...]``."""
    lock = lock_of(workflow)
    names = select(text, list(lock.entries))
    if not names:
        groups = sorted({name.partition("[")[0] for name in lock.entries})
        match = difflib.get_close_matches(text, groups, n=1, cutoff=0.6)
        hint = f" (did you mean '{match[0]}'?)" if match else ""
        raise NotRecorded(
            f"no step '{text}' in {_shown(lock.path)}{hint}: a step that has not been made "
            "has no record"
        )
    return [Record(workflow, lock, name, lock.entries[name]) for name in names]


def select(text: str, names: list[str]) -> list[str]:
    """The instance names ``text`` selects among ``names`` (see ``gemflow.workflow.instances``)."""
    if text in names:
        return [text]
    group = [name for name in names if name.partition("[")[0] == text]
    if group:
        return sorted(group, key=names.index)
    wanted = parse_selector(text)
    if wanted is None:
        return []
    step, values = wanted
    chosen = []
    for name in names:
        parsed = parse_selector(name)
        if parsed and parsed[0] == step and values.items() <= parsed[1].items():
            chosen.append(name)
    return chosen


def explain(record: Record, stored: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What to tell about ``record``, as (label, text) lines; ``stored`` is the cache's metadata of
    the step's result, when a cache holds it."""
    entry, params = record.entry, record.entry.params
    lines: list[tuple[str, str]] = []
    if record.attachment is not None:
        lines.append(("attached", f"to {entry.output}, the step's output"))
    lines.append(("step", f"{record.step} ({entry.kind}) in {record.workflow.name}"))
    for name in ("prompt", "system"):
        if params.get(name):
            lines.append((name, str(params[name])))
    if params.get("model"):
        answered = entry.model_version
        said = f" (answered as {answered})" if answered and answered != params["model"] else ""
        lines.append(("model", params["model"] + said))
    settings = [f"{k} {_text(v)}" for k, v in sorted(params.items()) if k not in _OWN_LINES]
    if settings:
        lines.append(("settings", ", ".join(settings)))
    for n, item in enumerate(entry.inputs):
        lines.append(("inputs" if n == 0 else "", _input(record, item)))
    if entry.refused:
        lines.append(("result", f"refused, as the step expects ({entry.refused}): no output"))
    if stored and stored.get("summary"):
        lines.append(("result", _text(stored["summary"])))
    if entry.tokens:
        lines.append(("tokens", _tokens(entry.tokens)))
    lines.append(("cost", cost(entry)))
    lines.append(("when", _when(record, stored)))
    if not entry.refused:
        state = record.on_disk()
        words = {
            "matches": "on disk, as the lock records it",
            "differs": "on disk, but not as the lock records it (edited, or made again "
            "and not yet locked)",
            "missing": "not on disk (gemflow run restores it)",
        }[state]
        lines.append(("file", f"{words}; {_short(record.expected)}"))
    lines.append(("key", entry.key))
    if len(entry.takes) > 1:
        number = next((n for n, t in enumerate(entry.takes, 1) if t.get("key") == entry.key), None)
        lines.append(
            (
                "takes",
                f"{len(entry.takes)} kept; this is take {number} (gemflow history "
                f"{record.workflow.name} '{record.step}')",
            )
        )
    return lines


def to_json(record: Record, stored: dict[str, Any] | None) -> dict[str, Any]:
    entry = record.entry
    return {
        "file": record.file,
        "attachment": record.attachment,
        "workflow": str(record.workflow),
        "step": record.step,
        **entry.to_json(),
        "on_disk": None if entry.refused else record.on_disk(),
        "usd": usd(entry),
        "stored_at": (stored or {}).get("stored_at"),
    }


def usd(entry: LockEntry) -> float | None:
    """What the request that made ``entry`` costs on Google's API by gemflow's price table; None
    when it cannot be priced (an unknown model, a probe's mix of image and reader calls)."""
    from gemflow.kinds import KINDS
    from gemflow.models import model_info, spent
    from gemflow.providers.base import ApiRequest

    kind = KINDS.get(entry.kind)
    if kind is not None and not kind.uses_api:
        return 0.0
    model = entry.params.get("model")
    if entry.kind not in ("generate", "edit") or not model or model_info(model) is None:
        return None
    request = ApiRequest(model=model, prompt="", image_size=entry.params.get("image_size"))
    return spent(request, entry.tokens)


def cost(entry: LockEntry) -> str:
    price = usd(entry)
    if price == 0.0 and not entry.tokens:
        return "nothing: no API call"
    if price is None:
        why = (
            "a probe's tokens mix image and reader calls"
            if entry.kind == "probe"
            else f"gemflow's price table does not know {entry.params.get('model')}"
        )
        return f"not priced ({why})"
    service = entry.params.get("service")
    amount = f"${price:.3f} by gemflow's price table"
    if service is None:
        return f"{amount} (Google's API)"
    if str(service).startswith("emulator"):
        return f"nothing billed: made on the emulator (Google's API: ~{amount})"
    return f"{amount}, had {service} been Google's API"


def _when(record: Record, stored: dict[str, Any] | None) -> str:
    at = (stored or {}).get("stored_at")
    if at and (stored or {}).get("adopted"):
        return f"taken into the cache {at} from the file on disk; the lock file keeps no times"
    if at:
        return f"stored in the cache {at}"
    path = record.root / record.file
    if path.is_file():
        mtime = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
        written = mtime.isoformat(timespec="seconds")
        return f"not recorded (the lock file keeps no times); the file was last written {written}"
    return "not recorded (the lock file keeps no times, and no cache holds the result)"


def _input(record: Record, item: dict[str, str]) -> str:
    ref, recorded = item.get("ref", ""), item.get("digest", "")
    source = record.lock.entries.get(ref)
    if source is not None:
        now = "" if source.digest == recorded else f"; {ref} has been made again since"
        return f"{ref}: {source.output} ({_short(recorded)}{now})"
    path = record.root / ref
    if not path.is_file():
        state = "; gone now"
    elif hash_file(path) != recorded:
        state = "; changed since"
    else:
        state = ""
    return f"{ref} ({_short(recorded)}{state})"


def _matches(lock: LockFile, target: Path) -> Iterator[Record]:
    root = lock.path.parent
    workflow = workflow_for(lock.path)
    for name, entry in lock.entries.items():
        if entry.refused:
            continue
        output = root / entry.output
        if _same(output, target):
            yield Record(workflow, lock, name, entry)
        for attachment in entry.attachments:
            if _same(output.parent / attachment, target):
                yield Record(workflow, lock, name, entry, attachment)


def _locks_above(folder: Path) -> Iterator[LockFile]:
    """Readable lock files in ``folder`` and each folder above it, nearest first."""
    for candidate in (folder, *folder.parents):
        try:
            paths = sorted(candidate.glob("*.lock"))
        except OSError:
            continue
        for path in paths:
            lock = LockFile.load(path)
            if lock.problem is None and lock.entries:  # another tool's .lock file is skipped
                yield lock


def _same(a: Path, b: Path) -> bool:
    first, second = os.path.normpath(a), os.path.normpath(b)
    return first == second or os.path.realpath(first) == os.path.realpath(second)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _posix(path: str) -> str:
    return Path(path).as_posix()


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "none"


def _tokens(tokens: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {name}" for name, count in tokens.items() if name != "total")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
