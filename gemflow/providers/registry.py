"""Which provider sends a model's requests, and who answers them.

A provider is one module with one class (see ``gemflow.providers.base.Provider``); adding one is
that module plus one line in ``PROVIDERS``. A model's ``api`` in the model table names its provider
(unknown models go to Gemini's ``generateContent``). Classes are imported only when a request is
about to be sent, so loading a workflow or a fully cached run never imports an SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

from gemflow.models import model_info

if TYPE_CHECKING:
    from gemflow.providers.base import Provider

# API name -> "module:Class". The class is built as ``Class(api_key, base_url=..., service=...)``.
PROVIDERS: dict[str, str] = {
    "gemini": "gemflow.providers.gemini:GeminiProvider",
}
DEFAULT_API = "gemini"


class ProviderClass(Protocol):
    def __call__(self, api_key: str, *, base_url: str | None, service: str | None) -> Provider: ...


def api_of(model: str) -> str:
    """The provider for ``model``: the model table's ``api``, else Gemini's."""
    info = model_info(model)
    return info.api if info is not None else DEFAULT_API


def provider_class(api: str) -> ProviderClass:
    """The class registered for ``api``, imported now."""
    module, _, name = PROVIDERS[api].partition(":")
    cls: ProviderClass = getattr(importlib.import_module(module), name)
    return cls


GOOGLE_HOST = "generativelanguage.googleapis.com"
DEFAULT_PORTS = {"http": 80, "https": 443}


def service_of(base_url: str | None) -> str | None:
    """The service identity of an endpoint, as cache keys record it: None is Google's own.

    The identity goes into lock files and ``--json``, so it is the endpoint without what may be a
    secret: no ``user:password@``, query string (``?key=...``) or fragment. One endpoint written
    two ways is one service: the scheme and host in lower case, ``localhost`` as ``127.0.0.1``,
    no default port, no trailing ``/``; Google's own URL written out is Google's service (None).
    """
    if not base_url:
        return None
    url = urlsplit(base_url.strip())
    scheme = url.scheme.lower()
    host = (url.hostname or "").lower()
    if host == GOOGLE_HOST:
        return None  # Google's own endpoint, written out: Google's service
    if host == "localhost":
        host = "127.0.0.1"  # one machine, two spellings: one service
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address keeps its brackets
    port = url.port
    if port is not None and DEFAULT_PORTS.get(scheme) != port:
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, url.path.rstrip("/"), "", ""))
