"""A safe YAML loader that reads scalars as YAML 1.2 does, keeps line numbers and reports duplicate keys.

Why not ``yaml.safe_load``: PyYAML follows YAML 1.1, where ``aspect_ratio: 16:9`` is the base-60 integer
969, ``on``/``no`` are booleans, ``010`` is octal and ``2026-01-01`` is a date; and it keeps the last of
two duplicate keys silently. Editors and schema checkers follow YAML 1.2, so this loader does too: only
``true``/``false`` are booleans, only plain decimal (or ``0o``/``0x``) digits are integers, and
everything else that looks like a number with colons or dashes stays the string the user wrote.

Mappings load as ``LineDict`` and sequences as ``LineList``, which remember the line of each key/item.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when available

MAX_ALIASES = 100  # an anchor/alias "billion laughs" document is refused long before it can grow


class LineDict(dict):
    """A dict that remembers the line (1-based) where it starts and where each key stands."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list):
    """A list that remembers the line (1-based) of each item."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class YamlError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


_YAML11_ONLY = {"bool", "int", "float", "timestamp"}


class _Loader(_Base):
    """Safe loading with YAML 1.2 core scalars. Duplicate keys are collected in ``duplicates``."""

    yaml_implicit_resolvers: dict = {  # noqa: RUF012 - PyYAML's own class-level registry
        first: [(tag, rx) for tag, rx in resolvers if tag.rsplit(":", 1)[-1] not in _YAML11_ONLY]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[Any, int, int]] = []  # (key, line, first line)


def _add(tag: str, first: str, pattern: str) -> None:
    _Loader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


_add("tag:yaml.org,2002:bool", "tTfF", r"^(?:true|True|TRUE|false|False|FALSE)$")
_add("tag:yaml.org,2002:int", "-+0123456789", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_add(
    "tag:yaml.org,2002:float",
    "-+0123456789.",
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text[:2] in ("0o", "0x"):
        return int(text, 0)
    return int(text, 10)


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    return float(text)


def _construct_bool(loader: _Loader, node: yaml.ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = _line(node)
    result.key_lines = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.nodes.CollectionNode):
            raise YamlError("a mapping key must be a plain value", _line(key_node))
        key = loader.construct_object(key_node, deep=True)
        if key in result.key_lines:
            loader.duplicates.append((key, _line(key_node), result.key_lines[key]))
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = _line(key_node)
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = _line(node)
    result.item_lines = [_line(child) for child in node.value]
    return result


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load_yaml(text: str) -> tuple[Any, list[tuple[Any, int, int]]]:
    """Parse one YAML document. Returns (data, duplicate keys as (key, line, first line)).

    Raises ``YamlError`` with a line number for anything that is not valid YAML.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        _check_aliases(node)
        data = loader.construct_document(node) if node is not None else None
        return data, loader.duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise YamlError(message or "invalid YAML", mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", None) from exc
    except RecursionError as exc:
        raise YamlError("the document is nested too deeply", None) from exc
    finally:
        loader.dispose()


def _check_aliases(root: yaml.Node | None) -> None:
    """Refuse documents that reuse anchored collections too often (alias bombs)."""
    if root is None:
        return
    seen: set[int] = set()
    reused = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, yaml.nodes.CollectionNode):
            continue
        if id(node) in seen:
            reused += 1
            if reused > MAX_ALIASES:
                raise YamlError(f"too many aliases (more than {MAX_ALIASES}): refused", None)
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend(v for pair in node.value for v in pair)
        else:
            stack.extend(node.value)
