"""gemflow's benchmark: how fast a no-op rerun, a dry run and ``--help`` are, and whether ``--jobs``
really overlaps API calls.

    python bench/bench.py                    # 1,000 and 10,000 steps, 256-step concurrency check
    python bench/bench.py --quick            # 1,000 steps, 64-step concurrency check at --jobs 8
    python bench/bench.py --sizes 2000 --keep --out /tmp/bench.json

Everything is measured as whole ``gemflow`` subprocesses against ``gemflow emulator`` on loopback,
so imports, YAML loading, the cache and the lock file all count, as they do for a user. Each
command gets one warm-up run, then the best (and median) of N runs; peak RSS is per process, from
``os.wait4``. It reports; it is not a test: MISS still exits 0. It exits non-zero only when
something broke, above all when a no-op rerun or a dry run made an API call.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

MODEL = "gemini-3.1-flash-image"
SCALE = 0.0625  # emulator images are 1/16 of their real side: rendering must not dominate
BUILD_JOBS = 8
DEFAULT_SIZES = (1_000, 10_000)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"
HELP_RUNS = 10
EMULATOR_START_TIMEOUT = 30.0
IMAGE_ENDPOINTS = ("generateContent", "streamGenerateContent")

# Targets on the reference machine (2 cores): seconds a no-op rerun may take, by workflow size.
NOOP_TARGETS = {1_000: 0.3, 10_000: 3.0}
HELP_TARGET = 0.2
CONCURRENCY_TARGET = 1.15  # wall time / ideal wall time


class BenchError(Exception):
    """Something broke (as opposed to a target being missed): the benchmark exits non-zero."""


# --------------------------------------------------------------------------- figures


@dataclass
class Figure:
    """One line of the report: a time, what it should be at most, and notes."""

    name: str
    seconds: float  # the best run
    median: float | None = None
    runs: int = 1
    samples: list[float] = field(default_factory=list)  # every timed run, in order
    peak_rss_mb: float | None = None
    limit: float | None = None  # seconds; None: reported, no target
    target: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return ""
        return "PASS" if self.seconds <= self.limit else "MISS"


# --------------------------------------------------------------------------- workflows


_SUBJECTS = (
    "a lighthouse at dusk",
    "a red bicycle",
    "a paper boat",
    "a fox in snow",
    "a bowl of ramen",
    "a foggy skyline",
    "a potted cactus",
)


def mixed_steps(count: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``count`` steps in blocks like real projects have; about 80% call the API.

    Each block: a fan-out (one ``generate`` feeding 2-5 ``edit`` variations), a chain
    (``generate`` → ``edit`` → … of 3-5 steps, some edits also using the fan-out's source), then a
    ``composite`` grid over 2-4 of those results and a ``resize`` of the grid to WebP. The last
    block is cut short at ``count``; every reference points back, so any prefix is a valid DAG.
    """
    return dict(itertools.islice(_blocks(random.Random(seed)), count))


