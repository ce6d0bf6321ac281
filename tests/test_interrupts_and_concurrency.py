"""Interrupted and concurrent runs: nothing paid for twice, nothing half-written, nothing lost."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAKE_KEY, Project

from gemflow.interrupts import deferred


def independent(count: int) -> str:
    steps = "\n".join(f"  s{i}: {{kind: generate, prompt: 'picture {i}'}}" for i in range(count))
    return f"version: 1\ndefaults: {{model: gemini-3.1-flash-image}}\nsteps:\n{steps}\n"


def start_gemflow(project: Project, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "gemflow",
        "run",
        str(project.workflow),
        "--base-url",
        project.emulator.url,
        *args,
    ]
    full_env = {**env, "GEMINI_API_KEY": FAKE_KEY, "GEMFLOW_CACHE_DIR": str(project.root / "cache")}
    return subprocess.Popen(
        command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_calls(project: Project, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(project.calls()) < count:
        assert time.monotonic() < deadline, "the run did not make the expected calls in time"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_keeps_finished_work_and_the_rerun_pays_only_for_the_rest(
    project: Project, isolated_env: dict[str, str], signum: int
) -> None:
    project.emulator.faults.latency = 0.6
    project.write(independent(6))
    process = start_gemflow(project, "--jobs", "2", env=isolated_env)
    wait_for_calls(project, 2)  # the first two are done; the next two are in flight
    time.sleep(0.2)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=20)

    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert len(project.calls()) == 4  # the two in flight finished; nothing new started
    outputs = sorted(p.name for p in (project.root / "out").iterdir())
    assert len(outputs) == 4 and all(name.endswith(".png") for name in outputs)  # no temp files
    assert len(project.lock["steps"]) == 4

    project.emulator.faults.latency = 0
    doc = project.run_json()
    assert len(project.calls()) == 6
    assert sorted(s["status"] for s in doc["steps"]) == ["cached"] * 4 + ["run"] * 2


def test_two_runs_at_once_pay_for_each_step_once(
    project: Project, isolated_env: dict[str, str]
) -> None:
    project.emulator.faults.latency = 0.4
    project.write(independent(4))
    first = start_gemflow(project, "--jobs", "4", "--json", env=isolated_env)
    second = start_gemflow(project, "--jobs", "4", "--json", env=isolated_env)
    out1, err1 = first.communicate(timeout=30)
    out2, err2 = second.communicate(timeout=30)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert len(project.calls()) == 4
    steps = json.loads(out1)["steps"] + json.loads(out2)["steps"]
    assert sum(s["api_calls"] for s in steps) == 4
    reused = [s for s in steps if s["reason"] == "made meanwhile by another gemflow run"]
    cached = [s for s in steps if s["status"] == "cached"]
    assert len(reused) + len(cached) == 4
    assert len(project.lock["steps"]) == 4


def test_fail_fast_starts_nothing_after_the_first_failure(project: Project) -> None:
    project.write(independent(3).replace("'picture 0'", "'picture 0 [[emulator:image_safety]]'"))
    doc = project.run_json("--fail-fast", "--jobs", "1", expect=1)
    assert [s["status"] for s in doc["steps"]] == ["failed", "blocked", "blocked"]
    assert doc["steps"][1]["reason"] == "not started: s0 failed and --fail-fast is set"
    assert len(project.calls()) == 1


def test_keep_going_is_the_default(project: Project) -> None:
    project.write(independent(3).replace("'picture 0'", "'picture 0 [[emulator:image_safety]]'"))
    doc = project.run_json("--jobs", "1", expect=1)
    assert [s["status"] for s in doc["steps"]] == ["failed", "run", "run"]


def test_lock_entries_of_other_targets_survive_a_targeted_run(project: Project) -> None:
    project.write(independent(2))
    project.run()
    project.write(independent(2).replace("picture 1", "picture one"))
    project.run("s0")
    assert sorted(project.lock["steps"]) == ["s0", "s1"]


def test_partial_files_never_appear_in_the_output_folder(project: Project) -> None:
    project.write(independent(2))
    project.run()
    assert not [p for p in Path(project.root).rglob("*.tmp")]


def test_a_killed_run_leaves_only_whole_files_and_a_sound_cache(
    project: Project, isolated_env: dict[str, str]
) -> None:
    project.emulator.faults.latency = 0.5
    project.write(independent(6))
    process = start_gemflow(project, "--jobs", "2", env=isolated_env)
    wait_for_calls(project, 2)
    time.sleep(0.2)
    process.kill()  # SIGKILL: no handler runs, nothing is tidied up
    process.communicate(timeout=20)
    time.sleep(0.7)  # the two requests in flight still finish on the emulator: paid, but lost

    from PIL import Image

    for output in (project.root / "out").glob("*.png"):  # every file under its own name is whole
        with Image.open(output) as image:
            image.load()
    from click.testing import CliRunner

    from gemflow.cli import cli

    verify = CliRunner().invoke(
        cli, ["cache", "verify", "--cache-dir", str(project.root / "cache")]
    )
    assert verify.exit_code == 0, verify.output
    before = len(project.calls())
    project.emulator.faults.latency = 0
    doc = project.run_json()
    # the rerun pays only for steps whose results never reached the cache
    assert len(project.calls()) - before == sum(s["status"] == "run" for s in doc["steps"])
    assert sum(s["status"] == "cached" for s in doc["steps"]) >= 2


def test_a_second_interrupt_exits_now_and_keeps_every_answer_that_arrived(
    project: Project, isolated_env: dict[str, str]
) -> None:
    project.write(independent(4))
    project.emulator.faults.push("hang", count=2)  # the first two will not be answered soon
    process = start_gemflow(project, "--jobs", "4", env=isolated_env)
    wait_for_calls(project, 2)  # the other two are answered (logged when answered)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    waited = time.monotonic() - started

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert waited < 10  # not the 30 s the hanging requests would take, nor their retries
    assert len(project.lock["steps"]) == 2  # both answers that arrived are kept
    assert len(list((project.root / "out").iterdir())) == 2
    doc = project.run_json()
    assert sorted(s["status"] for s in doc["steps"]) == ["cached", "cached", "run", "run"]


# A run whose finishing (saving the lock file, closing the store, writing --json) or whose very
# end is hit by a signal: the hook sends it to the process at that moment, once.
SIGNAL_AT = """
import os, signal, sys, time
import {module} as where

