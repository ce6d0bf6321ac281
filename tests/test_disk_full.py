"""A full disk stops the run at once: no new request, every answer in hand kept when it can be,
one clear message, exit 1; a rerun pays only for what was lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import Project

from gemflow.cache.local import Store

STEPS = 30


def workflow(count: int) -> str:
    steps = "".join(
        f"  s{i}: {{kind: generate, model: gemini-3.1-flash-image, prompt: Picture {i}.}}\n"
        for i in range(count)
    )
    return f"version: 1\nsteps:\n{steps}"


def run_with_a_small_disk(project: Project, limit: int) -> subprocess.CompletedProcess[str]:
    """The CLI in a process whose files may not grow past ``limit`` bytes (EFBIG / SQLITE_FULL,
    as on a full disk)."""
    code = textwrap.dedent(f"""\
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        from gemflow.cli import cli
        sys.argv = ["gemflow", "run", {str(project.workflow)!r}, "--base-url",
                    {project.emulator.url!r}, "--cache-dir", {str(project.root / "cache")!r},
                    "--jobs", "4", "--json"]
        cli()
        """)
    Store(project.root / "cache").close()  # the cache exists; the disk fills as it grows
    env = {**os.environ, "GEMINI_API_KEY": "k"}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_full_disk_stops_the_run_and_loses_at_most_what_was_in_flight(project: Project) -> None:
    project.write(workflow(STEPS))
    done = run_with_a_small_disk(project, 160_000)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot write to the cache at" in done.stderr
    doc = json.loads(done.stdout)
    statuses = [s["status"] for s in doc["steps"]]
    made = statuses.count("run")
    sent = len(project.calls())
    assert 0 < made < STEPS
    assert sent - made <= 4  # at most the requests that were in flight
    assert "blocked" in statuses  # nothing new was sent
    again = project.run_json()
    assert again["ok"]
    assert len(project.calls()) == STEPS + (sent - made)  # only the lost answers are paid again
    assert [s["status"] for s in again["steps"]].count("cached") >= made


def test_the_disk_full_message_is_one_line_per_problem(project: Project) -> None:
    project.write(workflow(6))
    done = run_with_a_small_disk(project, 60_000)
    assert done.returncode in (1, 3), done.stderr
    assert "Traceback" not in done.stderr
    assert Path(project.root / "wf.yaml").is_file()
