"""What a caption says about an image, from the references that name the images shown together.

Pure text, no Pillow: a labelled grid draws these, and a report can show the same words.

A matrix step names its instances ``step[key=value,key=value]`` (values may hold ``:``; none of
``,`` ``=`` ``[`` ``]``). When every image is an instance of one and the same step, a caption is
what tells it apart: the ``key=value`` pairs whose values differ among the images, joined by
`` · `` (``model=gemini-3-pro-image · variant=2``). Otherwise each caption is its reference: a
step id or instance name as written, a file by its name (by its path as written if two files
shown together share a name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

SEPARATOR = " · "
_INSTANCE = re.compile(r"(?P<step>[A-Za-z_][A-Za-z0-9_-]*)\[(?P<pairs>[^\[\]]*)\]\Z")
_STEP_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True)
class Instance:
    """A matrix instance name, read: its step and its key=value pairs in the order written."""

    step: str
    pairs: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        return dict(self.pairs).get(key)


def parse_instance(ref: str) -> Instance | None:
    """``ref`` read as ``step[key=value,...]``, or None if it is not an instance name."""
    match = _INSTANCE.match(ref)
    if match is None:
        return None
    pairs = []
    for item in match["pairs"].split(",") if match["pairs"] else []:
        key, sep, value = item.partition("=")
        if not sep or not key or "=" in value:
            return None
        pairs.append((key, value))
    return Instance(match["step"], tuple(pairs))


def captions(refs: Sequence[str]) -> list[str]:
    """One caption per reference, in order (see the module's docstring for the rule)."""
    return _distinguishing(refs) or [_name(ref, refs) for ref in refs]


def _distinguishing(refs: Sequence[str]) -> list[str] | None:
    """The differing pairs of each instance, or None unless every ref is an instance of one step
    and something differs (one image, or the same one repeated, keeps its full name)."""
    instances = [parse_instance(ref) for ref in refs]
    if not all(instances) or len({i.step for i in instances if i}) != 1:
        return None
    shown = [i for i in instances if i]
    keys = dict.fromkeys(key for instance in shown for key, _ in instance.pairs)
    differing = [key for key in keys if len({instance.get(key) for instance in shown}) > 1]
    if not differing:
        return None
    texts = [_pairs_text(instance, differing) for instance in shown]
    return [text or ref for text, ref in zip(texts, refs, strict=True)]


def _pairs_text(instance: Instance, keys: Sequence[str]) -> str:
    values = [(key, instance.get(key)) for key in keys]
    return SEPARATOR.join(f"{key}={value}" for key, value in values if value is not None)


def _name(ref: str, refs: Sequence[str]) -> str:
    """A step id or instance name as written; a file by its name unless another file shares it."""
    if _STEP_ID.match(ref) or parse_instance(ref) is not None:
        return ref
    name = _file_name(ref)
    shared = sum(1 for other in refs if other != ref and _file_name(other) == name)
    return ref if shared else name


def _file_name(ref: str) -> str:
    return re.split(r"[/\\]", ref.rstrip("/\\"))[-1] or ref
