"""The ``gemflow`` group: error handling, exit codes and the options every command shares."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import click

from gemflow.errors import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    EXIT_USAGE,
    GemflowError,
    WorkflowError,
)

DEFAULT_WORKFLOW = "gemflow.yaml"  # the workflow a command reads when none is named

EPILOG = f"""\b
Exit codes:
  {EXIT_OK}    every selected step is up to date or was built
  {EXIT_STEP_FAILED}    one or more steps failed (the rest are built and cached)
  {EXIT_USAGE}    usage error or invalid workflow: nothing was sent
  {EXIT_CONFIG}    configuration error (no API key, unusable cache): nothing was sent
  {EXIT_INTERRUPTED}  interrupted: finished steps are cached
"""


class _Gemflow(click.Group):
    """Turns gemflow's errors into one-line messages and documented exit codes: no tracebacks.

    Each command's module is imported when the command is used (``--help`` imports them all):
    ``gemflow run`` on a built workflow should take little more than its own work."""

    LAZY: ClassVar[dict[str, str]] = {
        "batch": "gemflow.cli.batch",
        "cache": "gemflow.cli.cache",
        "clean": "gemflow.cli.clean",
        "dag": "gemflow.cli.dag",
        "emulator": "gemflow.emulator.command:emulator_command",
        "history": "gemflow.cli.takes",
        "pick": "gemflow.cli.takes",
        "report": "gemflow.cli.report",
        "run": "gemflow.cli.run",
        "schema": "gemflow.cli.schema",
        "show": "gemflow.cli.show",
        "validate": "gemflow.cli.validate",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY and name not in self.commands:
            module, _, attribute = self.LAZY[name].partition(":")
            loaded = importlib.import_module(module)  # a gemflow.cli module registers itself
            if attribute:
                self.add_command(getattr(loaded, attribute), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        wants_json = "--json" in ctx.args  # read now: invoking the command consumes them
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if wants_json:
                from gemflow.report.jsonout import JsonReporter

                JsonReporter().write(exc, EXIT_USAGE)
            raise
        except KeyboardInterrupt as exc:
            click.echo("interrupted: finished steps are cached; run again to continue", err=True)
            if type(exc).__name__ == "Abandoned":  # requests in flight: do not wait for them
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_INTERRUPTED)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except WorkflowError as exc:
            from gemflow.outside import visible

            for problem in exc.problems:
                click.echo(f"error: {visible(str(problem))}", err=True)
            count = len(exc.problems)
            click.echo(f"{count} problem{'s' * (count != 1)}; nothing was run", err=True)
            raise click.exceptions.Exit(exc.exit_code) from None
        except GemflowError as exc:
            from gemflow.outside import visible

            shown = "\n".join(visible(line) for line in str(exc).split("\n"))
            click.echo(f"error: {shown}", err=True)
            raise click.exceptions.Exit(exc.exit_code) from None


@click.group(cls=_Gemflow, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(package_name="gemflow", prog_name="gemflow")
def cli() -> None:
    """gemflow: image pipelines for Gemini image models, rebuilt like make, by content."""


cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The store (default: GEMFLOW_CACHE_DIR, else the nearest cache/ folder from here).",
)
