"""gemflow's load drill (issue 4): a wide fan-out against an API that fails one request in five.
Nothing may be paid for twice, and nothing may be lost.

    python bench/drill.py                                # 500 steps, 20% faults, --jobs 16
    python bench/drill.py --steps 100 --fault-rate 0.5 --keep
    python bench/drill.py --disk-full --double-interrupt  # the failure drills instead (issue 13)

``--steps`` independent ``generate`` steps run as one ``gemflow run --jobs N --retries R --json``
subprocess against a ``gemflow emulator`` subprocess that answers ``--fault-rate`` of its
requests with 429 RESOURCE_EXHAUSTED or 503 UNAVAILABLE (half each, with RetryInfo asking for
``--retry-delay`` seconds) after ``--latency`` seconds. Then, from the emulator's request log, the
``--json`` summary and the cache, it checks that every step ran on exactly one successful response,
that every request sent was counted, that the outputs are the images a fault-free run makes, that
the cache holds every result and that a rerun sends nothing. It prints the checks and the figures
(faults injected, retries, calls wasted, wall time against a fault-free run and the ideal), and
writes them as JSON. It exits 1 if any check fails or something broke, 0 otherwise.

``--disk-full`` and ``--double-interrupt`` run the failure drills of ``bench/failures.py`` instead
(either or both): a disk that fills up during a run, and a run interrupted twice; each prints the
requests sent against the results kept. They take ``--steps``, ``--jobs``, ``--latency``,
``--limit`` and ``--keep``, with defaults of their own (200 steps, --jobs 8, 6 s a request).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import failures

from bench import (
    IMAGE_ENDPOINTS,
    BenchError,
    EmulatorProcess,
    align_table,
    compile_bytecode,
    find_gemflow,
    gemflow_env,
    independent_steps,
    machine,
    write_workflow,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "drill.json"
API_KEY = "drill-key"
PROMPT = "Drill {i}: a numbered tile"
FAULT_KINDS = ("429", "503")  # the injected faults: both retryable, both carry RetryInfo
RUN_TIMEOUT = 900.0  # seconds: a gemflow run that takes longer is stopped and the drill fails
# How gemflow tells of each retry on stderr ("g8: 503 UNAVAILABLE; retry 1/10 in 1.2 s").
RETRY_NOTICE = re.compile(r"; retry \d+/\d+ in (\d+(?:\.\d+)?) s")
SHOW = 3  # offending steps named in a failed check's detail

Steps = dict[str, dict[str, Any]]


class DrillError(BenchError):
    """Something broke before the checks could be made: the drill exits non-zero."""


# --------------------------------------------------------------------------- running


@dataclass
class Fanout:
    """One fan-out in a folder of its own: its workflow, its cache and its emulator's files."""

    folder: Path
    steps: Steps

    @property
    def workflow(self) -> Path:
        return self.folder / "bench.yaml"  # as bench.write_workflow names it

    @property
    def cache(self) -> Path:
        return self.folder / "cache"

    @classmethod
    def create(cls, folder: Path, steps: Steps) -> Fanout:
        write_workflow(folder, steps)
        return cls(folder, steps)


@dataclass(frozen=True)
class Run:
    """One finished ``gemflow run --json``: its wall time, exit code, summary and stderr."""

    seconds: float
    returncode: int
    summary: dict[str, Any]
    stderr: str

    @property
    def step_reports(self) -> dict[str, dict[str, Any]]:
        return {step["id"]: step for step in self.summary["steps"]}

    @property
    def totals(self) -> dict[str, Any]:
        return self.summary["totals"]

    @property
    def retry_waits(self) -> list[float]:
        """The wait before each retry, in seconds, as gemflow told it on stderr."""
        return [float(wait) for wait in RETRY_NOTICE.findall(self.stderr)]


def run_gemflow(
    gemflow: Path, fanout: Fanout, url: str, args: argparse.Namespace, name: str
) -> Run:
    """Run the fan-out's workflow against ``url``; stdout and stderr are kept as ``name``.out/.err
    in its folder. Raises DrillError when gemflow printed no summary (nothing was run)."""
    cmd = [
        str(gemflow), "run", str(fanout.workflow), "--base-url", url, "--jobs", str(args.jobs),
        "--retries", str(args.retries), "--json",
    ]  # fmt: skip
    out_path, err_path = fanout.folder / f"{name}.out", fanout.folder / f"{name}.err"
    env = gemflow_env(fanout.cache, api_key=API_KEY)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        returncode = wait_for(cmd, env, fanout.folder, out, err)
        seconds = time.perf_counter() - start
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    try:
        summary = json.loads(out_path.read_text(encoding="utf-8"))
    except ValueError:
        tail = "\n".join(stderr.splitlines()[-15:])
        raise DrillError(f"gemflow run ({name}) exited with {returncode}:\n{tail}") from None
    return Run(seconds, returncode, summary, stderr)


