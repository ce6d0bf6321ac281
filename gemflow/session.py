"""What a run needs besides its workflow, set up in one place: where results live (the store) and
where API calls go (the connection, which also fixes the service recorded in every key).

The command line and the Python API both open a session, so neither can pair the emulator's
answers with Google's keys, or forget to close a client or stop an emulator.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from gemflow.cache.local import cache_location
from gemflow.cache.store import ResultStore, open_store, store_folder
from gemflow.cache.tiered import TieredStore, remote_settings
from gemflow.engine.events import Event, RunSummary
from gemflow.engine.runner import RunOptions, run_workflow
from gemflow.interrupts import deferred
from gemflow.providers.connection import Connection
from gemflow.workflow import Workflow

EMULATOR_TAKES = "emulator-takes.json"  # in the cache folder: see gemflow.emulator.takes


@dataclass(frozen=True)
class Session:
    store: ResultStore
    connection: Connection

    @property
    def service(self) -> str | None:
        """Who answers: None for Google's API, "emulator", or the endpoint's URL."""
        return self.connection.service

    def run(
        self,
        workflow: Workflow,
        options: RunOptions | None = None,
        *,
        emit: Callable[[Event], None] | Iterable[Callable[[Event], None]] = (),
    ) -> RunSummary:
        return run_workflow(
            workflow,
            self.store,
            options or RunOptions(),
            connection=self.connection,
            emit=emit,
        )


@contextlib.contextmanager
def open_session(
    workflow: Workflow | str | os.PathLike[str],
    *,
    emulator: bool = False,
    rewrite: str | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    cache: str | os.PathLike[str] | None = None,
    retries: int | None = None,
    rpm: float | None = None,
    remote: str | None = None,
    push: bool | None = None,
    remote_options: dict[str, Any] | None = None,
) -> Iterator[Session]:
    """A session for ``workflow`` (loaded, or its path), closed (clients, emulator, store) on exit.

    ``emulator`` (or a ``rewrite`` mode): gemflow's built-in emulator, started only if a request
    needs it. Otherwise Google's API, or ``base_url`` (else ``GOOGLE_GEMINI_BASE_URL``), with
    ``api_key`` or the environment's. ``cache``: a store location (a folder, or ``memory:``);
    by default ``GEMFLOW_CACHE_DIR``, else the nearest ``cache/`` folder. ``retries`` and ``rpm``
    override what the workflow asks for.

    ``remote``: the team cache behind the local store (``s3://bucket/prefix``, ``gs://…``; else
    the workflow's ``defaults.remote``, else ``GEMFLOW_REMOTE``; ``none``: no remote); ``push``
    writes new results to it (else ``defaults.push``, else ``GEMFLOW_REMOTE_PUSH``).
    ``remote_options`` go to the s3fs or gcsfs client (``endpoint_url``, ``key``, ``token``...).
    """
    if isinstance(workflow, Workflow):
        path, settings = workflow.path, workflow.settings
    else:
        path, settings = Path(workflow), {}
    shared = remote_settings(remote, push, settings)
    location = cache_location(path, cache)
    if emulator or rewrite:
        folder = store_folder(location)  # the built-in emulator's takes go on from run to run
        takes = None if folder is None else folder / EMULATOR_TAKES
        connection = Connection.emulator(
            rewrite=rewrite, retries=retries, rpm=rpm, takes_file=takes
        )
    else:
        connection = Connection.google(api_key=api_key, base_url=base_url, retries=retries, rpm=rpm)
    with _closed_whole(connection):
        store = open_store(location)
        if shared.url is not None:
            store = TieredStore(store, shared.url, push=shared.push, options=remote_options)
        with _closed_whole(store):
            yield Session(store, connection)


T = TypeVar("T", bound="Closable")


class Closable(Protocol):
    def close(self) -> None: ...


@contextlib.contextmanager
def _closed_whole(thing: T) -> Iterator[T]:
    """``thing``, closed at the end even if a Ctrl-C or SIGTERM comes meanwhile (it is delivered
    once ``thing`` is closed)."""
    try:
        yield thing
    finally:
        with deferred():
            thing.close()