def _blocks(rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    prompts = (f"Picture {n}: {_SUBJECTS[n % len(_SUBJECTS)]}" for n in itertools.count())
    for block in itertools.count():
        results = []
        source = f"b{block}_src"
        yield source, {"kind": "generate", "prompt": next(prompts)}
        for i in range(rng.randint(2, 5)):
            results.append(f"b{block}_v{i}")
            yield results[-1], {"kind": "edit", "images": [source], "prompt": next(prompts)}
        previous = f"b{block}_c0"
        yield previous, {"kind": "generate", "prompt": next(prompts)}
        for i in range(1, rng.randint(3, 5)):
            images = [previous, source] if rng.random() < 0.25 else [previous]
            step_id = f"b{block}_c{i}"
            yield step_id, {"kind": "edit", "images": images, "prompt": next(prompts)}
            previous = step_id
        results.append(previous)
        sheet = f"b{block}_sheet"
        picks = rng.sample(results, k=min(len(results), rng.randint(2, 4)))
        yield sheet, {"kind": "composite", "images": picks, "columns": 2, "gap": 4}
        thumb = {"kind": "resize", "image": sheet, "width": 48, "output": f"out/b{block}.webp"}
        yield f"b{block}_thumb", thumb


def independent_steps(
    count: int, prompt: str = "Concurrency probe {i}: a numbered tile"
) -> dict[str, dict[str, Any]]:
    """``count`` ``generate`` steps with no dependencies: all can run at once. Step ``g{i}``'s
    prompt is ``prompt`` formatted with its number ``i``, so every prompt is distinct."""
    return {f"g{i}": {"kind": "generate", "prompt": prompt.format(i=i)} for i in range(count)}


def render_workflow(steps: dict[str, dict[str, Any]]) -> str:
    """The workflow file for ``steps``: one line per step, so 10,000 steps stay under 1 MiB
    (the most ``gemflow.workflow.load`` accepts)."""
    lines = ["version: 1", "defaults:", f"  model: {MODEL}", "steps:"]
    lines.extend(f"  {step_id}: {_yaml_value(body)}" for step_id, body in steps.items())
    return "\n".join(lines) + "\n"


def _yaml_value(value: Any) -> str:
    """``value`` in YAML's flow style."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(_yaml_value, value)) + "]"
    if isinstance(value, str) and not re.fullmatch(r"[\w./-]+", value):
        return json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar
    return str(value)


def api_step_count(steps: dict[str, dict[str, Any]]) -> int:
    return sum(body["kind"] in ("generate", "edit") for body in steps.values())


def write_workflow(folder: Path, steps: dict[str, dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.yaml"
    path.write_text(render_workflow(steps), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Sample:
    seconds: float
    max_rss_kb: int
    returncode: int
    stderr: str


# Runs argv[1:] and prints "seconds max_rss_kib exit_code". A fresh, small process launches each
# measured command because a child's ru_maxrss starts from the RSS of the process that spawned it:
# spawned from this script (tens of MB once it has read a 10,000-step log) it would be inflated.
# Python with -I -S is about 8 MB, below any gemflow process. The time excludes its own start.
MEASURE = """\
import os, sys, time
start = time.perf_counter()
devnull = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ, file_actions=devnull)
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_once(cmd: Sequence[str | Path], env: dict[str, str], cwd: Path) -> Sample:
    """Run ``cmd`` to completion: its wall time and its own peak RSS (``os.wait4``, KiB on Linux)."""
    argv = [sys.executable, "-I", "-S", "-c", MEASURE, *map(str, cmd)]
    with tempfile.TemporaryFile() as err:
        # A session of its own, so that on Ctrl-C or an error the command goes with its launcher.
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, start_new_session=True
        )
        try:
            report, _ = proc.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        raise BenchError(f"could not measure {_show(cmd)}:\n{stderr}")
    seconds, max_rss_kb, returncode = report.split()
    return Sample(float(seconds), int(max_rss_kb), int(returncode), stderr)


def run_checked(cmd: Sequence[str | Path], env: dict[str, str], cwd: Path) -> Sample:
    sample = run_once(cmd, env, cwd)
    if sample.returncode != 0:
        tail = "\n".join(sample.stderr.splitlines()[-15:])
        raise BenchError(f"{_show(cmd)} exited with {sample.returncode}:\n{tail}")
    return sample


@dataclass(frozen=True)
class Timing:
    seconds: list[float]
    peak_rss_kb: int

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def time_command(
    cmd: Sequence[str | Path],
    env: dict[str, str],
    cwd: Path,
    *,
    runs: int,
    warmup: int = 1,
    check: Callable[[], None] = lambda: None,
) -> Timing:
    """Like hyperfine: ``warmup`` untimed runs, then ``runs`` timed ones; ``check`` after each."""
    samples = []
    for index in range(warmup + runs):
        sample = run_checked(cmd, env, cwd)
        check()
        if index >= warmup:
            samples.append(sample)
    return Timing([s.seconds for s in samples], max(s.max_rss_kb for s in samples))


def _show(cmd: Sequence[str | Path]) -> str:
    return " ".join(Path(c).name if i == 0 else str(c) for i, c in enumerate(cmd))


def gemflow_env(cache_dir: Path, api_key: str = "bench-key") -> dict[str, str]:
    env = {**os.environ, "GEMINI_API_KEY": api_key, "GEMFLOW_CACHE_DIR": str(cache_dir)}
    env.pop("GOOGLE_GEMINI_BASE_URL", None)  # every run names its endpoint with --base-url
    return env


