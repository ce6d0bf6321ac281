"""``${name}`` substitution of workflow vars into strings. ``$${`` writes a literal ``${``.

Vars may use vars, so a few hundred bytes of them can stand for gigabytes of text (each var using
the one before ten times). Every substitution is therefore bounded while it is made: no var's
value and no substituted string may be over ``MAX_EXPANDED`` characters, and all substitutions of
one workflow together may add at most ``MAX_EXPANDED_TOTAL``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}")
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_EXPANDED = 1024 * 1024  # characters: a var's value, or one string with its vars substituted
MAX_EXPANDED_TOTAL = 256 * MAX_EXPANDED  # characters all the substitutions of a workflow may add


class UnknownVar(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class TooLarge(Exception):
    """A substitution would make a string longer than ``most``; ``name`` is the var that did."""

    def __init__(self, name: str, most: int) -> None:
        super().__init__(f"expands to more than {most:,} characters (at '${{{name}}}')")
        self.name = name


class TooMuch(Exception):
    """The substitutions of one workflow together would add more than ``most`` characters."""

    def __init__(self, most: int) -> None:
        super().__init__(f"vars expand to more than {most:,} characters in all")


def substitute(text: str, variables: Mapping[str, str], *, most: int = MAX_EXPANDED) -> str:
    """Replace every ``${name}`` with its value; raise ``UnknownVar`` for a name not defined, and
    ``TooLarge`` (before building it) when the result would be over ``most`` characters."""
    if "$" not in text:
        return text
    size = len(text)

    def replace(match: re.Match[str]) -> str:
        nonlocal size
        if match.group(0) == "$${":
            return "${"
        name = match.group(1).strip()
        if name not in variables:
            raise UnknownVar(name)
        value = variables[name]
        size += len(value) - len(match.group(0))
        if size > most:
            raise TooLarge(name, most)
        return value

    return _VAR.sub(replace, text)


class Expander:
    """``substitute`` for one workflow, counting what its substitutions add: over ``total``
    (``MAX_EXPANDED_TOTAL`` by default) in all, it raises ``TooMuch``."""

    def __init__(self, total: int | None = None) -> None:
        self.total = MAX_EXPANDED_TOTAL if total is None else total
        self.added = 0

    def __call__(self, text: str, variables: Mapping[str, str]) -> str:
        result = substitute(text, variables, most=min(MAX_EXPANDED, self.total))
        self.added += max(0, len(result) - len(text))
        if self.added > self.total:
            raise TooMuch(self.total)
        return result


def referenced_names(text: str) -> list[str]:
    return [m.group(1).strip() for m in _VAR.finditer(text) if m.group(0) != "$${"]


def resolve_vars(
    raw: Mapping[str, str], expand: Expander | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Resolve vars that reference other vars. Returns (resolved, error message by var name).

    A var whose value would be too long is an error (so are those that use it); ``TooMuch``
    from ``expand`` is raised.
    """
    expand = expand or Expander()
    resolved: dict[str, str] = {}
    errors: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> bool:
        if name in resolved:
            return True
        if name in errors:
            return False
        if name in chain:
            cycle = (*chain[chain.index(name) :], name)
            errors[name] = "vars reference each other in a cycle: " + " -> ".join(cycle)
            return False
        for ref in referenced_names(raw[name]):
            if ref not in raw:
                errors[name] = f"unknown var '${{{ref}}}'"
                return False
            if not visit(ref, (*chain, name)):
                errors.setdefault(name, f"uses var '{ref}', which has an error")
                return False
        try:
            resolved[name] = expand(raw[name], resolved)
        except TooLarge as exc:
            errors[name] = str(exc)
            return False
        return True

    for name in raw:
        visit(name, ())
    return resolved, errors
