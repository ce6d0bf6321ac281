"""The batch path at scale: 1,000 steps through the Batch API on the emulator, timed, with the
peak RSS of each gemflow process beside a 100-step run's (memory must stay flat).

    python bench/batch.py                      # 100 and 1,000 steps (~4 min)
    python bench/batch.py --sizes 100,2000 --scale 0.25 --out /tmp/batch.json --keep

For each size: a workflow of that many independent ``generate`` steps is submitted with
``gemflow run WF --batch --detach`` (time to submit: build every request, write and upload the
JSONL, create the jobs, record them); once the emulator has finished the jobs,
``gemflow run WF --batch`` collects them (time to ingest: download each output file, read it line
by line, store and write every picture). That many edits of one photo (each request carries it)
go in one ``--batch`` run: submit, wait, ingest. Then the benchmark's mixed workflow of that size
(fan-outs, chains of edits, grids: rounds of dependent steps) is built with ``--batch``, with
``--batch=auto`` and, for comparison, interactively. Every run is checked: all steps made, no
interactive call where none is expected, no job left in the ledger. Peak RSS is each gemflow
process's own ``ru_maxrss``. It reports; it is not a test, but it exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import (
    BenchError,
    EmulatorProcess,
    align_table,
    compile_bytecode,
    find_gemflow,
    gemflow_env,
    independent_steps,
    machine,
    mixed_steps,
    write_workflow,
)

DEFAULT_SIZES = (100, 1_000)
DEFAULT_SCALE = 1.0  # 1024-px pictures, about 36 kB each: 1,000 held at once would show
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "batch.json"
API_KEY = "bench-key"
POLL = "0.1"  # seconds between gemflow's looks at its jobs
JOB_WAIT = 600.0  # seconds the emulator may take to finish the jobs
ENDED = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")

# As bench.MEASURE, but the command's stdout goes to the file named first (its --json document).
MEASURE = """\
import os, sys, time
start = time.perf_counter()
out = [(os.POSIX_SPAWN_OPEN, 1, sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ, file_actions=out)
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


@dataclass
class Measured:
    figure: str
    steps: int
    seconds: float
    peak_rss_mb: float
    jobs: int
    interactive: int  # generateContent calls
    note: str = ""


def measured(
    cmd: Sequence[str | Path], env: dict[str, str], cwd: Path
) -> tuple[dict, float, float]:
    """Run ``cmd`` (with ``--json``): its document, wall seconds and peak RSS in MB."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "out.json"
        argv = [sys.executable, "-I", "-S", "-c", MEASURE, str(out), *map(str, cmd)]
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BenchError(f"could not measure {cmd}:\n{proc.stderr}")
        seconds, rss_kb, code = proc.stdout.split()
        if int(code) != 0:
            raise BenchError(f"{' '.join(map(str, cmd[1:]))} exited with {code}:\n{proc.stderr}")
        return json.loads(out.read_text()), float(seconds), int(rss_kb) / 1024


def statuses(doc: dict) -> dict[str, int]:
    return {k: v for k, v in doc["totals"]["steps"].items() if v}


def check(doc: dict, expected: dict[str, int], what: str) -> None:
    if statuses(doc) != expected:
        raise BenchError(f"{what}: steps {statuses(doc)}, expected {expected}")
    if doc["totals"]["batch_jobs_pending"] and "pending" not in expected:
        raise BenchError(f"{what}: {doc['totals']['batch_jobs_pending']} jobs still pending")


def wait_for_jobs(url: str) -> None:
    """Until every job of the emulator has ended."""
    deadline = time.monotonic() + JOB_WAIT
    while time.monotonic() < deadline:
        states = [job["metadata"]["state"].removeprefix("BATCH_STATE_") for job in list_jobs(url)]
        if all(state in ENDED for state in states):
            return
        time.sleep(0.2)
    raise BenchError(f"the emulator's jobs did not end within {JOB_WAIT:.0f} s")


def list_jobs(url: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/v1beta/batches?pageSize=1000", headers={"x-goog-api-key": API_KEY}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return list(json.load(answer).get("operations", []))


def bench_submit_and_ingest(
    size: int, gemflow: Path, emulator: EmulatorProcess, root: Path
) -> list[Measured]:
    folder = root / f"independent-{size}"
    workflow = write_workflow(folder, independent_steps(size, "Batch bench {i}: a numbered tile"))
    env = gemflow_env(folder / "cache", API_KEY)
    base = [gemflow, "run", workflow, "--base-url", emulator.url, "--json", "--batch"]
    calls = emulator.api_calls()
    print(f"[{size:,} steps] submitting …", flush=True)
    doc, submit, submit_rss = measured([*base, "--detach"], env, folder)
    check(doc, {"pending": size}, "--detach")
    jobs = len(doc["batch_jobs"])
    wait_for_jobs(emulator.url)
    print(f"[{size:,} steps] collecting {jobs} job(s) …", flush=True)
    doc, ingest, ingest_rss = measured([*base, "--batch-poll", POLL], env, folder)
    check(doc, {"run": size}, "collecting")
    if (interactive := emulator.api_calls() - calls) != 0:
        raise BenchError(f"[{size}] {interactive} interactive calls in batch mode")
    if (ledger := folder / "cache" / "batches").exists() and any(ledger.iterdir()):
        raise BenchError(f"[{size}] jobs left in the ledger after collecting")
    size_mb = sum(p.stat().st_size for p in (folder / "out").iterdir()) / 1e6
    return [
        Measured("submit (--detach)", size, submit, submit_rss, jobs, 0),
        Measured(
            "ingest (collect)", size, ingest, ingest_rss, jobs, 0, f"{size_mb:.0f} MB of pictures"
        ),
    ]


def photo(path: Path, side: int = 480) -> int:
    """A JPEG of noise (it hardly compresses): the input every edit of ``bench_edits`` sends."""
    import random

    from PIL import Image

    noise = random.Random(0).randbytes(side * side * 3)
    Image.frombytes("RGB", (side, side), noise).save(path, quality=90)
    return path.stat().st_size


def bench_edits(size: int, gemflow: Path, emulator: EmulatorProcess, root: Path) -> Measured:
    """``size`` edits of one photo in one ``--batch`` run: submit, wait, ingest. Each request
    carries the photo, so a run that held every request would hold ``size`` copies of it."""
    folder = root / f"edits-{size}"
    folder.mkdir(parents=True)
    kb = photo(folder / "photo.jpg") / 1000
    steps = {
        f"e{i}": {"kind": "edit", "images": ["photo.jpg"], "prompt": f"Edit {i}: a new sky"}
        for i in range(size)
    }
    workflow = write_workflow(folder, steps)
    env = gemflow_env(folder / "cache", API_KEY)
    print(f"[{size:,} steps] edits of a {kb:.0f} kB photo, --batch …", flush=True)
    jobs_before, calls_before = len(list_jobs(emulator.url)), emulator.api_calls()
    cmd = [gemflow, "run", workflow, "--base-url", emulator.url, "--json", "--batch"]
    doc, seconds, rss = measured([*cmd, "--batch-poll", POLL], env, folder)
    check(doc, {"run": size}, "edits")
    if (interactive := emulator.api_calls() - calls_before) != 0:
        raise BenchError(f"[{size}] {interactive} interactive calls in batch mode")
    jobs = len(list_jobs(emulator.url)) - jobs_before
    held = size * kb / 1000
    note = f"{kb:.0f} kB input each: {held:.0f} MB if all held"
    return Measured("edits, --batch", size, seconds, rss, jobs, 0, note)


def bench_mixed(
    size: int, gemflow: Path, emulator: EmulatorProcess, root: Path, mode: str
) -> Measured:
    steps = mixed_steps(size)
    folder = root / f"mixed-{size}-{mode}"
    workflow = write_workflow(folder, steps)
    env = gemflow_env(folder / "cache", API_KEY)
    flags = {"interactive": [], "all": ["--batch"], "auto": ["--batch=auto"]}[mode]
    label = " ".join(flags) or "interactive"
    print(f"[{size:,} steps] mixed workflow, {label} …", flush=True)
    jobs_before, calls_before = len(list_jobs(emulator.url)), emulator.api_calls()
    cmd = [gemflow, "run", workflow, "--base-url", emulator.url, "--json", *flags]
    doc, seconds, rss = measured([*cmd, "--batch-poll", POLL] if flags else cmd, env, folder)
    check(doc, {"run": size}, f"mixed, {label}")
    jobs = len(list_jobs(emulator.url)) - jobs_before
    interactive = emulator.api_calls() - calls_before
    if mode == "all" and interactive:
        raise BenchError(f"[{size}] {interactive} interactive calls with --batch")
    api = sum(body["kind"] in ("generate", "edit") for body in steps.values())
    return Measured(f"mixed, {label}", size, seconds, rss, jobs, interactive, f"{api} API steps")


def format_table(rows: Sequence[Measured]) -> str:
    header = ("figure", "steps", "time", "jobs", "interactive", "peak RSS", "notes")
    cells = [header] + [
        (
            r.figure,
            f"{r.steps:,}",
            f"{r.seconds:.2f} s",
            str(r.jobs),
            str(r.interactive),
            f"{r.peak_rss_mb:.0f} MB",
            r.note,
        )
        for r in rows
    ]
    return align_table(cells, right={1, 2, 3, 4, 5})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(part) for part in text.split(",")],
        default=list(DEFAULT_SIZES),
        help="workflow sizes in steps, comma-separated (default: 100,1000)",
    )
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="emulator --scale")
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed workflows")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    about = {**machine(), "emulator_scale": args.scale}
    rows: list[Measured] = []
    status = 0
    root = Path(tempfile.mkdtemp(prefix="gemflow-bench-batch-"))
    emulator_args = ["--scale", str(args.scale), "--batch-pending", "0", "--batch-running", "0.2"]
    try:
        gemflow = find_gemflow()
        compile_bytecode()
        with EmulatorProcess(gemflow, root / "emulator", extra_args=emulator_args) as emulator:
            for size in args.sizes:
                rows += bench_submit_and_ingest(size, gemflow, emulator, root)
            for size in args.sizes:
                rows.append(bench_edits(size, gemflow, emulator, root))
            if not args.no_mixed:
                for size in args.sizes:
                    for mode in ("all", "auto", "interactive"):
                        rows.append(bench_mixed(size, gemflow, emulator, root, mode))
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        status = 130
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if rows:
        print(f"\ngemflow batch benchmark · {about['commit']} · {about['cpus']} CPUs", end="")
        print(f" (load {about['load_average']} at start) · emulator --scale {args.scale}", end="")
        print("" if status == 0 else " · INCOMPLETE")
        print(format_table(rows))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        document = {**about, "complete": status == 0, "results": [asdict(r) for r in rows]}
        args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    if args.keep:
        print(f"kept the workflows and caches in {root}")
    return status


if __name__ == "__main__":
    sys.exit(main())
