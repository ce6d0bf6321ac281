"""What the emulated image model draws when it is asked to show text: a documented convention.

A real image model asked to "spell out the text that came before this request" renders whatever
context it was given (a hidden system prompt, if the service adds one). The emulator cannot
understand language, so it recognises a few fixed phrases — the ones gemflow's ``probe`` steps use
— and draws what a real model in that situation would draw. Phrases are matched case-insensitively
in the prompt *as sent* (a paraphrase keeps the meaning, so the model understands the request the
way it was written); what is drawn comes from the text *as received* (after any rewrite, see
:mod:`gemflow.emulator.rewrite`):

    the prompt contains                             the image shows
    "the text that comes after this request"        nothing: finishReason NO_IMAGE (nothing comes after)
    "the text that came before this request"        the context ahead of the request: the service's
                                                    hidden system prompt, then the request's system
                                                    instruction; no text at all if there is none
    "exactly the text between the double quotes"    the received text from its first to its last
                                                    double quote (the whole text if none is left)
    anything else ("this current text" included)    the prompt as received

A text model asked about an image the emulator drew answers with the text drawn on it, or with
``NO_TEXT`` when the image shows none (the answer gemflow's probe reader asks for).
"""

from __future__ import annotations

import re

AFTER = "the text that comes after this request"
BEFORE = "the text that came before this request"
QUOTED = "exactly the text between the double quotes"
NO_TEXT = "NO_TEXT"
_QUOTED_SPAN = re.compile(r'"(.*)"', re.DOTALL)


def drawn_text(sent: str, received: str, context: str | None) -> str | None:
    """The text the picture shows, or None when the model answers NO_IMAGE.

    ``sent`` is the prompt as the client sent it, ``received`` the prompt as the model received it,
    ``context`` the system context the model received (hidden prompt and system instruction).
    """
    wanted = " ".join(sent.split()).lower()
    if AFTER in wanted:
        return None
    if BEFORE in wanted:
        return context or ""
    if QUOTED in wanted:
        span = _QUOTED_SPAN.search(received)
        return span.group(1).strip() if span else received
    return received
