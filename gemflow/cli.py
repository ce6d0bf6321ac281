"""The command line: thin. Parses options, calls the library, maps errors to exit codes.

Imports are kept inside the commands so that ``gemflow --help`` starts fast.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from gemflow.emulator.command import emulator_command
from gemflow.errors import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_USAGE,
    ConfigError,
    GemflowError,
    Problem,
    WorkflowError,
)

EPILOG = f"""\b
Exit codes:
  {EXIT_OK}    every selected step is up to date or was built
  {EXIT_STEP_FAILED}    one or more steps failed (the rest are built and cached)
  {EXIT_USAGE}    usage error or invalid workflow: nothing was sent
  {EXIT_CONFIG}    configuration error (no API key, unusable cache): nothing was sent
  {EXIT_INTERRUPTED}  interrupted: finished steps are cached
"""


class _Gemflow(click.Group):
    """Turns gemflow's errors into one-line messages and documented exit codes: no tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted: finished steps are cached; run again to continue", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except WorkflowError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            count = len(exc.problems)
            click.echo(f"{count} problem{'s' * (count != 1)}; nothing was run", err=True)
            raise click.exceptions.Exit(exc.exit_code) from None
        except GemflowError as exc:
            click.echo(f"error: {exc}", err=True)
            raise click.exceptions.Exit(exc.exit_code) from None


