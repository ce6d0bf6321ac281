"""gemflow's one exception hierarchy, and the exit codes the CLI maps it to.

    GemflowError                 base: every error gemflow raises on purpose
    ├── WorkflowError            the workflow file is invalid (carries every Problem found)
    ├── ConfigError              the environment is wrong: no API key, unusable cache folder
    ├── InputError               an input file is missing, unreadable or not a usable image
    ├── StepError                one step failed while running
    │   ├── Interrupted          the run was interrupted while the step waited
    │   ├── ApiError             the API answered with an error (4xx/5xx) or could not be reached
    │   └── NoImageError         the API answered without an image (safety, refusal, NO_IMAGE)
    ├── CacheError               the cache store could not be read or written
    │   ├── ReadOnlyCache        a result must be kept, and the cache folder cannot be written
    │   └── RemoteError          the shared remote cache did not answer (down, refused, timed out)
    └── DiskFull                 a result could not be written: no space left

Foreign exceptions (google-genai, httpx, OSError, Pillow, s3fs and gcsfs) are translated into these
at one boundary each, with ``raise ... from exc``; nothing outside those boundaries catches them.

Exit codes (documented in the README and in ``gemflow --help``):

    0    every selected step is up to date or was built
    1    one or more steps failed (the others were built and cached)
    2    usage error or invalid workflow: nothing was sent
    3    configuration error (missing API key, unusable cache folder): nothing was sent
    130  interrupted (Ctrl-C / SIGTERM): finished steps are cached
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from gemflow.outside import one_line

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_INTERRUPTED = 130


class GemflowError(Exception):
    """Base of every error gemflow raises on purpose."""

    exit_code = EXIT_STEP_FAILED


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a workflow file, located as precisely as we can."""

    file: str
    line: int | None
    step: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        what = f"step '{self.step}': {self.message}" if self.step else self.message
        return f"{where}: {what}"


class WorkflowError(GemflowError):
    """The workflow file is invalid. ``problems`` lists every problem found, not just the first."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(GemflowError):
    exit_code = EXIT_CONFIG


class InputError(GemflowError):
    exit_code = EXIT_USAGE


class CacheError(GemflowError):
    exit_code = EXIT_CONFIG


class ReadOnlyCache(CacheError):
    """The cache cannot be written (a read-only file system, no write permission): what it holds
    is served, but a result that must be kept is refused, before its request is sent."""


class RemoteError(CacheError):
    """The team's remote cache did not answer. A run goes on locally; ``gemflow cache push`` and
    ``pull`` fail with it."""


class DiskFull(GemflowError):
    """A result could not be written: the disk is full, over quota, read-only or failing. The
    run stops sending; answers already paid for are kept in memory and written if space frees."""

    exit_code = EXIT_STEP_FAILED


NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk cannot take more (SQLite says it in words)."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        return True
    text = str(exc).lower()
    return type(exc).__name__ == "OperationalError" and ("full" in text or "readonly" in text)


class StepError(GemflowError):
    """A step failed while running. Its dependents are skipped; other branches go on."""


class Interrupted(StepError):
    """The run was interrupted while this step waited (for another process's result, say)."""


class ApiError(StepError):
    """The API refused the request or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: str | None = None,
        retry_delay: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.code = code
        self.status = status
        self.retry_delay = retry_delay
        self._retryable = retryable
        prefix = " ".join(str(x) for x in (code, status) if x)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    @property
    def retryable(self) -> bool:
        """Worth sending again: as said when made, else by the HTTP status (no status: the
        request got no answer, a timeout or a lost connection)."""
        if self._retryable is not None:
            return self._retryable
        return self.code is None or self.code in (408, 429, 500, 502, 503, 504)


class NoImageError(StepError):
    """The API answered, but without an image: a safety block, a refusal or NO_IMAGE."""

    def __init__(self, reason: str, text: str = "") -> None:
        self.reason = reason
        self.text = text
        shown = one_line(text)[:300]  # a model's words, shown in one line of a report
        detail = f": {shown}" if shown else ""
        super().__init__(f"no image returned ({reason}){detail}")
