"""The command line: thin. Parses options, calls the library, maps errors to exit codes.

One module per command (or group); imports of the library stay inside the commands, so that
``gemflow --help`` starts fast.
"""

import gc as collector
import sys

from gemflow.cli.app import cli


def main() -> None:
    """The ``gemflow`` command: the CLI, then an exit code whatever signal arrives at the end."""
    from gemflow.errors import EXIT_INTERRUPTED
    from gemflow.interrupts import leave

    # A command is one short process that keeps most of what it allocates (a workflow's steps, its
    # lock entries, a report per step): the cycle collector's default pace re-scans all of it
    # again and again, about a tenth of a 10,000-step no-op run. Collect less often.
    collector.set_threshold(50_000, 20, 20)
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
