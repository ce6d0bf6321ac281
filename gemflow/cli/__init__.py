"""The command line: thin. Parses options, calls the library, maps errors to exit codes.

One module per command (or group); imports of the library stay inside the commands, so that
``gemflow --help`` starts fast.
"""

from gemflow.cli import (  # noqa: F401  (each registers its commands)
    batch,
    cache,
    clean,
    dag,
    gc,
    report,
    run,
    schema,
    show,
    takes,
    validate,
)
from gemflow.cli.app import cli

main = cli

__all__ = ["cli", "main"]
