"""``gemflow run``: build a workflow."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from gemflow.cli.app import DEFAULT_WORKFLOW, EPILOG, cli
from gemflow.cli.report import after_run, check_run_option
from gemflow.clicktypes import FiniteFloat
from gemflow.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_STEP_FAILED, GemflowError, WorkflowError
from gemflow.interrupts import deferred


class _RunCommand(click.Command):
    """``--batch`` is a flag, so that ``--batch TARGET`` reads TARGET as a target, as it always
    has; a mode is written with '=' (``--batch=auto``) and read here."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        read: list[str] = []
        for index, arg in enumerate(args):
            if arg == "--":
                read += args[index:]
                break
            if not arg.startswith("--batch="):
                read.append(arg)
                continue
            mode = arg.partition("=")[2]
            if mode not in BATCH_MODES:
                raise click.UsageError(
                    f"{arg}: --batch batches every request, --batch=auto only groups of "
                    "--batch-min requests or more",
                    ctx,
                )
            read += ["--batch", "--batch-mode", mode]
        return super().parse_args(ctx, read)


BATCH_MODES = ("all", "auto")


@cli.command(cls=_RunCommand, epilog=EPILOG)
@click.argument("names", nargs=-1, metavar="[WORKFLOW]... [TARGET]...")
@click.option(
    "-n", "--dry-run", is_flag=True, help="Say what would run, why, and what it would cost."
)
@click.option(
    "-f",
    "--force",
    "force",
    multiple=True,
    metavar="STEP",
    help="Run STEP again even if cached (repeatable); dependents follow if it changes.",
)
@click.option("--force-all", is_flag=True, help="Run every selected step again.")
@click.option(
    "--retry-refused",
    is_flag=True,
    help="Ask again where the model refused last time (refusals are cached answers).",
)
@click.option(
    "--reroll",
    multiple=True,
    metavar="STEP",
    help="Draw STEP once more: one new call per instance; earlier takes are kept "
    "(gemflow history, gemflow pick). Repeatable; STEP may be step[key=value,...].",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Steps to run at once.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document describing the run.")
@click.option(
    "--emulator",
    is_flag=True,
    help="Use the built-in Gemini emulator: no key, no network, deterministic images.",
)
@click.option(
    "--emulator-rewrite",
    metavar="MODES",
    callback=lambda ctx, param, value: _rewrite_modes(value),
    help="Make the built-in emulator act like a real service, to try a probe step against it "
    "(implies --emulator): comma-separated modes, what it does to prompts (system, prefix, "
    "paraphrase, reword, expand) and how its model letters text (literal, invent, noisy, "
    "refuse); see gemflow emulator --help.",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="API endpoint (default: GOOGLE_GEMINI_BASE_URL, else Google's).",
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Result store (default: GEMFLOW_CACHE_DIR, else the nearest cache/ folder).",
)
@click.option(
    "--remote",
    metavar="URL",
    help="The team cache behind the local one: s3://bucket/prefix or gs://bucket/prefix "
    "(default: the workflow's defaults.remote, else GEMFLOW_REMOTE; 'none': no remote).",
)
@click.option(
    "--push/--no-push",
    default=None,
    help="Write new results to the remote (default: defaults.push, else GEMFLOW_REMOTE_PUSH).",
)
@click.option(
    "--allow-outside",
    is_flag=True,
    help="Allow input and output paths outside the workflow's folder.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    metavar="N",
    help="Retries per API request after a 429, 5xx, timeout or lost connection; "
    "overrides the workflow's 'retries' (default: the workflow's, else 5).",
)
@click.option(
    "--rpm",
    type=FiniteFloat(min=0.1),
    metavar="N",
    help="At most N requests a minute to each model, across the whole run; overrides "
    "the workflow's 'rpm' (default: the workflow's, else no limit).",
)
@click.option(
    "--keep-going/--fail-fast",
    default=True,
    show_default=True,
    help="After a failure, go on with every step that does not need the failed one, or start "
    "no new step at all (running ones finish).",
)
@click.option(
    "--batch",
    is_flag=True,
    help="Send the API steps' requests through the Batch API: half the price, answers within "
    "hours (a day at most). --batch=auto batches only a model's groups of --batch-min requests "
    "or more, and sends smaller ones (tails, chains of edits) at once. Interrupting leaves the "
    "jobs running: run again to collect them.",
)
@click.option("--batch-mode", type=click.Choice(BATCH_MODES), hidden=True)
@click.option(
    "--detach",
    is_flag=True,
    help="With --batch: submit the jobs, record them and exit; a later run collects the answers.",
)
@click.option(
    "--batch-min",
    type=click.IntRange(1, 100_000),
    metavar="N",
    help="With --batch=auto (implied): a model's requests in a round go in a batch job when "
    "there are N or more, else they are sent at once (default: defaults.batch_min, else 20).",
)
@click.option(
    "--batch-max-requests",
    type=click.IntRange(1, 1_000_000),
    metavar="N",
    help="At most N requests in one batch job (default: defaults.batch_max_requests, else 2000).",
)
@click.option(
    "--batch-max-mb",
    type=FiniteFloat(min=0.001, max=2000),
    metavar="MB",
    help="At most MB megabytes of requests (the JSONL file) in one batch job; the service takes "
    "2,000 (default: defaults.batch_max_mb, else 500).",
)
@click.option(
    "--batch-max-tokens",
    type=click.IntRange(1),
    metavar="N",
    help="At most about N tokens (estimated, in and out) in one batch job (default: "
    "defaults.batch_max_tokens, else 5,000,000).",
)
@click.option(
    "--batch-poll",
    type=FiniteFloat(min=0.01),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How often to ask how batch jobs are doing.",
)
@click.option(
    "--batch-deadline",
    type=FiniteFloat(min=0.01, max=47),
    default=24.0,
    show_default=True,
    metavar="HOURS",
    help="Cancel a batch job not done by then, and send its requests interactively.",
)
@click.option(
    "--report",
    "report_to",
    is_flag=False,
    flag_value="",
    metavar="[PATH]",
    help="Write the offline HTML report when the run ends: PATH (an .html file), else "
    "WORKFLOW.report.html beside the workflow.",
)
@click.option("-v", "--verbose", is_flag=True, help="List cached steps too.")
@click.option("-q", "--quiet", is_flag=True, help="Say only what failed, and warnings.")
def run(
    names: tuple[str, ...],
    dry_run: bool,
    force: tuple[str, ...],
    force_all: bool,
    retry_refused: bool,
    reroll: tuple[str, ...],
    jobs: int,
    as_json: bool,
    emulator: bool,
    emulator_rewrite: str | None,
    base_url: str | None,
    cache_dir: Path | None,
    remote: str | None,
    push: bool | None,
    allow_outside: bool,
    retries: int | None,
    rpm: float | None,
    keep_going: bool,
    batch: bool,
    batch_mode: str | None,
    detach: bool,
    batch_min: int | None,
    batch_max_requests: int | None,
    batch_max_mb: float | None,
    batch_max_tokens: int | None,
    batch_poll: float,
    batch_deadline: float,
    report_to: str | None,
    verbose: bool,
    quiet: bool,
) -> None:
    """Build each WORKFLOW (gemflow.yaml when none is named), or only TARGETs and the steps
    they need. A TARGET may select matrix instances: 'step[key=value]'.

    Only steps whose inputs changed call the API; everything else comes from the cache.
    """
    from gemflow.report.jsonout import JsonReporter
    from gemflow.report.terminal import TerminalReporter

    _sigterm_interrupts()
    paths, targets = _workflows_and_targets(names)
    json_out = JsonReporter() if as_json else None
    reporters: list[Any] = [TerminalReporter(verbose=verbose, quiet=quiet)]
    if json_out is not None:
        reporters.append(json_out)
    batched = batch or batch_mode is not None or detach or batch_min is not None
    batch_settings = _batch_settings(
        batch=batched,
        mode="auto" if batch_min is not None else batch_mode or "all",
        detach=detach,
        poll_seconds=batch_poll,
        deadline_seconds=batch_deadline * 3600,
        min_group=batch_min,
        max_requests=batch_max_requests,
        max_bytes=None if batch_max_mb is None else int(batch_max_mb * 1e6),
        max_tokens=batch_max_tokens,
    )
    plain = not (force or force_all or reroll or batched or report_to)
    stamp = _stamp_file(
        paths,
        targets,
        plain=plain and _no_remote(remote),
        dry_run=dry_run,
        jobs=jobs,
        cache=cache_dir,
        options={
            "allow_outside": allow_outside,
            "base_url": base_url,
            "emulator": emulator,
            "rewrite": emulator_rewrite,
            "retries": retries,
            "rpm": rpm,
            "retry_refused": retry_refused,
            "keep_going": keep_going,
        },
    )
    if stamp is not None:
        summary = _replay(stamp, paths[0], allow_outside, dry_run, reporters)
        if summary is not None:
            if json_out is not None:
                with deferred():
                    json_out.write()
            sys.exit(EXIT_OK if summary.ok else EXIT_STEP_FAILED)

    from gemflow.engine.runner import RunOptions
    from gemflow.engine.stamp import Recorder, write_stamp
    from gemflow.session import open_session

    recorder = Recorder()
    options = RunOptions(
        targets=targets,
        force=frozenset(force),
        force_all=force_all,
        reroll=frozenset(reroll),
        retry_refused=retry_refused,
        jobs=jobs,
        dry_run=dry_run,
        fail_fast=not keep_going,
        batch=batch_settings,
    )
    try:
        workflows = _load_all(paths, allow_outside, cache_dir)
        check_run_option(report_to, len(workflows))
        ok = True
        for wf in workflows:
            with open_session(
                wf,
                emulator=emulator,
                rewrite=emulator_rewrite,
                base_url=base_url,
                cache=cache_dir,
                retries=retries,
                rpm=rpm,
                remote=remote,
                push=push,
            ) as session:
                summary = session.run(wf, options, emit=[*reporters, recorder])
                ok = summary.ok and ok
                if report_to is not None:
                    after_run(wf, session.store, summary, report_to)
            if stamp is not None:  # the store is closed: its files are as the next run finds them
                write_stamp(stamp, wf, summary, recorder)
    except (GemflowError, KeyboardInterrupt) as exc:
        if json_out is not None:
            code = exc.exit_code if isinstance(exc, GemflowError) else EXIT_INTERRUPTED
            with deferred():  # one whole document, even if interrupted again
                json_out.write(exc, code)
        raise
    if json_out is not None:
        with deferred():
            json_out.write()
    sys.exit(EXIT_OK if ok else EXIT_STEP_FAILED)


def _no_remote(remote: str | None) -> bool:
    """No team cache is named (the workflow's own ``defaults.remote`` is checked after loading)."""
    named = remote if remote is not None else os.environ.get("GEMFLOW_REMOTE")
    return named is None or named.strip().lower() in ("", "none")


def _stamp_file(
    paths: list[Path],
    targets: tuple[str, ...],
    *,
    plain: bool,
    dry_run: bool,
    jobs: int,
    cache: Path | None,
    options: dict[str, Any],
) -> Path | None:
    """Where a plain run of one workflow keeps its stamp (``gemflow.engine.stamp``); None for
    other runs, and for a store that is not a folder."""
    if not plain or len(paths) != 1 or os.environ.get("GEMFLOW_NO_STAMP"):
        return None
    from gemflow.engine.stamp import Context, stamp_path
    from gemflow.workflow.plan import plans_folder

    folder = plans_folder(paths[0], cache)
    if folder is None:
        return None
    environment = {
        name: os.environ.get(name) for name in ("GOOGLE_GEMINI_BASE_URL", "GEMFLOW_CACHE_DIR")
    }
    context = Context(
        workflow=str(paths[0].absolute()),
        targets=targets,
        dry_run=dry_run,
        jobs=jobs,
        options=tuple(sorted({**options, "cache": str(cache), **environment}.items())),
    )
    return stamp_path(folder, context)


def _replay(
    stamp: Path, path: Path, allow_outside: bool, dry_run: bool, reporters: list[Any]
) -> Any:
    """The stamped run's summary, reported again, if the stamp still holds; else None."""
    from gemflow.engine.stamp import replay

    def emit(event: Any) -> None:
        for reporter in reporters:
            reporter(event)

    return replay(stamp, path, allow_outside=allow_outside, dry_run=dry_run, emit=emit)


def _batch_settings(*, batch: bool, **settings: Any) -> Any:
    """The run's ``BatchSettings``, or None without ``--batch``; the job limits go with it."""
    if batch:
        from gemflow.engine.batch import BatchSettings

        return BatchSettings(**settings)
    limits = ("max_requests", "max_bytes", "max_tokens")
    if any(settings[name] is not None for name in limits):
        raise click.UsageError(
            "--batch-max-requests, --batch-max-mb and --batch-max-tokens go with --batch"
        )
    return None


def _workflows_and_targets(names: tuple[str, ...]) -> tuple[list[Path], tuple[str, ...]]:
    """Workflow files (``*.yaml``/``*.yml``) first, targets after; gemflow.yaml by default."""
    paths = [Path(n) for n in names if Path(n).suffix in (".yaml", ".yml")]
    targets = tuple(n for n in names if Path(n).suffix not in (".yaml", ".yml"))
    if not paths:
        if not Path(DEFAULT_WORKFLOW).exists():
            raise click.UsageError(f"name a workflow file: there is no {DEFAULT_WORKFLOW} here")
        paths = [Path(DEFAULT_WORKFLOW)]
    if targets and len(paths) > 1:
        raise click.UsageError("targets go with one workflow: name one, or no targets")
    return paths, targets


def _load_all(paths: list[Path], allow_outside: bool, cache: Path | None) -> list[Any]:
    """Every workflow, loaded (from the plan its last run kept, when still good); the problems
    of all of them at once."""
    from gemflow.workflow.plan import load_planned, plans_folder

    workflows, problems = [], []
    for path in paths:
        try:
            plans = plans_folder(path, cache)
            workflows.append(load_planned(path, allow_outside=allow_outside, folder=plans))
        except WorkflowError as exc:
            problems.extend(exc.problems)
    if problems:
        raise WorkflowError(problems)
    return workflows


def _rewrite_modes(value: str | None) -> str | None:
    if value is None:
        return None
    from gemflow.emulator.rewrite import Rewriter

    try:
        Rewriter.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--emulator-rewrite") from None
    return ",".join(sorted(m.strip() for m in value.split(",") if m.strip()))


def _sigterm_interrupts() -> None:
    """SIGTERM stops a run the way Ctrl-C does: nothing new starts, finished work is kept."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
