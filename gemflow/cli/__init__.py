"""The command line: thin. Parses options, calls the library, maps errors to exit codes.

One module per command (or group); imports of the library stay inside the commands, so that
``gemflow --help`` starts fast.
"""

from gemflow.cli import cache, dag, run, schema, takes, validate  # noqa: F401  (each registers its commands)
from gemflow.cli.app import cli

main = cli

__all__ = ["cli", "main"]