def wait_for(cmd: Sequence[str], env: dict[str, str], cwd: Path, out: Any, err: Any) -> int:
    """Run ``cmd`` to completion; on a timeout, Ctrl-C or any error its process group is killed.

    It gets a session of its own, so that Ctrl-C reaches the drill, which then ends it."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)
    try:
        return proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise DrillError(f"gemflow run did not finish within {RUN_TIMEOUT:.0f} s") from None
    except BaseException:
        kill_group(proc)
        raise


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def image_requests(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    """The generate requests logged so far (not model look-ups and the like)."""
    return [r for r in emulator.requests() if r["endpoint"] in IMAGE_ENDPOINTS]


def fault_args(args: argparse.Namespace) -> list[str]:
    """The emulator's options for ``--fault-rate``, split evenly between 429 and 503."""
    share = args.fault_rate / len(FAULT_KINDS)
    spec = ",".join(f"{kind}={share:g}" for kind in FAULT_KINDS)
    return ["--faults", spec, "--retry-delay", f"{args.retry_delay:g}", "--seed", str(args.seed)]


@dataclass(frozen=True)
class Snapshot:
    """What a run left on disk, taken before anything else can change it (a rerun against the
    faulty emulator would retry, and might mend, the steps that failed)."""

    outputs: dict[str, str | None]  # step id -> its output file's digest; None: no file
    stored: dict[str, str | None]  # step id -> the digest the store records for its key
    results: int  # step results in the cache
    calls: int  # single calls in the cache


def snapshot(fanout: Fanout, run: Run) -> Snapshot:
    from gemflow.cache.local import Store

    reports = run.summary["steps"]
    outputs = {step["id"]: file_digest(fanout.folder / step["output"]) for step in reports}
    with Store(fanout.cache) as store:
        metas = {step["id"]: store.meta(step["key"]) if step["key"] else None for step in reports}
        facts = store.info()
    stored = {step_id: meta["digest"] if meta else None for step_id, meta in metas.items()}
    return Snapshot(outputs, stored, facts["results"], facts["calls"])


def file_digest(path: Path) -> str | None:
    """``sha256:…`` of the file, as the store records digests; None if there is no file."""
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class Outcome:
    """Everything the checks and figures are made from."""

    steps: Steps
    first: Run  # the fan-out against the faulty emulator
    log: list[dict[str, Any]]  # its generate requests, as the emulator logged them
    left: Snapshot  # what it left on disk
    rerun: Run  # the same command again, straight after
    rerun_requests: int  # generate requests the rerun sent
    baseline: Run  # the same fan-out against an emulator without faults, fresh cache
    baseline_requests: int
    baseline_left: Snapshot


def run_drill(args: argparse.Namespace, root: Path) -> Outcome:
    gemflow = find_gemflow()
    compile_bytecode()
    steps = independent_steps(args.steps, prompt=PROMPT)
    faulty = Fanout.create(root / "faulty", steps)
    emulator_folder = faulty.folder / "emulator"
    extra = fault_args(args)
    with EmulatorProcess(gemflow, emulator_folder, latency=args.latency, extra_args=extra) as emu:
        progress(f"{args.steps} steps, {args.fault_rate:.0%} faults, --jobs {args.jobs} …")
        first = run_gemflow(gemflow, faulty, emu.url, args, "first")
        log = image_requests(emu)
        left = snapshot(faulty, first)
        progress("rerun (should send nothing) …")
        rerun = run_gemflow(gemflow, faulty, emu.url, args, "rerun")
        rerun_requests = len(image_requests(emu)) - len(log)
    clean = Fanout.create(root / "clean", steps)
    with EmulatorProcess(gemflow, clean.folder / "emulator", latency=args.latency) as emu:
        progress("the same fan-out without faults, for comparison …")
        baseline = run_gemflow(gemflow, clean, emu.url, args, "baseline")
        baseline_requests = len(image_requests(emu))
    return Outcome(
        steps=steps,
        first=first,
        log=log,
        left=left,
        rerun=rerun,
        rerun_requests=rerun_requests,
        baseline=baseline,
        baseline_requests=baseline_requests,
        baseline_left=snapshot(clean, baseline),
    )


