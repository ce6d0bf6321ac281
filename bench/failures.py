"""Failure drills (issue 13): a disk that fills up during a run, and a second Ctrl-C. For each, the
requests paid for against the results kept, printed; exits 1 if a promise is broken.

    python bench/failures.py                       # 200 steps; a 2 MB file-size limit; --jobs 8
    python bench/failures.py --steps 100 --limit 1000000 --keep
    python bench/drill.py --disk-full --double-interrupt    # the same, from the drill's CLI

**Disk full.** ``gemflow run`` in a process whose files may not grow past ``--limit`` bytes
(RLIMIT_FSIZE: writes fail as on a full disk), against a ``gemflow emulator`` subprocess. Promise:
the run stops sending once the cache cannot take a result (requests sent - results kept <= jobs),
says so on one line, exits 1; a rerun without the limit pays only for the answers that were lost.

**Second Ctrl-C.** A run whose requests take ``--latency`` seconds is interrupted twice, while its
second wave of requests is in flight. Promise: it exits 130 within seconds (not after the requests
in flight), every answer that had arrived is kept; what was abandoned in flight (at most ``--jobs``
requests: the emulator still answers them, into the void) is paid again by the rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import (
    IMAGE_ENDPOINTS,
    EmulatorProcess,
    align_table,
    compile_bytecode,
    find_gemflow,
    gemflow_env,
    independent_steps,
    write_workflow,
)


def limited(limit: int) -> None:
    """In the child: files may not grow past ``limit`` bytes, and writing past it is an error."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def run(gemflow: Path, workflow: Path, url: str, env: dict[str, str], *args: str, limit: int = 0):  # type: ignore[no-untyped-def]
    cmd = [str(gemflow), "run", str(workflow), "--base-url", url, "--json", *args]
    return subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=(lambda: limited(limit)) if limit else None,
    )


def steps_made(stdout: str) -> int:
    doc = json.loads(stdout)
    return sum(1 for s in doc.get("steps", []) if s["status"] == "run")


def disk_full(gemflow: Path, root: Path, args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    folder = root / "disk"
    workflow = write_workflow(folder, independent_steps(args.steps, "Disk drill {i}"))
    env = gemflow_env(folder / "cache")
    subprocess.run([str(gemflow), "cache", "info", "--cache-dir", str(folder / "cache")], env=env,
                   capture_output=True)  # fmt: skip
    with EmulatorProcess(gemflow, folder / "emulator") as emulator:
        first = run(
            gemflow, workflow, emulator.url, env, "--jobs", str(args.jobs), limit=args.limit
        )
        sent, kept = emulator.api_calls(), steps_made(first.stdout or "{}")
        second = run(gemflow, workflow, emulator.url, env, "--jobs", str(args.jobs))
        total = emulator.api_calls()
    lost = sent - kept
    one_line = [line for line in first.stderr.splitlines() if "cannot write to the cache" in line]
    return [
        ("disk full: requests sent", str(sent), True),
        ("disk full: results kept", str(kept), kept > 0),
        ("disk full: answers lost (<= jobs)", str(lost), lost <= args.jobs),
        ("disk full: exit code 1, said", f"{first.returncode}, {len(one_line)} lines",
         first.returncode == 1 and len(one_line) >= 1 and "Traceback" not in first.stderr),
        ("disk full: the rerun paid for", str(total - sent),
         second.returncode == 0 and total - sent == args.steps - kept),
    ]  # fmt: skip


def double_interrupt(
    gemflow: Path, root: Path, args: argparse.Namespace
) -> list[tuple[str, str, bool]]:
    folder = root / "interrupt"
    workflow = write_workflow(folder, independent_steps(args.steps, "Interrupt drill {i}"))
    env = gemflow_env(folder / "cache")
    with EmulatorProcess(gemflow, folder / "emulator", latency=args.latency) as emulator:
        cmd = [
            str(gemflow),
            "run",
            str(workflow),
            "--base-url",
            emulator.url,
            "--jobs",
            str(args.jobs),
        ]
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while emulator.api_calls() < args.jobs and time.monotonic() < deadline:
            time.sleep(0.05)
        # The emulator logs a request just before it answers: give gemflow a moment to take the
        # first answers and send the next wave, so that both signals find requests in flight.
        time.sleep(args.latency / 6)
        proc.send_signal(signal.SIGINT)
        time.sleep(args.latency / 6)
        arrived = emulator.api_calls()
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        seconds = time.monotonic() - started
        lock = (
            json.loads((folder / "bench.lock").read_text())
            if (folder / "bench.lock").exists()
            else {}
        )
        kept = len(lock.get("steps", {}))
        rerun_started = time.time()
        rerun = run(gemflow, workflow, emulator.url, env, "--jobs", str(args.jobs))
        # the abandoned requests are logged when the emulator answers them (during the rerun)
        sent = sum(
            r["endpoint"] in IMAGE_ENDPOINTS and r["started"] < rerun_started
            for r in emulator.requests()
        )
        paid_again = emulator.api_calls() - args.steps
    return [
        ("2nd Ctrl-C: requests sent / results kept", f"{sent} / {kept}",
         sent - kept <= args.jobs and sent > arrived),
        ("2nd Ctrl-C: exit code, seconds to exit", f"{proc.returncode}, {seconds:.1f} s",
         proc.returncode == 130 and seconds < args.latency and "Traceback" not in stderr),
        ("2nd Ctrl-C: answers arrived / kept", f"{arrived} / {kept}", kept >= arrived),
        ("2nd Ctrl-C: abandoned in flight, paid again", str(max(paid_again, 0)),
         rerun.returncode == 0 and paid_again == sent - kept <= args.jobs),
    ]  # fmt: skip


Drill = Callable[[Path, Path, argparse.Namespace], list[tuple[str, str, bool]]]
DRILLS: dict[str, Drill] = {"disk-full": disk_full, "double-interrupt": double_interrupt}
# The options the drills read (bench/drill.py takes them too): steps, jobs, file-size limit in
# bytes (disk full), seconds per request (second Ctrl-C).
DEFAULTS = {"steps": 200, "jobs": 8, "limit": 2_000_000, "latency": 6.0}


def run_drills(names: Sequence[str], args: argparse.Namespace) -> int:
    """Run the drills ``names`` (keys of ``DRILLS``) and print their table: requests sent against
    results kept, and each promise PASS or FAIL. Returns 0 if every promise held, else 1."""
    compile_bytecode()
    gemflow = find_gemflow()
    root = Path(tempfile.mkdtemp(prefix="gemflow-failures-"))
    try:
        rows = [row for name in names for row in DRILLS[name](gemflow, root, args)]
    finally:
        if args.keep:
            print(f"kept the workflows, logs and caches in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    table = [("check", "figure", ""), *((n, v, "PASS" if ok else "FAIL") for n, v, ok in rows)]
    print(align_table(table))
    return 0 if all(ok for _, _, ok in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    parser.add_argument("--jobs", type=int, default=DEFAULTS["jobs"])
    parser.add_argument(
        "--limit", type=int, default=DEFAULTS["limit"], help="file-size limit, bytes"
    )
    parser.add_argument(
        "--latency", type=float, default=DEFAULTS["latency"], help="seconds per request (drill 2)"
    )
    parser.add_argument("--keep", action="store_true")
    return run_drills(list(DRILLS), parser.parse_args(argv))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
