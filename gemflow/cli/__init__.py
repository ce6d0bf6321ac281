"""The command line: thin. Parses options, calls the library, maps errors to exit codes.

One module per command (or group); imports of the library stay inside the commands, so that
``gemflow --help`` starts fast.
"""

import sys

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


def main() -> None:
    """The ``gemflow`` command: the CLI, then an exit code whatever signal arrives at the end."""
    from gemflow.errors import EXIT_INTERRUPTED
    from gemflow.interrupts import leave

    code = EXIT_INTERRUPTED
    try:
        try:
            cli.main()
            code = 0
        except SystemExit as done:
            code = _exit_code(done.code)
        except KeyboardInterrupt:  # a signal after the command had handled its own
            code = EXIT_INTERRUPTED
    except KeyboardInterrupt:  # ... or while it was being handled here
        code = EXIT_INTERRUPTED
    leave(code, EXIT_INTERRUPTED)


def _exit_code(code: object) -> int:
    """What ``sys.exit(code)`` would end with: None is 0, a message is printed and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


__all__ = ["cli", "main"]
