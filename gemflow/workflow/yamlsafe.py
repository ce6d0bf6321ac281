"""A safe YAML loader that reads scalars as YAML 1.2 does, keeps line numbers and reports duplicate keys.

Why not ``yaml.safe_load``: PyYAML follows YAML 1.1, where ``aspect_ratio: 16:9`` is the base-60 integer
969, ``on``/``no`` are booleans, ``010`` is octal and ``2026-01-01`` is a date; and it keeps the last of
two duplicate keys silently. Editors and schema checkers follow YAML 1.2, so this loader does too: only
``true``/``false`` are booleans, only plain decimal (or ``0o``/``0x``) digits are integers, and
everything else that looks like a number with colons or dashes stays the string the user wrote.

Mappings load as ``LineDict`` and sequences as ``LineList``, which remember the line of each key/item.

Hostile documents are refused with a ``YamlError`` (never another exception, never a hang):

- only PyYAML's safe constructors exist, so ``!!python/...`` tags are unknown tags;
- an alias "bomb" is refused once collections are reused more than ``MAX_ALIASES`` times, or once
  aliases stand for more than ``MAX_EXPANSION`` values in all (as many as a walk over the loaded
  data, such as the substitution of vars, would meet); an alias inside the collection it names
  (a cycle) is refused outright;
- nesting deeper than ``MAX_DEPTH`` mappings/lists is refused, whether written out or built
  through aliases, without recursing (libyaml caps its own parser at 1000 levels);
- merge keys (``<<``) merge each key once, so a chain of merges cannot multiply a mapping's size;
- characters YAML forbids (NUL and other control characters, lone surrogates) are refused with
  their line.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

MAX_ALIASES = 100  # reuses of anchored mappings/lists: plenty for sharing settings between steps
MAX_EXPANSION = 10_000  # values that aliases may add in all: a "billion laughs" bomb doubles
# with every two aliases, so counting aliases alone does not stop one
MAX_DEPTH = 64  # mappings/lists inside each other; a workflow needs about 6

# What YAML 1.2 allows in a stream (its "c-printable"), plus the BOM; anything else is refused.
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_YAML11_ONLY = {"bool", "int", "float", "timestamp", "value"}  # YAML 1.2 core has none of these
_TOO_DEEP = f"nested too deeply (more than {MAX_DEPTH} levels of mappings and lists)"


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


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class _Rules:
    """What both loaders (libyaml's parser and PyYAML's pure-Python one) share.

    YAML 1.2 core scalars, duplicate keys collected in ``duplicates``, and a depth guard for
    PyYAML's recursive composer (libyaml's composer is bounded by its own parser's limit).
    """

    yaml_implicit_resolvers: dict = {  # noqa: RUF012 - PyYAML's own class-level registry
        first: [(tag, rx) for tag, rx in resolvers if tag.rsplit(":", 1)[-1] not in _YAML11_ONLY]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)  # type: ignore[call-arg]
        self.duplicates: list[tuple[Any, int, int]] = []  # (key, line, first line)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        opens = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)  # type: ignore[attr-defined]
        self._depth += opens
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise YamlError(_TOO_DEEP, mark.line + 1)
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= opens

    def flatten_mapping(self, node: MappingNode) -> None:
        """Resolve merge keys (``<<``) in place, taking each key once.

        A key written in the mapping wins over a merged one; among merged mappings the first listed
        wins. Unlike PyYAML's version, a merged key that the mapping overrides is not a duplicate.
        """
        own: list[tuple[Node, Node]] = []
        sources: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                own.append((key_node, value_node))
            elif isinstance(value_node, MappingNode):
                sources.append(value_node)
            elif isinstance(value_node, SequenceNode) and all(
                isinstance(item, MappingNode) for item in value_node.value
            ):
                sources.extend(value_node.value)
            else:
                raise ConstructorError(
                    None, None, "'<<' merges a mapping or a list of mappings", value_node.start_mark
                )
        if not sources:
            return
        taken = {self._merge_identity(key) for key, _ in own}
        merged: list[tuple[Node, Node]] = []
        for source in sources:
            self.flatten_mapping(source)
            for key_node, value_node in source.value:
                identity = self._merge_identity(key_node)
                if identity not in taken:
                    taken.add(identity)
                    merged.append((key_node, value_node))
        node.value = merged + own

    def _merge_identity(self, key_node: Node) -> Any:
        if isinstance(key_node, ScalarNode):
            return ("value", self.construct_object(key_node))  # type: ignore[attr-defined]
        return ("node", id(key_node))  # a collection key is refused when the mapping is built


class _LibyamlLoader(_Rules, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's fast parser when PyYAML was built with it (else the same as the next one)."""


