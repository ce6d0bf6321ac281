"""``${name}`` substitution of workflow vars into strings. ``$${`` writes a literal ``${``."""

from __future__ import annotations

import re
from collections.abc import Mapping

_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}")
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class UnknownVar(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Replace every ``${name}`` with its value; raise ``UnknownVar`` for a name not defined."""
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1).strip()
        if name not in variables:
            raise UnknownVar(name)
        return variables[name]

    return _VAR.sub(replace, text)


def referenced_names(text: str) -> list[str]:
    return [m.group(1).strip() for m in _VAR.finditer(text) if m.group(0) != "$${"]


def resolve_vars(raw: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Resolve vars that reference other vars. Returns (resolved, error message by var name)."""
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
        resolved[name] = substitute(raw[name], resolved)
        return True

    for name in raw:
        visit(name, ())
    return resolved, errors
