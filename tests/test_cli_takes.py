"""``gemflow history`` and ``gemflow pick``: the takes kept for a step, listed from the lock file."""

from __future__ import annotations

import json

from conftest import Project

ONE = """\
version: 1
steps:
  a: {kind: generate, model: gemini-3.1-flash-image, prompt: An apple.}
"""


def test_history_escapes_the_control_characters_of_a_hostile_lock_file(project: Project) -> None:
    project.write(ONE)
    project.run()
    lock = json.loads((project.root / "wf.lock").read_text())
    lock["steps"]["a"]["digest"] = "sha256:\x1b[2J\x1b]0;x\x07\x9b"
    (project.root / "wf.lock").write_text(json.dumps(lock))
    shown = project.cli("history", str(project.workflow), "a").stdout
    assert "\\x1b[2J\\x1b]0;x" in shown
    assert not any(c in shown for c in "\x1b\x07\x9b")
