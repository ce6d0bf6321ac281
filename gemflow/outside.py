"""Text from outside gemflow (a server's error, a model's words) made safe to show.

A server's text may hold terminal escape sequences (clearing the screen, retitling the window,
hiding what follows), carriage returns that overwrite a line, line breaks that forge report lines,
or bidi overrides that reverse what follows. ``one_line`` is for messages at the boundary where
they come in: escape sequences and control characters go, line breaks become spaces. ``visible``
is for the terminal, which shows whatever it is given: each control character is written as its
escape (``\\x1b``), so nothing it prints can act on the terminal; ``visible_json`` does the same
for JSON that ``json.dumps`` made.
"""

from __future__ import annotations

import re

# ESC followed by a CSI (``ESC [ ... final``), an OSC/DCS/APC-style string (ended by BEL or
# ``ESC \\``), or one more character; C1 CSI (U+009B) as well.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[\x20-\x7e]?"
)
# Bidi controls that reorder what follows, and the zero-width marks that go with them.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BREAKS = "\t\n\v\f\r\x85\u2028\u2029"
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}\u2028\u2029]")
_SPACES = re.compile(r" {2,}")
# What json.dumps(..., ensure_ascii=False) leaves as it is (it escapes C0 itself).
_JSON_LEAVES = re.compile(f"[\x7f-\x9f{_BIDI}\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` on one line, without escape sequences or control characters."""
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = text.translate({ord(c): " " for c in _BREAKS})
    text = _CONTROL.sub("", text)
    return _SPACES.sub(" ", text).strip()


def visible(text: str) -> str:
    """``text`` with every control character (line breaks included) written as its escape."""
    return _CONTROL.sub(_escape, text)


def visible_json(text: str) -> str:
    """JSON text with the control characters ``json.dumps`` leaves (C1, bidi) as ``\\u`` escapes:
    the same JSON, harmless on a terminal."""
    return _JSON_LEAVES.sub(lambda match: f"\\u{ord(match.group(0)):04x}", text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
