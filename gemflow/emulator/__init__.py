"""A deterministic Gemini API emulator for tests, demos and benchmarks.

It serves the REST endpoints google-genai uses (generateContent, streamGenerateContent,
countTokens, get model, the Batch API and the Files API) on loopback, answers with deterministic
PNGs drawn from the request, and injects faults on demand. Point the real SDK at it::

    with Emulator() as emu:
        client = genai.Client(api_key="any", http_options=types.HttpOptions(base_url=emu.url))

or run ``gemflow emulator`` and ``export GOOGLE_GEMINI_BASE_URL=<url>``.

Everything is imported on first use: ``Emulator`` needs Pillow, and every ``gemflow`` command
imports ``gemflow.emulator.command`` (and so this package) without wanting to pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemflow.emulator.faults import FAULT_NAMES, Faults
    from gemflow.emulator.server import Emulator

__all__ = ["FAULT_NAMES", "Emulator", "Faults"]


def __getattr__(name: str) -> Any:
    if name == "Emulator":
        from gemflow.emulator.server import Emulator

        return Emulator
    if name in ("FAULT_NAMES", "Faults"):
        from gemflow.emulator import faults

        return getattr(faults, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