original = where.{attribute}
fired = []


def hooked(*args, **kwargs):
    if {after}:
        try:
            return original(*args, **kwargs)
        finally:
            signal_now()
    signal_now()
    return original(*args, **kwargs)


def signal_now():
    if not fired:
        fired.append(True)
        os.kill(os.getpid(), signal.{signal})
        time.sleep(0.3)  # the signal is handled here, in the middle of it


{owner}.{name} = hooked
from gemflow.cli import main

main()
"""
MOMENTS = {
    "saving the lock": ("gemflow.cache.lockfile", "LockFile.save", False),
    "closing the store": ("gemflow.cache.local", "Store.close", False),
    "writing the json": ("gemflow.report.jsonout", "JsonReporter.write", False),
    "after the command": ("gemflow.cli.app", "cli.main", True),
}


@pytest.mark.parametrize(
    ("moment", "signame"),
    [
        ("saving the lock", "SIGINT"),
        ("saving the lock", "SIGTERM"),
        ("closing the store", "SIGTERM"),
        ("writing the json", "SIGINT"),
        ("after the command", "SIGINT"),
        ("after the command", "SIGTERM"),
    ],
)
def test_a_signal_while_the_run_finishes_ends_it_with_130_and_whole_files(
    project: Project, isolated_env: dict[str, str], moment: str, signame: str
) -> None:
    module, attribute, after = MOMENTS[moment]
    owner, _, name = attribute.rpartition(".")
    script = SIGNAL_AT.format(
        module=module,
        attribute=attribute,
        after=after,
        signal=signame,
        owner=f"where.{owner}",
        name=name,
    )
    project.write(independent(2))
    env = {
        **isolated_env,
        "GEMINI_API_KEY": FAKE_KEY,
        "GEMFLOW_CACHE_DIR": str(project.root / "cache"),
    }
    argv = ["run", str(project.workflow), "--base-url", project.emulator.url, "--json"]
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["steps"]  # one whole document
    assert sorted(project.lock["steps"]) == ["s0", "s1"]
    assert len(project.calls()) == 2
    assert not list(project.root.rglob("*.tmp"))


def test_a_signal_during_finishing_work_comes_once_it_is_done() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), deferred():
        signal.raise_signal(signal.SIGINT)
        done.append("saved")
    assert done == ["saved"]


def test_a_second_signal_during_finishing_work_stops_it_at_once() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), deferred():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        done.append("saved")
    assert done == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
