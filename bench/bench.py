"""gemflow's benchmark: how fast a no-op rerun, a dry run and ``--help`` are, side by side with
doit, and how a first build of 256 one-second API calls compares with the bare google-genai client.

    python bench/bench.py                    # 1,000 and 10,000 steps, a 10,000-instance matrix,
                                             # 256 × 1 s calls at --jobs 32, doit and the bare client
    python bench/bench.py --quick            # 1,000 steps, a 100-instance matrix, 64 × 1 s at --jobs 8
    python bench/bench.py --sizes 2000 --keep --out /tmp/bench.json

Everything is measured as whole processes (``gemflow``, ``doit``, the bare client) against
``gemflow emulator`` on loopback, so imports, loading, the cache and the lock file all count, as
they do for a user. Commands compared with each other are timed in alternation (A B C, B C A, …)
after one warm-up each; the verdicts compare medians; peak RSS is per process, from ``os.wait4``.
It reports; it is not a test: MISS still exits 0. It exits non-zero only when something broke,
above all when a no-op rerun or a dry run made an API call or a peer's no-op did any work.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
import tomllib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any

MODEL = "gemini-3.1-flash-image"
SCALE = 0.0625  # emulator images are 1/16 of their real side: rendering must not dominate
BUILD_JOBS = 8
DEFAULT_SIZES = (1_000, 10_000)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"
DEFAULT_PEERS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gemflow-bench"
BARE_CLIENT = Path(__file__).resolve().parent / "bare_client.py"
DOIT_VERSION = "0.37.0"  # pinned: the peer's figures must not move with its releases
NOOP_RUNS = 5  # timed runs of each no-op and dry run, after 1 warm-up (the issue: medians of ≥ 5)
HELP_RUNS = 10
MATRIX_SHAPE = (4, 50, 50)  # models × styles × subjects: 10,000 instances of one step
QUICK_MATRIX_SHAPE = (4, 5, 5)
EMULATOR_START_TIMEOUT = 30.0
IMAGE_ENDPOINTS = ("generateContent", "streamGenerateContent")

# Targets on the reference machine (2 cores), from issue 11. Verdicts compare medians.
NOOP_TARGETS = {10_000: 1.0}  # seconds a no-op rerun may take, by workflow size
NOOP_PEER_TARGETS = {1_000: 1.0}  # gemflow's no-op / doit's no-op of the same graph, by size
DRY_RUN_TARGETS = {10_000: 1.2}  # seconds, by workflow size
MATRIX_NOOP_TARGETS = {10_000: 1.0}  # seconds, by instances of the one matrix step
MATRIX_DRY_RUN_TARGETS = {10_000: 1.2}
RSS_TARGETS = {10_000: 150.0}  # MB, the peak of the no-op reruns and dry runs, by size
GROWTH_TARGET = 1.0  # gemflow's no-op time per extra step / doit's
HELP_TARGET = 0.2
FIRST_BUILD_TARGET = 1.03  # gemflow / the bare google-genai client, both at the same --jobs


class BenchError(Exception):
    """Something broke (as opposed to a target being missed): the benchmark exits non-zero."""


# --------------------------------------------------------------------------- figures


@dataclass
class Figure:
    """One line of the report: a figure, what it should be at most, and notes.

    ``value`` is the best run (or a figure made from the best runs); ``median`` the median run.
    The verdict compares the median with ``limit`` (the value when there is no median).
    """

    name: str
    value: float | None  # None: not measured (a peer that is not available)
    median: float | None = None
    unit: str = "s"  # "s", "ms" (per step) or "MB"
    runs: int = 1  # 0: a figure made from others (a ratio, a growth)
    samples: list[float] = field(default_factory=list)  # every timed run, in order
    peak_rss_mb: float | None = None
    limit: float | None = None  # in ``unit``; None: reported, no target
    target: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def judged(self) -> float | None:
        return self.median if self.median is not None else self.value

    @property
    def verdict(self) -> str:
        if self.limit is None or self.judged is None:
            return ""
        return "PASS" if self.judged <= self.limit else "MISS"


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


_MEDIA = ("ink", "oil", "pastel", "pixel", "clay", "neon", "paper", "glass", "chalk", "wood")
_MOODS = ("calm", "bold", "misty", "bright", "noir")
_THINGS = (
    "lighthouse",
    "bicycle",
    "boat",
    "fox",
    "ramen",
    "cactus",
    "teapot",
    "owl",
    "tram",
    "kite",
)
_PLACES = ("harbour", "desert", "forest", "rooftop", "market")


def matrix_steps(models: int, styles: int, subjects: int) -> dict[str, dict[str, Any]]:
    """One ``generate`` step whose matrix makes ``models × styles × subjects`` instances, every one
    a distinct request: the first ``models`` image models gemflow knows (a parameter of the kind),
    and a style and a subject substituted into the prompt (values of the matrix alone)."""
    known = image_models()
    style_values = [f"{a}-{b}" for a, b in itertools.product(_MEDIA, _MOODS)]
    subject_values = [f"{a}-{b}" for a, b in itertools.product(_THINGS, _PLACES)]
    if models > len(known) or styles > len(style_values) or subjects > len(subject_values):
        raise BenchError(f"no matrix of {models} × {styles} × {subjects}: too many values")
    matrix = {
        "model": known[:models],
        "style": style_values[:styles],
        "subject": subject_values[:subjects],
    }
    prompt = "A ${matrix.subject}, drawn in ${matrix.style} style"
    return {"sweep": {"kind": "generate", "prompt": prompt, "matrix": matrix}}


def image_models() -> list[str]:
    """The image models in gemflow's model table, in its order (the emulator accepts them all)."""
    text = resources.files("gemflow").joinpath("data/models.toml").read_text(encoding="utf-8")
    return list(tomllib.loads(text)["models"])


