"""``--json``: one JSON document on stdout describing the run, whatever the exit: the run's
summary, and when something stopped it (an invalid workflow, no API key), ``ok: false`` and the
errors, each with its file, line and step when it has them."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from gemflow.engine.events import Event, RunFinished, RunSummary
from gemflow.errors import GemflowError, WorkflowError


class JsonReporter:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.summaries: list[RunSummary] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            self.summaries.append(event.summary)

    def write(self, error: BaseException | None = None, exit_code: int | None = None) -> None:
        """Print the document: every run's summary, and ``error`` if one stopped the command."""
        docs = [summary.to_json() for summary in self.summaries]
        document: dict[str, Any] = docs[0] if len(docs) == 1 else {"workflows": docs}
        if len(docs) != 1:
            document["ok"] = all(doc["ok"] for doc in docs)
        if error is not None:
            document["ok"] = False
            document["errors"] = errors_of(error)
            document["exit_code"] = exit_code
        json.dump(document, self.stream, indent=2, sort_keys=True)
        self.stream.write("\n")
        self.stream.flush()


def errors_of(error: BaseException) -> list[dict[str, Any]]:
    """``error`` as JSON: a workflow's every problem, located; else its one message."""
    if isinstance(error, WorkflowError):
        return [
            {"file": p.file, "line": p.line, "step": p.step, "message": p.message}
            for p in error.problems
        ]
    if isinstance(error, GemflowError):
        return [{"message": str(error)}]
    return [{"message": str(error) or type(error).__name__}]