def compile_bytecode() -> None:
    """Write gemflow's .pyc files first, as any install does: where PYTHONDONTWRITEBYTECODE is
    set (as on this workplace's machines), every timed run would otherwise compile the package
    from source, and the figures would measure the compiler."""
    import gemflow

    package = Path(gemflow.__file__).parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def find_gemflow() -> Path:
    """The ``gemflow`` script beside this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "gemflow"
    found = beside if beside.exists() else shutil.which("gemflow")
    if found is None:
        raise BenchError("no gemflow executable: run with the venv's python")
    return Path(found)


class EmulatorProcess:
    """``gemflow emulator --port 0`` in a subprocess, logging requests to a JSON-lines file.

    ``extra_args`` go on its command line too (``["--faults", "429=0.1"]``, say). A context
    manager: the process is stopped (terminate, then kill) however the block ends.
    """

    def __init__(
        self,
        gemflow: Path,
        folder: Path,
        *,
        latency: float = 0.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / "requests.jsonl"
        self._err_path = folder / "emulator.err"
        self._cmd = [
            str(gemflow), "emulator", "--port", "0", "--scale", str(SCALE),
            "--latency", str(latency), "--log", str(self.log_path), *extra_args,
        ]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> EmulatorProcess:
        with self._err_path.open("wb") as err:
            self._proc = subprocess.Popen(self._cmd, stdout=subprocess.DEVNULL, stderr=err)
        try:
            self.url = self._wait_for_url()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_for_url(self) -> str:
        assert self._proc is not None
        deadline = time.monotonic() + EMULATOR_START_TIMEOUT
        while time.monotonic() < deadline:
            text = self._err_path.read_text(encoding="utf-8", errors="replace")
            if match := re.search(r"listening on (http://\S+)", text):
                return match.group(1)
            if self._proc.poll() is not None:
                raise BenchError(f"the emulator exited with {self._proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise BenchError(f"the emulator did not start within {EMULATOR_START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def requests(self) -> list[dict[str, Any]]:
        """Every request logged so far (the log gets a line as each request finishes)."""
        if not self.log_path.exists():
            return []
        with self.log_path.open(encoding="utf-8") as log:
            return [json.loads(line) for line in log if line.strip()]

    def api_calls(self) -> int:
        """Image requests so far (not counting model lookups and the like)."""
        return sum(r["endpoint"] in IMAGE_ENDPOINTS for r in self.requests())


# --------------------------------------------------------------------------- the benchmarks


def runs_for(size: int) -> int:
    return 5 if size <= 2_000 else 3


def bench_size(size: int, gemflow: Path, emulator: EmulatorProcess, root: Path) -> list[Figure]:
    """Build a ``size``-step workflow once, then time its no-op rerun and its dry run."""
    steps = mixed_steps(size)
    folder = root / f"steps-{size}"
    workflow = write_workflow(folder, steps)
    env = gemflow_env(folder / "cache")
    label = f"{size:,} steps"
    api_steps = api_step_count(steps)
    print(f"[{label}] building ({api_steps} API steps, --jobs {BUILD_JOBS}) …", flush=True)

    calls_before = emulator.api_calls()
    build_cmd = [gemflow, "run", workflow, "--base-url", emulator.url, "--jobs", str(BUILD_JOBS)]
    build = run_checked(build_cmd, env, folder)
    calls = emulator.api_calls() - calls_before
    if calls != api_steps:
        raise BenchError(f"[{label}] the build made {calls} API calls for {api_steps} API steps")
    noop_cmd: list[str | Path] = [gemflow, "run", workflow, "--base-url", emulator.url]
    # The dry run plans against the same endpoint: the service is part of every API step's key.
    dry_cmd = [*noop_cmd, "--dry-run"]
    verify_noop(noop_cmd, env, folder, size)

    logged = len(emulator.requests())

    def log_did_not_grow() -> None:
        if (grown := len(emulator.requests()) - logged) != 0:
            raise BenchError(f"[{label}] a no-op rerun or dry run sent {grown} API requests")

    runs = runs_for(size)
    print(f"[{label}] timing no-op rerun and dry run (best of {runs}) …", flush=True)
    noop = time_command(noop_cmd, env, folder, runs=runs, check=log_did_not_grow)
    dry = time_command(dry_cmd, env, folder, runs=runs, check=log_did_not_grow)
    build_figure = Figure(
        f"build, {label} (--jobs {BUILD_JOBS})",
        build.seconds,
        peak_rss_mb=build.max_rss_kb / 1024,
        note=f"{calls:,} API calls; {workflow.stat().st_size / 1024:.0f} KiB of YAML; no target",
    )
    return [
        build_figure,
        _timed(f"no-op rerun, {label}", noop, limit=NOOP_TARGETS.get(size), note="0 API calls"),
        _timed(f"dry run, {label}", dry, note="0 API calls"),
    ]


def verify_noop(cmd: list[str | Path], env: dict[str, str], cwd: Path, size: int) -> None:
    """The rerun is a real no-op: every step cached (not restored, not run)."""
    result = subprocess.run(
        [str(c) for c in [*cmd, "--json"]], env=env, cwd=cwd, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise BenchError(f"the verifying rerun exited with {result.returncode}:\n{result.stderr}")
    totals = json.loads(result.stdout)["totals"]
    if totals["api_calls"] or totals["steps"]["cached"] != size:
        raise BenchError(f"the rerun after the build is not a no-op: {totals}")


def bench_help(gemflow: Path, root: Path) -> Figure:
    timing = time_command([gemflow, "--help"], dict(os.environ), root, runs=HELP_RUNS)
    return _timed("gemflow --help", timing, limit=HELP_TARGET)


def bench_concurrency(gemflow: Path, root: Path, *, steps: int, jobs: int) -> Figure:
    """``steps`` independent 1-second API calls at ``--jobs``: how close to perfect overlap."""
    latency = 1.0
    folder = root / f"concurrency-{steps}"
    workflow = write_workflow(folder, independent_steps(steps))
    ideal = math.ceil(steps / jobs) * latency
    print(f"[concurrency] {steps} × {latency:.0f} s calls at --jobs {jobs} …", flush=True)
    with EmulatorProcess(gemflow, folder / "emulator", latency=latency) as emulator:
        cmd = [gemflow, "run", workflow, "--base-url", emulator.url, "--jobs", str(jobs)]
        sample = run_checked(cmd, gemflow_env(folder / "cache"), folder)
        calls = emulator.api_calls()
    if calls != steps:
        raise BenchError(f"[concurrency] {calls} API calls for {steps} steps")
    ratio = sample.seconds / ideal
    return Figure(
        f"{steps} × 1 s calls, --jobs {jobs}",
        sample.seconds,
        peak_rss_mb=sample.max_rss_kb / 1024,
        limit=CONCURRENCY_TARGET * ideal,
        target=f"≤ {CONCURRENCY_TARGET} × {ideal:.0f} s",
        note=f"{ratio:.3f} × ideal {ideal:.0f} s",
        extra={"ideal_seconds": ideal, "ratio": ratio, "jobs": jobs, "steps": steps},
    )


def _timed(name: str, timing: Timing, *, limit: float | None = None, note: str = "") -> Figure:
    return Figure(
        name,
        timing.best,
        median=timing.median,
        runs=len(timing.seconds),
        samples=timing.seconds,
        peak_rss_mb=timing.peak_rss_kb / 1024,
        limit=limit,
        target=f"< {limit:g} s" if limit is not None else "",
        note=note,
    )


# --------------------------------------------------------------------------- report


def format_table(figures: Sequence[Figure]) -> str:
    header = ("figure", "best", "median", "runs", "peak RSS", "target", "", "notes")
    rows = [header] + [
        (
            f.name,
            _seconds(f.seconds),
            _seconds(f.median) if f.median is not None else "",
            str(f.runs),
            f"{f.peak_rss_mb:.0f} MB" if f.peak_rss_mb is not None else "",
            f.target or "—",
            f.verdict,
            f.note,
        )
        for f in figures
    ]
    return align_table(rows, right={1, 2, 3, 4})


def align_table(rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> str:
    """``rows`` in aligned columns, the first row a header with a rule under it; the columns
    numbered in ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 2),  # other work on the machine skews figures
        "emulator_scale": SCALE,
    }