# doit's side of the comparison. The graph is a literal, as a workflow file is; each task reads
# what it depends on and writes one file, as a step does (gemflow's steps also call an API or
# Pillow, which a no-op never reaches).
DODO = '''\
"""doit's mirror of a gemflow benchmark workflow (written by bench/bench.py): one file task per step."""

import hashlib
from pathlib import Path

# (task, file_dep, target). file_dep: the step's parameters, then the outputs of the steps it uses.
TASKS = [
@TASKS@]


def write(dependencies, targets):
    digest = hashlib.sha256()
    for path in sorted(dependencies):
        digest.update(Path(path).read_bytes())
    target = Path(targets[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(digest.digest())


def task_steps():
    for name, file_dep, target in TASKS:
        yield {"basename": name, "actions": [write], "file_dep": file_dep, "targets": [target]}
'''


def write_dodo(folder: Path, steps: dict[str, dict[str, Any]]) -> Path:
    """doit's ``dodo.py`` for ``steps``: one task per step, with the step's edges (its ``images``
    or ``image``) as ``file_dep`` on those tasks' targets. What a gemflow step's key holds besides
    its inputs (kind, prompt, width, …) goes into a small parameters file per task, also a
    ``file_dep``, so that, as in gemflow, editing a step makes it (and what uses it) out of date."""
    outputs = {step_id: body.get("output", f"out/{step_id}.png") for step_id, body in steps.items()}
    (folder / "params").mkdir(parents=True, exist_ok=True)
    rows = []
    for step_id, body in steps.items():
        uses = body.get("images") or ([body["image"]] if "image" in body else [])
        params = {k: v for k, v in body.items() if k not in ("images", "image", "output")}
        params_path = f"params/{step_id}.json"
        (folder / params_path).write_text(json.dumps(params, sort_keys=True), encoding="utf-8")
        task = (step_id, [params_path, *(outputs[used] for used in uses)], outputs[step_id])
        rows.append(f"    {task!r},\n")
    path = folder / "dodo.py"
    path.write_text(DODO.replace("@TASKS@", "".join(rows)), encoding="utf-8")
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


@dataclass(frozen=True)
class Command:
    """A command to time: its argv, environment and folder, and a check to run after each run
    (it raises ``BenchError`` when the run did something it must not)."""

    argv: Sequence[str | Path]
    env: dict[str, str]
    cwd: Path
    check: Callable[[], None] = lambda: None