class _PythonLoader(_Rules, yaml.SafeLoader):
    """PyYAML's pure-Python parser."""


_LOADERS = (_LibyamlLoader, _PythonLoader)


def _add(tag: str, first: str, pattern: str) -> None:
    for loader in _LOADERS:
        loader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


_add("tag:yaml.org,2002:bool", "tTfF", r"^(?:true|True|TRUE|false|False|FALSE)$")
_add("tag:yaml.org,2002:int", "-+0123456789", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_add(
    "tag:yaml.org,2002:float",
    "-+0123456789.",
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
)


def _not_a(what: str, node: Node, text: str | None = None) -> ConstructorError:
    """The error for a value its tag cannot construct, such as ``!!int abc`` or ``!!map [a]``."""
    tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
    shown = f", not {text[:40]!r}" if text is not None else f", not a {node.id}"
    return ConstructorError(None, None, f"{tag} expects {what}{shown}", node.start_mark)


def _construct_int(loader: _Rules, node: ScalarNode) -> int:
    text = loader.construct_scalar(node)  # type: ignore[attr-defined]
    try:
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text, 10)
    except ValueError:
        raise _not_a("a whole number", node, text) from None


def _construct_float(loader: _Rules, node: ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[attr-defined]
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    try:
        return float(text)
    except ValueError:
        raise _not_a("a number", node, text) from None


def _construct_bool(loader: _Rules, node: ScalarNode) -> bool:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[attr-defined]
    if text not in ("true", "false"):
        raise _not_a("true or false", node, text)
    return text == "true"


def _construct_str(loader: _Rules, node: ScalarNode) -> str:
    text = loader.construct_scalar(node)  # type: ignore[attr-defined]
    if _SURROGATE.search(text):
        raise ConstructorError(
            None, None, "a lone surrogate escape (such as \\ud800) is not text", node.start_mark
        )
    return text


def _construct_mapping(loader: _Rules, node: Node) -> LineDict:
    if not isinstance(node, MappingNode):
        raise _not_a("a mapping", node)
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = _line(node)
    result.key_lines = {}
    for key_node, value_node in node.value:
        if isinstance(key_node, CollectionNode):
            raise YamlError("a mapping key must be a plain value", _line(key_node))
        key = loader.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
        if key in result.key_lines:
            loader.duplicates.append((key, _line(key_node), result.key_lines[key]))
        result[key] = loader.construct_object(value_node, deep=True)  # type: ignore[attr-defined]
        result.key_lines[key] = _line(key_node)
    return result


def _construct_sequence(loader: _Rules, node: Node) -> LineList:
    if not isinstance(node, SequenceNode):
        raise _not_a("a list", node)
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)  # type: ignore[attr-defined]
    result.line = _line(node)
    result.item_lines = [_line(child) for child in node.value]
    return result


