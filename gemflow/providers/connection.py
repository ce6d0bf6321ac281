"""A run's way to the API: who answers (the ``service`` its keys record) and its providers.

The service is known before anything is imported or started, because deciding whether a step is
cached needs its key; providers are made on first use, one per API (see ``registry``), each wrapped
in retries and rate limits. Every way of making a connection sets the service with the endpoint,
so answers from the emulator (or any other endpoint) can never be stored under Google's keys.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gemflow.providers.base import Provider
from gemflow.providers.registry import api_of, provider_class, service_of
from gemflow.providers.resilient import ResilientProvider, resilient

EMULATOR_KEY = "emulator-key"  # the emulator accepts any key; no real key is needed
EMULATOR = "emulator"  # the emulator's service identity


def emulator_service(rewrite: str | None = None) -> str:
    """The emulator's identity in keys; a rewriting one is another service, with other answers."""
    return f"{EMULATOR}+rewrite:{rewrite}" if rewrite else EMULATOR


class Connection:
    """Providers for one run, made on first use and closed with the connection; thread-safe.

    ``retries`` and ``rpm`` (the command line's) override what steps ask for.
    """

    def __init__(
        self,
        service: str | None,
        make: Callable[[str], Provider],
        *,
        retries: int | None = None,
        rpm: float | None = None,
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self.service = service
        self._make = make
        self._retries = retries
        self._rpm = rpm
        self._on_close = on_close
        self._providers: dict[str, ResilientProvider] = {}
        self._lock = threading.Lock()

    @classmethod
    def google(
        cls,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        retries: int | None = None,
        rpm: float | None = None,
    ) -> Connection:
        """Google's API (or ``base_url``, else ``GOOGLE_GEMINI_BASE_URL``); the key from
        ``api_key``, else the environment, looked up only when a request is about to be sent."""
        url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or None
        service = service_of(url)

        def make(api: str) -> Provider:
            from gemflow.providers.gemini import api_key_from_env, checked_key

            key = checked_key(api_key, "the API key given") if api_key else api_key_from_env()
            return provider_class(api)(key, base_url=url, service=service)

        return cls(service, make, retries=retries, rpm=rpm)

    @classmethod
    def emulator(
        cls,
        *,
        url: str | None = None,
        rewrite: str | None = None,
        retries: int | None = None,
        rpm: float | None = None,
        takes_file: Path | None = None,
    ) -> Connection:
        """gemflow's emulator at ``url``; without one, a built-in emulator started when a request
        first needs it (a fully cached run starts nothing) and stopped when the run ends; it
        keeps its takes in ``takes_file`` (see ``gemflow.emulator.takes``)."""
        service = emulator_service(rewrite)
        started: list = []
        lock = threading.Lock()

        def address() -> str:
            if url is not None:
                return url
            with lock:
                if not started:
                    from gemflow.emulator import Emulator

                    started.append(Emulator(rewrite=rewrite, takes_file=takes_file).start())
                return str(started[0].url)

        def make(api: str) -> Provider:
            return provider_class(api)(EMULATOR_KEY, base_url=address(), service=service)

        def stop() -> None:
            for emulator in started:
                emulator.stop()

        return cls(service, make, retries=retries, rpm=rpm, on_close=stop)

    @classmethod
    def of(cls, provider: Provider) -> Connection:
        """A provider made by the caller, for every model; its own ``service`` goes in the keys."""
        return cls(provider.service, lambda api: provider)

    def provider(self, model: str) -> ResilientProvider:
        """The provider that sends ``model``'s requests, made now if this is the first."""
        api = api_of(model)
        with self._lock:
            if api not in self._providers:
                made = self._make(api)
                if self._retries is None and self._rpm is None:
                    self._providers[api] = resilient(made)
                else:
                    inner = made.inner if isinstance(made, ResilientProvider) else made
                    self._providers[api] = ResilientProvider(
                        inner, retries=self._retries, rpm=self._rpm
                    )
            return self._providers[api]

    def batches(self, model: str) -> Any:
        """The Batch API of ``model``'s provider (``gemflow.providers.gemini_batch``)."""
        from gemflow.errors import ConfigError
        from gemflow.providers.gemini import GeminiProvider
        from gemflow.providers.gemini_batch import GeminiBatches

        inner = self.provider(model).inner
        if not isinstance(inner, GeminiProvider):
            raise ConfigError(f"the Batch API is not available for {model}")
        return GeminiBatches(inner)

    def close(self) -> None:
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        try:
            for provider in {id(p): p for p in providers}.values():
                provider.close()
        finally:
            self._on_close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