def progress(message: str) -> None:
    print(f"[drill] {message}", flush=True)


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def checks(outcome: Outcome) -> list[Check]:
    steps = outcome.steps
    by_prompt = requests_by_prompt(outcome.log)
    return [
        check_all_ran("faulty run: every step ran", outcome.first, len(steps)),
        check_one_success(steps, by_prompt),
        check_only_injected_faults(outcome.log),
        check_calls_counted(steps, outcome.first, by_prompt),
        check_retries_told(outcome.first),
        check_outputs_stored(outcome.left),
        check_outputs_match(outcome.left, outcome.baseline_left),
        check_cache(outcome.left, len(steps)),
        check_rerun(outcome.rerun, outcome.rerun_requests, len(steps)),
        check_all_ran("fault-free run: every step ran", outcome.baseline, len(steps)),
        Check(
            "fault-free run: one request a step",
            outcome.baseline_requests == len(steps),
            f"{outcome.baseline_requests} requests for {len(steps)} steps",
        ),
    ]


def requests_by_prompt(log: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for request in log:
        grouped[request["prompt"]].append(request)
    return grouped


def check_all_ran(name: str, run: Run, count: int) -> Check:
    statuses = collections.Counter(step["status"] for step in run.summary["steps"])
    errors = [f"{s['id']}: {s['error']}" for s in run.summary["steps"] if s["error"]]
    ok = run.returncode == 0 and statuses == {"run": count}
    detail = f"exit {run.returncode}; " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    if errors:
        detail += f"; first error: {clip(errors[0])}"
    return Check(name, ok, detail)


def clip(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_one_success(steps: Steps, by_prompt: dict[str, list[dict[str, Any]]]) -> Check:
    """Each step's prompt got exactly one 200 answer, and no other prompt was sent."""
    successes = {p: sum(r["status"] == 200 for r in rs) for p, rs in by_prompt.items()}
    prompts = {body["prompt"]: step_id for step_id, body in steps.items()}
    wrong = [f"{prompts[p]}: {successes.get(p, 0)}" for p in prompts if successes.get(p, 0) != 1]
    strangers = sorted(set(by_prompt) - set(prompts))
    detail = f"{sum(successes.values())} successful responses for {len(steps)} steps"
    if wrong:
        detail += "; steps with ≠ 1: " + ", ".join(wrong[:SHOW])
    if strangers:
        detail += f"; {len(strangers)} prompts not in the workflow, e.g. {strangers[0]!r}"
    return Check("one successful response a step", not wrong and not strangers, detail)


def check_only_injected_faults(log: list[dict[str, Any]]) -> Check:
    """Every failed request failed with a fault the drill injected, and with that status."""
    failed = [r for r in log if r["status"] != 200]
    odd = [r for r in failed if r["fault"] not in FAULT_KINDS or r["status"] != int(r["fault"])]
    detail = f"{len(failed)} failed requests"
    if odd:
        detail += "; not injected: " + ", ".join(
            f"{r['status']} ({r['fault']})" for r in odd[:SHOW]
        )
    return Check("every failure an injected 429/503", not odd, detail)


def check_calls_counted(
    steps: Steps, run: Run, by_prompt: dict[str, list[dict[str, Any]]]
) -> Check:
    """A step's ``api_calls`` is every request sent for it: with its one success, faults + 1."""
    reports = run.step_reports
    wrong = []
    for step_id, body in steps.items():
        logged = len(by_prompt.get(body["prompt"], []))
        counted = reports[step_id]["api_calls"] if step_id in reports else None
        if counted != logged:
            wrong.append(f"{step_id}: counted {counted}, logged {logged}")
    detail = f"{run.totals['api_calls']} counted, {sum(map(len, by_prompt.values()))} logged"
    return Check("api_calls = requests logged", not wrong, "; ".join([detail, *wrong[:SHOW]]))


def check_retries_told(run: Run) -> Check:
    """gemflow told of every retry on stderr ("503 UNAVAILABLE; retry 1/10 in 0.7 s")."""
    told = len(run.retry_waits)
    retries = run.totals["api_calls"] - len(run.summary["steps"])
    return Check("every retry told on stderr", told == retries, f"{told} told, {retries} made")


def check_outputs_stored(left: Snapshot) -> Check:
    """Each output file exists and is byte for byte the result stored for its step's key."""
    wrong = [
        f"{step_id}: {'missing' if found is None else 'differs'}"
        for step_id, found in left.outputs.items()
        if found is None or found != left.stored[step_id]
    ]
    detail = f"{len(left.outputs) - len(wrong)} of {len(left.outputs)} match"
    return Check("outputs are the stored results", not wrong, "; ".join([detail, *wrong[:SHOW]]))


def check_outputs_match(left: Snapshot, clean: Snapshot) -> Check:
    """The emulator draws each image from its request and its take, and a 429 or 503 uses up no
    take: each step's prompt is answered once, with take 1, so the response a retried step
    finally got must be the very image the fault-free run got for the same step."""
    wrong = [
        step_id
        for step_id, found in left.outputs.items()
        if found is None or found != clean.outputs.get(step_id)
    ]
    detail = f"{len(left.outputs) - len(wrong)} of {len(left.outputs)} identical"
    if wrong:
        detail += "; differ or missing: " + ", ".join(wrong[:SHOW])
    return Check("outputs = the fault-free run's", not wrong, detail)


def check_cache(left: Snapshot, count: int) -> Check:
    detail = f"{left.results} step results, {left.calls} single calls"
    return Check(f"cache holds {count} step results", left.results == count, detail)


def check_rerun(rerun: Run, sent: int, count: int) -> Check:
    cached = rerun.totals["steps"]["cached"]
    ok = rerun.returncode == 0 and cached == count and rerun.totals["api_calls"] == 0 and sent == 0
    detail = f"exit {rerun.returncode}; {cached} cached; {rerun.totals['api_calls']} calls counted"
    return Check("rerun: all cached, 0 requests", ok, f"{detail}, {sent} logged")


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Figure:
    key: str  # its name in the JSON
    name: str
    value: float
    unit: str = ""  # "s" for seconds, "" for a count
    note: str = ""


def figures(outcome: Outcome, args: argparse.Namespace) -> list[Figure]:
    steps = len(outcome.steps)
    log = outcome.log
    faults = collections.Counter(r["fault"] for r in log if r["fault"])
    wasted = sum(r["status"] != 200 for r in log)
    calls = [step["api_calls"] for step in outcome.first.summary["steps"]]
    waits = outcome.first.retry_waits
    ideal = steps * args.latency / args.jobs
    first, baseline = outcome.first.seconds, outcome.baseline.seconds
    return [
        Figure("steps", "API steps", steps, note=f"--jobs {args.jobs}, --retries {args.retries}"),
        Figure("requests", "requests sent", len(log), note="generate requests in the log"),
        Figure("faults", "faults injected", sum(faults.values()), note=fault_note(faults, log)),
        Figure("retries", "retries made", sum(calls) - steps, note="Σ api_calls − steps"),
        Figure("wasted", "calls wasted", wasted, note="requests answered with an error, not 200"),
        Figure(
            "most_attempts",
            "most requests for a step",
            max(calls, default=0),
            note=f"--retries {args.retries} allows {args.retries + 1}",
        ),
        Figure(
            "mean_retry_wait",
            "mean wait before a retry",
            sum(waits) / len(waits) if waits else 0.0,
            "s",
            note=f"Σ {sum(waits):.1f} s, a --jobs slot each; RetryInfo asked {args.retry_delay:g} s",
        ),
        Figure("faulty_seconds", "wall time, faulty run", first, "s", note=ratio(first, ideal)),
        Figure("clean_seconds", "wall time, no faults", baseline, "s", note=ratio(baseline, ideal)),
        Figure(
            "ideal_seconds",
            "ideal wall time",
            ideal,
            "s",
            note=f"{steps} × {args.latency:g} s latency / {args.jobs} jobs",
        ),
        Figure("rerun_seconds", "wall time, rerun", outcome.rerun.seconds, "s", note="0 requests"),
    ]


def fault_note(faults: collections.Counter[str], log: list[dict[str, Any]]) -> str:
    kinds = ", ".join(f"{kind}: {faults[kind]}" for kind in sorted(faults))
    return f"{kinds} ({sum(faults.values()) / max(len(log), 1):.1%} of requests)"


def ratio(seconds: float, ideal: float) -> str:
    return f"{seconds / ideal:.2f} × ideal" if ideal else ""


# --------------------------------------------------------------------------- report


def format_report(check_list: Sequence[Check], figure_list: Sequence[Figure]) -> str:
    check_rows = [("check", "", "detail")]
    check_rows += [(c.name, "PASS" if c.ok else "FAIL", c.detail) for c in check_list]
    figure_rows = [("figure", "value", "notes")]
    figure_rows += [(f.name, show_value(f), f.note) for f in figure_list]
    return align_table(figure_rows, right={1}) + "\n\n" + align_table(check_rows)


def show_value(figure: Figure) -> str:
    if figure.unit == "s":
        return f"{figure.value:.2f} s" if figure.value < 10 else f"{figure.value:.1f} s"
    return f"{figure.value:,.0f}"


def write_json(
    path: Path,
    about: dict[str, Any],
    args: argparse.Namespace,
    check_list: Sequence[Check],
    figure_list: Sequence[Figure],
) -> None:
    left_out = ("out", "keep", "disk_full", "double_interrupt", "limit")  # not the load drill's
    settings = {name: value for name, value in vars(args).items() if name not in left_out}
    document = {
        **about,
        "settings": settings,
        "ok": all(c.ok for c in check_list),
        "checks": [asdict(c) for c in check_list],
        "figures": {f.key: round(f.value, 3) for f in figure_list},
        "notes": {f.key: f.note for f in figure_list if f.note},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add(
        "--steps",
        type=_at_least(1),
        help="API steps in the fan-out (default: 500; failure drills: 200)",
    )
    add("--jobs", type=_at_least(1), help="gemflow run --jobs (default: 16; failure drills: 8)")
    add("--retries", type=_at_least(0), default=10, help="gemflow run --retries (default: 10)")
    add("--fault-rate", type=_rate, default=0.2, help="share of requests failed (default: 0.2)")
    add(
        "--latency", type=_seconds, help="seconds per request (default: 0.2; --double-interrupt: 6)"
    )
    add("--retry-delay", type=_seconds, default=0.2, help="RetryInfo's delay (default: 0.2)")
    add("--seed", type=int, default=1, help="seed for the emulator's fault draws (default: 1)")
    add("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    add("--keep", action="store_true", help="keep the temp folder (workflows, logs, caches)")
    add("--disk-full", action="store_true", help="instead: a disk that fills up during a run")
    add("--double-interrupt", action="store_true", help="instead: a run interrupted twice")
    add("--limit", type=_at_least(1), default=failures.DEFAULTS["limit"],
        help="--disk-full: the file-size limit, bytes (default: 2,000,000)")  # fmt: skip
    args = parser.parse_args(argv)
    defaults = failures.DEFAULTS if failure_drills(args) else LOAD_DEFAULTS
    for name in ("steps", "jobs", "latency"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    return args


LOAD_DEFAULTS = {"steps": 500, "jobs": 16, "latency": 0.2}


def failure_drills(args: argparse.Namespace) -> list[str]:
    """The drills of bench/failures.py asked for (``--disk-full``, ``--double-interrupt``)."""
    return [name for name in failures.DRILLS if getattr(args, name.replace("-", "_"))]


def _at_least(low: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value:g}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value:g}")
    return value


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM ends the drill like Ctrl-C: through every ``finally``."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if chosen := failure_drills(args):
        try:
            with sigterm_as_interrupt():
                return failures.run_drills(chosen, args)
        except KeyboardInterrupt:
            print("drill: interrupted", file=sys.stderr)
            return 130
    about = machine()
    root = Path(tempfile.mkdtemp(prefix="gemflow-drill-"))
    started = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            outcome = run_drill(args, root)
            check_list, figure_list = checks(outcome), figures(outcome, args)
    except BenchError as exc:
        print(f"drill: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("drill: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept the workflows, logs and caches in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    ok = all(c.ok for c in check_list)
    print(f"\ngemflow load drill · {about['commit']} · {about['cpus']} CPUs", end="")
    print(f" (load {about['load_average']} at start) · {time.perf_counter() - started:.0f} s")
    print(format_report(check_list, figure_list))
    write_json(args.out, about, args, check_list, figure_list)
    failed = sum(not c.ok for c in check_list)
    verdict = "nothing paid twice, nothing lost" if ok else f"{failed} of {len(check_list)} checks"
    print(f"\n{'PASS' if ok else 'FAIL'}: {verdict}")
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