for _loader in _LOADERS:
    _loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    _loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
    _loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
    _loader.add_constructor("tag:yaml.org,2002:str", _construct_str)
    # YAML 1.2 has no dates: an explicit !!timestamp keeps the text, as an implicit one does.
    _loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)
    _loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
    _loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def load_yaml(text: str, *, pure_python: bool = False) -> tuple[Any, list[tuple[Any, int, int]]]:
    """Parse one YAML document. Returns (data, duplicate keys as (key, line, first line)).

    Raises ``YamlError`` (with a line number where there is one) for anything that is not valid
    YAML or is refused as hostile. ``pure_python`` uses PyYAML's parser even when libyaml is there.
    """
    _check_characters(text)
    loader = (_PythonLoader if pure_python else _LibyamlLoader)(text)
    try:
        node = loader.get_single_node()
        _check_tree(node)
        data = loader.construct_document(node) if node is not None else None
        return data, loader.duplicates
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        if "maximum nesting depth" in message:  # libyaml's own limit, far above ours
            message = _TOO_DEEP
        raise YamlError(message or "invalid YAML", mark.line + 1 if mark else None) from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}", None) from exc
    except RecursionError as exc:  # a last resort: the checks above should make it unreachable
        raise YamlError(_TOO_DEEP, None) from exc
    finally:
        loader.dispose()


def _check_characters(text: str) -> None:
    """Refuse characters YAML does not allow, with their line (PyYAML's reader gives none)."""
    bad = _NOT_PRINTABLE.search(text)
    if bad is None:
        return
    char = bad.group()
    name = "a NUL byte" if char == "\0" else f"the character U+{ord(char):04X}"
    line = text.count("\n", 0, bad.start()) + 1
    raise YamlError(f"{name} is not allowed in YAML (is this a text file?)", line)


def _check_tree(root: Node | None) -> None:
    """Refuse alias bombs, aliases inside their own anchor, and nesting deeper than ``MAX_DEPTH``.

    One walk over the composed nodes in document order, without recursion. A collection met again
    (an alias) is not walked again: its height and size, known since its anchor was walked, say
    how deep it makes the place it is used and how many values it adds, so aliases can hide
    neither depth nor size, and the walk costs the same however the aliases multiply.
    """
    if root is None:
        return
    heights: dict[int, int] = {}  # collections already walked: levels from them down
    sizes: dict[int, int] = {}  # collections already walked: values in them, aliases expanded
    open_ids: set[int] = set()  # collections being walked: the current path from the root
    reused = expansion = 0
    # (node, its depth, and None on the way down or its children on the way back up)
    stack: list[tuple[Node, int, list[Node] | None]] = [(root, 1, None)]
    while stack:
        node, depth, leaving = stack.pop()
        if leaving is not None:
            open_ids.discard(id(node))
            inner = [child for child in leaving if isinstance(child, CollectionNode)]
            heights[id(node)] = 1 + max((heights[id(child)] for child in inner), default=0)
            sizes[id(node)] = 1 + len(leaving) - len(inner) + sum(sizes[id(c)] for c in inner)
            continue
        if id(node) in open_ids:
            raise YamlError("an alias refers to a mapping or list that contains it", _line(node))
        if id(node) in heights:
            reused += 1
            expansion += sizes[id(node)]
            if reused > MAX_ALIASES:
                raise YamlError(f"too many aliases (more than {MAX_ALIASES}): refused", None)
            if expansion > MAX_EXPANSION:
                raise YamlError(
                    f"too many aliases (they stand for more than {MAX_EXPANSION:,} values): "
                    "refused",
                    _line(node),
                )
            if depth - 1 + heights[id(node)] > MAX_DEPTH:
                raise YamlError(_TOO_DEEP, _line(node))
            continue
        if depth > MAX_DEPTH:
            raise YamlError(_TOO_DEEP, _line(node))
        open_ids.add(id(node))
        children = _children(node)
        stack.append((node, depth, children))
        stack.extend(
            (child, depth + 1, None)
            for child in reversed(children)
            if isinstance(child, CollectionNode)
        )


def _children(node: Node) -> list[Node]:
    """The keys and values of a mapping, or the items of a list, in document order."""
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    return list(node.value) if isinstance(node, SequenceNode) else []