def git_commit() -> str | None:
    """The checked-out commit, ``+dirty`` when the working tree differs (read-only git calls)."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=here, capture_output=True)
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 1 else "")


def write_json(path: Path, figures: Sequence[Figure], about: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    results = [{**asdict(f), "verdict": f.verdict or None} for f in figures]
    path.write_text(json.dumps({**about, "results": results}, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1,000 steps and a 64-step concurrency check only"
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        help="workflow sizes in steps, comma-separated (default: 1000,10000; --quick: 1000)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp folder (workflows, caches) to profile"
    )
    return parser.parse_args(argv)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of step counts: {text!r}") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return sizes


def run_benchmarks(args: argparse.Namespace, root: Path, figures: list[Figure]) -> None:
    """Append each figure to ``figures`` as soon as it is measured (kept if a later part fails)."""
    gemflow = find_gemflow()
    compile_bytecode()
    sizes = args.sizes or ([1_000] if args.quick else list(DEFAULT_SIZES))
    with EmulatorProcess(gemflow, root / "emulator") as emulator:
        for size in sizes:
            figures += bench_size(size, gemflow, emulator, root)
    figures.append(bench_help(gemflow, root))
    steps, jobs = (64, 8) if args.quick else (256, 32)
    figures.append(bench_concurrency(gemflow, root, steps=steps, jobs=jobs))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    about = machine()
    figures: list[Figure] = []
    status = 0
    root = Path(tempfile.mkdtemp(prefix="gemflow-bench-"))
    try:
        run_benchmarks(args, root, figures)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        status = 130
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if figures:
        print(f"\ngemflow benchmark · {about['commit']} · {about['cpus']} CPUs", end="")
        print(f" (load {about['load_average']} at start) · Python {about['python']}", end="")
        print("" if status == 0 else " · INCOMPLETE")
        print(format_table(figures))
        write_json(args.out, figures, {**about, "quick": args.quick, "complete": status == 0})
        print(f"\nwrote {args.out}")
    if args.keep:
        print(f"kept the workflows and caches in {root}")
    return status


if __name__ == "__main__":
    sys.exit(main())