def time_alternating(commands: Sequence[Command], *, runs: int, warmup: int = 1) -> list[Timing]:
    """Each command's timing, the commands run in turn: ``warmup`` untimed rounds, then ``runs``
    timed ones, each round starting one command later (A B C, B C A, C A B, …), so that noise on
    the machine and the order of runs fall on every command alike."""
    samples: list[list[Sample]] = [[] for _ in commands]
    for round_ in range(warmup + runs):
        shift = round_ % len(commands)
        for index in [*range(shift, len(commands)), *range(shift)]:
            command = commands[index]
            sample = run_checked(command.argv, command.env, command.cwd)
            command.check()
            if round_ >= warmup:
                samples[index].append(sample)
    return [
        Timing([s.seconds for s in group], max(s.max_rss_kb for s in group)) for group in samples
    ]


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
    (timing,) = time_alternating([Command(cmd, env, cwd, check)], runs=runs, warmup=warmup)
    return timing


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


# --------------------------------------------------------------------------- peers

# Prints the first dbm module that imports: doit's default backend is "dbm", which falls back to
# dbm.dumb (pure Python, Python's last resort) on an interpreter built without gdbm or ndbm.
_FAST_DBM = """\
for name in ("dbm.gnu", "dbm.ndbm"):
    try:
        __import__(name)
    except ImportError:
        continue
    print(name)
    break
"""


@dataclass(frozen=True)
class Doit:
    """doit in a venv of its own: the executable, and the arguments every ``doit`` run gets."""

    executable: Path
    python: Path
    args: tuple[str, ...]
    backend: str  # which store, and why: for the notes

    def argv(self, *more: str) -> list[str | Path]:
        return [self.executable, *self.args, *more]


