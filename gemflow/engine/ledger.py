"""The batch ledger: never submit a batch job twice.

A job's display name is made from the keys it answers, so a run that starts again with the same
requests pending finds the same name. The record is written *before* the job is created and gets
the job's name right after; a run that finds a record resumes that job, or adopts it from the
service's list by display name if the run that created it died before learning its name. Runs
(and rounds of one run) place requests one at a time (``Ledger.placing``), so two of them never
both find a request unheld and both submit it; a run about to send a step itself waits only
while another decides and records its jobs (``Ledger.recording``), not while it uploads them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gemflow.engine.events import BatchJobReport
from gemflow.fileio import held, write_atomic

PREFIX = "gemflow-"
PLACING = ".placing"  # the file whose lock is held while requests are placed
RECORDING = ".recording"  # and while they are decided and recorded (uploads come after)


@dataclass
class Record:
    display_name: str
    model: str
    keys: list[str]
    job: str | None = None  # batches/..., once created
    state: str = "RECORDED"  # JOB_STATE_... once known
    created: float = field(default_factory=time.time)
    steps: dict[str, str] = field(default_factory=dict)  # step key -> step id, of its requests
    service: str | None = None  # where it was sent (``service_name``); None: not recorded

    def step_keys(self) -> set[str]:
        """The keys of the steps whose requests the job holds (a record written by an older
        gemflow names only its requests' keys: a one-request step's is the step's own)."""
        return set(self.steps) or set(self.keys)

    def report(self) -> BatchJobReport:
        return BatchJobReport(
            display_name=self.display_name,
            model=self.model,
            requests=len(self.keys),
            state=self.state,
            name=self.job,
            steps=sorted(set(self.steps.values())),
            submitted=self.created,
        )


def display_name(model: str, keys: Iterable[str]) -> str:
    """The same requests, the same name: ``gemflow-<model>-<hash of the keys>``."""
    digest = hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:20]
    return f"{PREFIX}{model}-{digest}"


class Ledger:
    """Records in ``folder`` (one JSON file each), or in memory when there is no folder."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._memory: dict[str, Record] = {}
        self._lock = threading.Lock()
        self._placing = threading.Lock()  # for a ledger in memory
        self._recording = threading.Lock()

    def placing(
        self, *, cancelled: Callable[[], bool] = lambda: False
    ) -> contextlib.AbstractContextManager[None]:
        """Exclusive, across processes and threads, from reading which requests open jobs hold
        until the new jobs are created and recorded with their names: another run waits, then
        finds them (``Interrupted`` if ``cancelled()`` while it waits)."""
        return self._exclusive(PLACING, self._placing, cancelled, "submitted batch jobs")

    def recording(
        self, *, cancelled: Callable[[], bool] = lambda: False
    ) -> contextlib.AbstractContextManager[None]:
        """Exclusive, within ``placing``, while a run decides which requests go into new jobs
        and records them (before uploading anything): what ``holder`` waits for."""
        return self._exclusive(RECORDING, self._recording, cancelled, "recorded batch jobs")

    @contextlib.contextmanager
    def _exclusive(
        self, name: str, in_memory: threading.Lock, cancelled: Callable[[], bool], doing: str
    ) -> Iterator[None]:
        if self.folder is None:
            with in_memory:
                yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        waiting = f"interrupted while another gemflow run {doing}"
        with held(self.folder / name, cancelled=cancelled, waiting=waiting):
            yield

    def get(self, name: str) -> Record | None:
        if self.folder is None:
            return self._memory.get(name)
        path = self.folder / f"{name}.json"
        try:
            return Record(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def put(self, record: Record) -> None:
        with self._lock:
            if self.folder is None:
                self._memory[record.display_name] = record
                return
            data = json.dumps(asdict(record), sort_keys=True).encode()
            write_atomic(self.folder / f"{record.display_name}.json", data, durable=True)

    def remove(self, name: str) -> None:
        if self.folder is None:
            self._memory.pop(name, None)
        else:
            (self.folder / f"{name}.json").unlink(missing_ok=True)

    def records(self) -> list[Record]:
        if self.folder is None:
            return list(self._memory.values())
        found = (self.get(p.stem) for p in sorted(self.folder.glob(f"{PREFIX}*.json")))
        return [r for r in found if r is not None]

    def holding(self) -> dict[str, Record]:
        """Each request key an open job holds, with its record (read afresh: another run may
        have recorded jobs meanwhile)."""
        return {key: record for record in self.records() for key in record.keys}

    def holding_steps(self) -> dict[str, Record]:
        """Each step key whose requests an open job holds, with its record."""
        return {key: record for record in self.records() for key in record.step_keys()}

    def holder(self, step_key: str, *, cancelled: Callable[[], bool]) -> Record | None:
        """The open job that holds the requests of the step ``step_key``, asked by a run about
        to send them itself, holding the step's key lock: a run placing requests either has
        recorded its job by now (``recording``), or finds the key locked and leaves the step
        alone. No folder yet: no run has placed anything, and none can without seeing that
        lock."""
        if self.folder is not None and not self.folder.is_dir():
            return None
        with self.recording(cancelled=cancelled):
            return self.holding_steps().get(step_key)
