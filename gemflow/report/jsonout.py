"""``--json``: one JSON document on stdout describing the run, written when it finishes."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from gemflow.engine.events import Event, RunFinished


class JsonReporter:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            json.dump(event.summary.to_json(), self.stream, indent=2, sort_keys=True)
            self.stream.write("\n")
            self.stream.flush()