def prepare_doit(peers: Path) -> Doit | str:
    """doit, installed once into ``peers/doit-venv`` (with the benchmark's own Python, so that both
    tools run on the same interpreter) and reused by later runs; or why it is not available (no
    network on the first run, say)."""
    venv = peers / "doit-venv"
    python, executable = venv / "bin" / "python", venv / "bin" / "doit"
    stamp = venv / "gemflow-bench.txt"  # written last: a venv without it is half made
    wanted = f"doit=={DOIT_VERSION}, Python {platform.python_version()}\n"
    try:
        made = stamp.read_text(encoding="utf-8") == wanted and executable.exists()
    except OSError:
        made = False
    if not made:
        print(f"[doit] installing doit=={DOIT_VERSION} into {venv} (once) …", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        pip = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--retries", "1"]
        steps: list[list[str | Path]] = [
            [sys.executable, "-m", "venv", venv],
            [python, *pip, "--timeout", "20", f"doit=={DOIT_VERSION}"],
        ]
        for step in steps:
            try:
                subprocess.run(
                    list(map(str, step)), check=True, capture_output=True, text=True, timeout=600
                )
            except subprocess.CalledProcessError as exc:
                lines = [line for line in exc.stderr.splitlines() if line.strip()]
                why = lines[-1].strip() if lines else f"exit {exc.returncode}"
            except (OSError, subprocess.TimeoutExpired) as exc:
                why = str(exc)
            else:
                continue
            shutil.rmtree(venv, ignore_errors=True)
            return f"could not install doit=={DOIT_VERSION} into {venv}: {why}"
        stamp.write_text(wanted, encoding="utf-8")
    probe = subprocess.run([python, "-c", _FAST_DBM], capture_output=True, text=True)
    if probe.returncode == 0 and probe.stdout.strip():
        return Doit(executable, python, (), f"doit's default backend (dbm: {probe.stdout.strip()})")
    return Doit(
        executable,
        python,
        ("--backend", "json"),
        "json backend: doit's default (dbm) would be dbm.dumb on this Python (no gdbm, no ndbm)",
    )


# --------------------------------------------------------------------------- the benchmarks


@dataclass(frozen=True)
class Workload:
    """A workflow built once, and its no-op rerun and dry run, ready to time."""

    build: Figure
    noop: Command
    dry: Command


def build_workload(
    label: str,
    folder: Path,
    steps: dict[str, dict[str, Any]],
    *,
    instances: int,
    gemflow: Path,
    emulator: EmulatorProcess,
) -> Workload:
    """Write ``steps`` as a workflow, build it (checking one API call per API instance), check
    that a rerun is a no-op, and return its rerun and dry run, each checked never to call the API."""
    workflow = write_workflow(folder, steps)
    env = gemflow_env(folder / "cache")
    api_calls = api_instance_count(steps)
    print(f"[{label}] building ({api_calls:,} API calls, --jobs {BUILD_JOBS}) …", flush=True)
    calls_before = emulator.api_calls()
    noop_cmd: list[str | Path] = [gemflow, "run", workflow, "--base-url", emulator.url]
    build = run_checked([*noop_cmd, "--jobs", str(BUILD_JOBS)], env, folder)
    calls = emulator.api_calls() - calls_before
    if calls != api_calls:
        raise BenchError(f"[{label}] the build made {calls} API calls, not {api_calls}")
    verify_noop(noop_cmd, env, folder, instances)
    logged = len(emulator.requests())

    def log_did_not_grow() -> None:
        if (grown := len(emulator.requests()) - logged) != 0:
            raise BenchError(f"[{label}] a no-op rerun or dry run sent {grown} API requests")

    build_figure = Figure(
        f"build, {label} (--jobs {BUILD_JOBS})",
        build.seconds,
        peak_rss_mb=build.max_rss_kb / 1024,
        note=f"{calls:,} API calls; {_size(workflow.stat().st_size)} of YAML; no target",
    )
    # The dry run plans against the same endpoint: the service is part of every API step's key.
    return Workload(
        build_figure,
        Command(noop_cmd, env, folder, log_did_not_grow),
        Command([*noop_cmd, "--dry-run"], env, folder, log_did_not_grow),
    )


def _size(size: int) -> str:
    return f"{size / 1024:.0f} KiB" if size >= 10_240 else f"{size:,} bytes"


def api_instance_count(steps: dict[str, dict[str, Any]]) -> int:
    """API calls a build of ``steps`` makes: one per instance of each API step."""
    return sum(
        math.prod(len(values) for values in body.get("matrix", {}).values())
        for body in steps.values()
        if body["kind"] in ("generate", "edit")
    )


def bench_size(
    size: int,
    gemflow: Path,
    emulator: EmulatorProcess,
    root: Path,
    doit: Doit | str,
    noops: dict[tuple[str, int], Timing],
) -> list[Figure]:
    """Build a ``size``-step workflow and doit's mirror of it once, then time gemflow's no-op
    rerun, its dry run and doit's no-op in alternation. The no-op timings go into ``noops``, keyed
    by tool and size, for the growth figures."""
    steps = mixed_steps(size)
    label = f"{size:,} steps"
    work = build_workload(
        label, root / f"steps-{size}", steps, instances=size, gemflow=gemflow, emulator=emulator
    )
    unstamped = dataclasses.replace(work.noop, env={**work.noop.env, "GEMFLOW_NO_STAMP": "1"})
    commands = [work.noop, work.dry, unstamped]
    doit_note = ""
    if isinstance(doit, Doit):
        doit_build, doit_noop = build_doit(doit, steps, root / f"doit-{size}", label)
        commands.append(doit_noop)
        doit_note = f"built in {_seconds(doit_build.seconds)}; 0 tasks run"
    what = "no-op rerun, dry run, unstamped no-op" + (", doit's no-op" if len(commands) > 3 else "")
    print(f"[{label}] timing {what} in turn (1 + {NOOP_RUNS} rounds) …", flush=True)
    noop, dry, full, *peer = time_alternating(commands, runs=NOOP_RUNS)
    noops["gemflow", size] = noop
    noop_limit = NOOP_TARGETS.get(size)
    noop_figure = _timed(f"no-op rerun, {label}", noop, limit=noop_limit, note="0 API calls")
    if peer:
        noops["doit", size] = peer[0]
        doit_figure = _timed(f"doit no-op, {size:,} file tasks", peer[0], note=doit_note)
    else:
        doit_figure = Figure(f"doit no-op, {size:,} file tasks", None, note="not available (above)")
    peer_limit = NOOP_PEER_TARGETS.get(size)
    figures = [
        work.build,
        noop_figure,
        doit_figure,
        ratio_figure(f"no-op rerun, {label}: gemflow / doit", noop_figure, doit_figure, peer_limit),
        _timed(f"dry run, {label}", dry, limit=DRY_RUN_TARGETS.get(size), note="0 API calls"),
        _timed(
            f"no-op rerun, {label}, decided step by step",
            full,
            note="GEMFLOW_NO_STAMP=1: what a run with no stamp to replay does; no target",
        ),
    ]
    if size in RSS_TARGETS:
        figures.append(rss_figure(label, noop, dry, work.build, RSS_TARGETS[size]))
    return figures


def bench_matrix(
    shape: tuple[int, int, int], gemflow: Path, emulator: EmulatorProcess, root: Path
) -> list[Figure]:
    """One ``generate`` step with a ``models × styles × subjects`` matrix: build it once, then
    time its no-op rerun and its dry run in alternation."""
    instances = math.prod(shape)
    label = f"{' × '.join(map(str, shape))} matrix ({instances:,} instances)"
    work = build_workload(
        label,
        root / f"matrix-{instances}",
        matrix_steps(*shape),
        instances=instances,
        gemflow=gemflow,
        emulator=emulator,
    )
    print(f"[{label}] timing no-op rerun, dry run (1 + {NOOP_RUNS} rounds) …", flush=True)
    noop, dry = time_alternating([work.noop, work.dry], runs=NOOP_RUNS)
    note = "one step; 0 API calls"
    figures = [
        work.build,
        _timed(f"no-op rerun, {label}", noop, limit=MATRIX_NOOP_TARGETS.get(instances), note=note),
        _timed(f"dry run, {label}", dry, limit=MATRIX_DRY_RUN_TARGETS.get(instances), note=note),
    ]
    if instances in RSS_TARGETS:
        figures.append(rss_figure(label, noop, dry, work.build, RSS_TARGETS[instances]))
    return figures


def build_doit(
    doit: Doit, steps: dict[str, dict[str, Any]], folder: Path, label: str
) -> tuple[Sample, Command]:
    """Write doit's mirror of ``steps``, build it once and check that a rerun runs no task; the
    build, and doit's no-op rerun as a command to time, checked never to rewrite a target."""
    folder.mkdir(parents=True, exist_ok=True)
    dodo = write_dodo(folder, steps)
    # A dodo.py is imported, so any machine that writes bytecode has its .pyc from the first run
    # on; write it here as well, where PYTHONDONTWRITEBYTECODE may be set (see compile_bytecode).
    subprocess.run(
        [str(doit.python), "-m", "compileall", "-q", str(dodo)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    env = dict(os.environ)
    print(f"[{label}] building doit's mirror ({len(steps):,} file tasks) …", flush=True)
    build = run_checked(doit.argv(), env, folder)
    result = subprocess.run(
        list(map(str, doit.argv())), env=env, cwd=folder, capture_output=True, text=True
    )
    # doit reports each task it skips as up to date with "-- name", each it runs with ". name".
    lines = result.stdout.splitlines()
    skipped = sum(line.startswith("-- ") for line in lines)
    if result.returncode != 0 or skipped != len(steps) or len(lines) != len(steps):
        raise BenchError(
            f"[{label}] doit's rerun after its build is not a no-op (exit {result.returncode}, "
            f"{skipped} of {len(steps)} tasks up to date):\n{result.stderr[-2000:]}"
        )
    targets = folder / "out"
    written = _mtimes(targets)

    def nothing_rewritten() -> None:
        if _mtimes(targets) != written:
            raise BenchError(f"[{label}] a doit no-op rerun rewrote a target")

    return build, Command(doit.argv(), env, folder, nothing_rewritten)


def _mtimes(folder: Path) -> dict[str, int]:
    with os.scandir(folder) as entries:
        return {entry.name: entry.stat().st_mtime_ns for entry in entries}


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


def growth_figures(noops: dict[tuple[str, int], Timing]) -> list[Figure]:
    """What each extra step adds to a no-op rerun, between the smallest and the largest size:
    (t(large) − t(small)) / (large − small), in ms, from the best runs and from the medians."""
    sizes = sorted(size for tool, size in noops if tool == "gemflow")
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    label = f"no-op growth per extra step ({small:,} → {large:,})"
    how = f"(t({large:,}) − t({small:,})) / {large - small:,}"

    def growth(tool: str) -> Figure:
        if (tool, small) not in noops or (tool, large) not in noops:
            return Figure(f"{label}: {tool}", None, unit="ms", note=f"{tool} not available")
        first, last = noops[tool, small], noops[tool, large]
        per_step = 1000 / (large - small)
        return Figure(
            f"{label}: {tool}",
            (last.best - first.best) * per_step,
            median=(last.median - first.median) * per_step,
            unit="ms",
            runs=0,
            note=how,
        )

    gemflow, doit = growth("gemflow"), growth("doit")
    return [gemflow, doit, ratio_figure(f"{label}: gemflow / doit", gemflow, doit, GROWTH_TARGET)]


def rss_figure(label: str, noop: Timing, dry: Timing, build: Figure, limit: float) -> Figure:
    peak = max(noop.peak_rss_kb, dry.peak_rss_kb) / 1024
    return Figure(
        f"peak RSS, {label}",
        peak,
        unit="MB",
        runs=0,
        limit=limit,
        target=f"< {limit:g} MB",
        note=f"the higher of no-op rerun and dry run; the build: {build.peak_rss_mb:.0f} MB, no target",
    )


def ratio_figure(name: str, top: Figure, bottom: Figure, limit: float | None) -> Figure:
    """``top`` / ``bottom``: of the best runs, and of the medians (which the verdict compares)."""
    target = f"≤ {limit:.2f}" if limit is not None else ""

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b is not None and b > 0 else None

    value, median = ratio(top.value, bottom.value), ratio(top.median, bottom.median)
    if value is None or (median is None and bottom.median is not None):
        why = "not available" if bottom.value is None else "not positive"
        return Figure(
            name,
            None,
            unit="×",
            runs=0,
            target=target,
            note=f"no ratio: the peer's figure is {why}",
        )
    return Figure(name, value, median=median, unit="×", runs=0, limit=limit, target=target)


def bench_help(gemflow: Path, root: Path) -> Figure:
    timing = time_command([gemflow, "--help"], dict(os.environ), root, runs=HELP_RUNS)
    return _timed("gemflow --help", timing, limit=HELP_TARGET)


def bench_first_build(
    gemflow: Path, root: Path, *, steps: int, jobs: int, runs: int
) -> list[Figure]:
    """``steps`` independent 1-second API calls at ``jobs`` at once, from an empty cache: gemflow
    against the bare google-genai client (``bare_client.py``) sending the same requests from as
    many threads, in alternation, each run against a fresh emulator of its own."""
    latency = 1.0
    folder = root / f"first-build-{steps}"
    tasks = independent_steps(steps)
    prompts = folder / "prompts.json"
    folder.mkdir(parents=True, exist_ok=True)
    prompts.write_text(json.dumps({name: body["prompt"] for name, body in tasks.items()}))
    ideal = math.ceil(steps / jobs) * latency
    label = f"first build, {steps} × 1 s calls, --jobs {jobs}"
    print(f"[{label}] gemflow and the bare client in turn, {runs} × each …", flush=True)
    timings: dict[str, list[Sample]] = {"gemflow": [], "bare": []}
    reference: tuple[list[tuple[str, str, str]], dict[str, bytes]] | None = None
    cmd: list[str | Path]
    for run in range(runs):
        for tool in ("gemflow", "bare") if run % 2 == 0 else ("bare", "gemflow"):
            where = folder / f"{tool}-{run + 1}"
            with EmulatorProcess(gemflow, where / "emulator", latency=latency) as emulator:
                common: list[str | Path] = ["--base-url", emulator.url, "--jobs", str(jobs)]
                if tool == "gemflow":
                    cmd = [gemflow, "run", write_workflow(where, tasks), *common]
                else:
                    own: list[str | Path] = ["--prompts", prompts, "--model", MODEL]
                    cmd = [sys.executable, BARE_CLIENT, *common, *own, "--out", where / "out"]
                timings[tool].append(run_checked(cmd, gemflow_env(where / "cache"), where))
                sent = sorted(
                    (r["model"], r["prompt"], json.dumps(r["generation_config"], sort_keys=True))
                    for r in emulator.requests()
                    if r["endpoint"] in IMAGE_ENDPOINTS
                )
            images = {path.name: path.read_bytes() for path in (where / "out").iterdir()}
            if len(sent) != steps or len(images) != steps:
                raise BenchError(
                    f"[{label}] {tool}: {len(sent)} API calls, {len(images)} images for {steps} steps"
                )
            # Same requests, same answers (a fresh emulator draws each image from its request).
            if reference is None:
                reference = (sent, images)
            elif (sent, images) != reference:
                raise BenchError(
                    f"[{label}] {tool}, run {run + 1}: not the same requests or images as the first"
                )
    gemflow_run = _timed(
        f"{label}: gemflow",
        _timing(timings["gemflow"]),
        note=_ideal(timings["gemflow"], ideal),
    )
    bare = _timed(
        f"{label}: bare google-genai client",
        _timing(timings["bare"]),
        note=f"{jobs} threads, one client; {_ideal(timings['bare'], ideal)}",
    )
    ratio = ratio_figure(f"{label}: gemflow / bare client", gemflow_run, bare, FIRST_BUILD_TARGET)
    ratio.extra = {"ideal_seconds": ideal, "jobs": jobs, "steps": steps}
    return [gemflow_run, bare, ratio]


def _timing(samples: Sequence[Sample]) -> Timing:
    return Timing([s.seconds for s in samples], max(s.max_rss_kb for s in samples))


def _ideal(samples: Sequence[Sample], ideal: float) -> str:
    median = statistics.median(s.seconds for s in samples)
    return f"{median / ideal:.3f} × the ideal {ideal:.0f} s"


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
            _shown(f.value, f.unit),
            _shown(f.median, f.unit) if f.median is not None else "",
            str(f.runs) if f.value is not None and f.runs else "",
            f"{f.peak_rss_mb:.0f} MB" if f.peak_rss_mb is not None else "",
            f.target or "—",
            f.verdict,
            f.note,
        )
        for f in figures
    ]
    return align_table(rows, right={1, 2, 3, 4})


def _shown(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "s":
        return _seconds(value)
    if unit == "ms":
        return f"{value:.4f} ms"
    if unit == "×":
        return f"{value:.2f} ×"
    return f"{value:.0f} {unit}"


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
        "--quick",
        action="store_true",
        help="a smoke run: 1,000 steps, a 100-instance matrix, 64 × 1 s calls at --jobs 8",
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
    parser.add_argument(
        "--peers-dir",
        type=Path,
        default=DEFAULT_PEERS,
        help=f"where doit's venv is made once and kept (default: {DEFAULT_PEERS})",
    )
    parser.add_argument("--no-doit", action="store_true", help="leave doit out")
    return parser.parse_args(argv)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of step counts: {text!r}") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError("sizes must be at least 1")
    return sizes


def run_benchmarks(
    args: argparse.Namespace, root: Path, figures: list[Figure], about: dict[str, Any]
) -> None:
    """Append each figure to ``figures`` as soon as it is measured (kept if a later part fails),
    and what the peers are to ``about``."""
    gemflow = find_gemflow()
    compile_bytecode()
    doit = "left out (--no-doit)" if args.no_doit else prepare_doit(args.peers_dir)
    doit_text = f"doit {DOIT_VERSION}, {doit.backend}" if isinstance(doit, Doit) else doit
    about["peers"] = {
        "doit": doit_text if isinstance(doit, Doit) else f"not available: {doit}",
        "bare_client": f"google-genai {genai_version()}, {BARE_CLIENT.name}",
    }
    if not isinstance(doit, Doit):
        print(f"[doit] not available: {doit}", flush=True)
    sizes = args.sizes or ([1_000] if args.quick else list(DEFAULT_SIZES))
    noops: dict[tuple[str, int], Timing] = {}
    with EmulatorProcess(gemflow, root / "emulator") as emulator:
        for size in sizes:
            figures += bench_size(size, gemflow, emulator, root, doit, noops)
        figures += growth_figures(noops)
        shape = QUICK_MATRIX_SHAPE if args.quick else MATRIX_SHAPE
        figures += bench_matrix(shape, gemflow, emulator, root)
    figures.append(bench_help(gemflow, root))
    steps, jobs, runs = (64, 8, 1) if args.quick else (256, 32, 2)
    figures += bench_first_build(gemflow, root, steps=steps, jobs=jobs, runs=runs)


def genai_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("google-genai")
    except PackageNotFoundError:
        return "?"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    about = machine()
    figures: list[Figure] = []
    status = 0
    root = Path(tempfile.mkdtemp(prefix="gemflow-bench-"))
    try:
        run_benchmarks(args, root, figures, about)
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
        for peer, what in about.get("peers", {}).items():
            print(f"{peer}: {what}")
        print(format_table(figures))
        write_json(args.out, figures, {**about, "quick": args.quick, "complete": status == 0})
        print(f"\nwrote {args.out}")
    if args.keep:
        print(f"kept the workflows and caches in {root}")
    return status


if __name__ == "__main__":
    sys.exit(main())