@click.group(cls=_Gemflow, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(package_name="gemflow", prog_name="gemflow")
def cli() -> None:
    """gemflow: image pipelines for Gemini image models, rebuilt like make, by content."""


@cli.command(epilog=EPILOG)
@click.argument("workflow", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("targets", nargs=-1)
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
    help="Make the built-in emulator rewrite prompts like a service with a prompt rewriter "
    "(system,prefix,paraphrase; implies --emulator): try a probe step against it.",
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
    type=click.FloatRange(min=0.1),
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
@click.option("-v", "--verbose", is_flag=True, help="List cached steps too.")
def run(
    workflow: Path,
    targets: tuple[str, ...],
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
    allow_outside: bool,
    retries: int | None,
    rpm: float | None,
    keep_going: bool,
    verbose: bool,
) -> None:
    """Build WORKFLOW, or only TARGETS and the steps they need.

    Only steps whose inputs changed call the API; everything else comes from the cache.
    """
    from gemflow.engine.runner import RunOptions
    from gemflow.report.jsonout import JsonReporter
    from gemflow.report.terminal import TerminalReporter
    from gemflow.session import open_session
    from gemflow.workflow.load import load_workflow

    wf = load_workflow(workflow, allow_outside=allow_outside)
    reporters: list[Any] = [TerminalReporter(verbose=verbose)]
    if as_json:
        reporters.append(JsonReporter())
    options = RunOptions(
        targets=targets,
        force=frozenset(force),
        force_all=force_all,
        reroll=frozenset(reroll),
        retry_refused=retry_refused,
        jobs=jobs,
        dry_run=dry_run,
        fail_fast=not keep_going,
    )
    with open_session(
        wf.path,
        emulator=emulator,
        rewrite=emulator_rewrite,
        base_url=base_url,
        cache=cache_dir,
        retries=retries,
        rpm=rpm,
    ) as session:
        _sigterm_interrupts()
        summary = session.run(wf, options, emit=reporters)
    sys.exit(EXIT_OK if summary.ok else EXIT_STEP_FAILED)


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


@cli.group()
def cache() -> None:
    """Inspect and check the result store."""


_cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The store (default: GEMFLOW_CACHE_DIR, else the nearest cache/ folder from here).",
)


def _open_store(cache_dir: Path | None) -> Any:
    from gemflow.cache.local import Store, default_cache_dir

    directory = cache_dir or default_cache_dir(Path.cwd() / "workflow.yaml")
    if not directory.is_dir():
        raise ConfigError(f"no cache at {directory}")
    return Store(directory)


@cache.command()
@_cache_dir_option
def info(cache_dir: Path | None) -> None:
    """Where the store is, what it holds and its size."""
    with _open_store(cache_dir) as store:
        facts = store.info()
    click.echo(
        f"{facts['directory']}: {facts['results']} step results, {facts['calls']} single "
        f"calls, {facts['bytes'] / 1e6:.1f} MB"
    )


@cache.command()
@_cache_dir_option
def verify(cache_dir: Path | None) -> None:
    """Check every stored result against its digest; drop corrupt ones (they run again)."""
    with _open_store(cache_dir) as store:
        total = len(store.keys())
        corrupt = store.verify()
    for key in corrupt:
        click.echo(f"corrupt, dropped: {key}", err=True)
    click.echo(f"{total} entries checked, {len(corrupt)} corrupt")
    sys.exit(EXIT_STEP_FAILED if corrupt else EXIT_OK)


DEFAULT_WORKFLOW = "gemflow.yaml"


def _workflow_and_step(args: tuple[str, ...], usage: str) -> tuple[Path, str]:
    """``[WORKFLOW] STEP``: the workflow defaults to gemflow.yaml in this folder."""
    if len(args) == 1:
        if Path(args[0]).suffix in (".yaml", ".yml"):
            raise click.UsageError(f"name the step too: {usage.replace('[WORKFLOW]', args[0])}")
        if not Path(DEFAULT_WORKFLOW).is_file():
            raise click.UsageError(f"no {DEFAULT_WORKFLOW} here: name the workflow ({usage})")
        return Path(DEFAULT_WORKFLOW), args[0]
    if len(args) == 2:
        return Path(args[0]), args[1]
    raise click.UsageError(usage)


def _instances(wf: Any, step: str) -> list[str]:
    chosen = wf.select(step)
    if not chosen:
        from gemflow.workflow.load import suggest

        problem = Problem(
            wf.display_name, None, None, f"no step '{step}'{suggest(step, wf.groups)}"
        )
        raise WorkflowError([problem])
    return list(chosen)


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[WORKFLOW] STEP")
@_cache_dir_option
def history(args: tuple[str, ...], cache_dir: Path | None) -> None:
    """List the takes kept for STEP: its variants' re-rolls and what --force replaced.

    STEP may be a matrix step (all its instances) or step[key=value,...].
    """
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.cache.lockfile import LockFile
    from gemflow.engine.takes import entry_for, takes
    from gemflow.workflow.load import load_workflow

    path, step = _workflow_and_step(args, "gemflow history [WORKFLOW] STEP")
    wf = load_workflow(path)
    lock = LockFile.load(wf.lock_path)
    with Store(cache_dir or default_cache_dir(wf.path)) as store:
        for name in _instances(wf, step):
            found = takes(entry_for(lock, name), store)
            click.echo(f"{name}: {len(found)} take{'s' * (len(found) != 1)}")
            for take in found:
                mark = "*" if take.current else " "
                where = "" if take.stored else "  (no longer in the cache)"
                kept = "  (replaced by --force)" if "~" in take.key else ""
                click.echo(
                    f" {mark} {take.number:>2}  re-roll {take.reroll}  "
                    f"{take.digest.removeprefix('sha256:')[:12]}{kept}{where}"
                )


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="[WORKFLOW] STEP N")
@_cache_dir_option
def pick(args: tuple[str, ...], cache_dir: Path | None) -> None:
    """Make take N of STEP its output (see gemflow history); no API call.

    The lock file records the choice: the next run keeps it and remakes what uses it.
    """
    from gemflow.cache.local import Store, default_cache_dir
    from gemflow.cache.lockfile import LockFile
    from gemflow.engine.takes import pick as pick_take
    from gemflow.workflow.load import load_workflow

    if len(args) < 2 or not args[-1].isdigit():
        raise click.UsageError("gemflow pick [WORKFLOW] STEP N")
    path, step = _workflow_and_step(args[:-1], "gemflow pick [WORKFLOW] STEP N")
    wf = load_workflow(path)
    names = _instances(wf, step)
    if len(names) > 1:
        raise click.UsageError(f"'{step}' names {len(names)} instances: pick one of them")
    lock = LockFile.load(wf.lock_path)
    with Store(cache_dir or default_cache_dir(wf.path)) as store:
        take = pick_take(wf, lock, store, names[0], int(args[-1]))
    output = wf.steps[names[0]].output_rel
    click.echo(
        f"{names[0]}: take {take.number} is the output now ({output}); "
        f"gemflow run {path} remakes the steps that use it"
    )


cli.add_command(emulator_command)


main = cli
