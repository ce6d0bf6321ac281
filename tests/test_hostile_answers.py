"""A broken or hostile server: whatever it answers ends in a clear one-line error (retried when
that makes sense), never a traceback, a hang, a terminal taken over or a non-picture stored.

Every answer goes through the real google-genai client to the emulator, whose faults send each
kind of broken answer (see ``gemflow.emulator.faults``).
"""

from __future__ import annotations

import json

from conftest import FAKE_KEY, Project

ONE_STEP = """\
version: 1
defaults: {model: gemini-3.1-flash-image}
steps:
  apple: {kind: generate, prompt: A red apple.}
"""


def with_fault(name: str, text: str = ONE_STEP) -> str:
    """The workflow, its step's prompt asking the emulator for fault ``name``."""
    return text.replace("A red apple.", f"'A red apple. [[emulator:{name}]]'")


def the_error(doc: dict) -> str:
    (step,) = doc["steps"]
    assert step["status"] == "failed"
    return str(step["error"])


# --- what reaches the terminal ---------------------------------------------------------------


def test_escape_sequences_in_an_api_error_never_reach_the_terminal(project: Project) -> None:
    project.write(with_fault("escapes"))
    result = project.run("--json", expect=1)
    error = "400 INVALID_ARGUMENT: Bad request red fake line (emulated fault)"
    assert the_error(json.loads(result.stdout)) == error
    assert f"failed: apple: {error}\n" in result.stderr
    assert not [c for c in result.output if c < " " and c != "\n"]
    assert "\u202e" not in result.output
    assert len(project.calls()) == 1
    assert FAKE_KEY not in result.output
