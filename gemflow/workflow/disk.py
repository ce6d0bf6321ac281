"""What loading a workflow asks of the disk besides the workflow file: each question is recorded
with its answer, so that a compiled plan (``gemflow.workflow.plan``) is reused only while every
one of them still gets the same answer.

The questions are few and cheap to ask again: whether a file exists, what a folder resolves to,
which names in a folder are symbolic links or are there at all, what an input file is, and the
bytes of a text file the workflow includes (compared by size, times and inode first, as git's
index does; read again and hashed only when those differ).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Observation = tuple[Any, ...]  # (question, *arguments, answer): plain data, kept in a plan


class Disk:
    """The loader's view of the disk, recording what it saw."""

    def __init__(self) -> None:
        self.seen: list[Observation] = []
        self._listings: dict[str, frozenset[str]] = {}
        self._links: dict[str, frozenset[str]] = {}

    def exists(self, path: Path) -> bool:
        found = path.exists()
        self.seen.append(("exists", str(path), found))
        return found

    def realpath(self, path: str) -> str:
        real = os.path.realpath(path)
        self.seen.append(("realpath", path, real))
        return real

    def has_entry(self, folder: Path, name: str) -> bool:
        """Whether ``folder`` holds an entry named ``name`` (exactly: not another case of it)."""
        key = str(folder)
        if key not in self._listings:
            self._listings[key] = _listing(key)
        found = name in self._listings[key]
        self.seen.append(("entry", key, name, found))
        return found

    def is_link(self, path: str) -> bool:
        """Whether ``path`` is a symbolic link; the links of its folder are listed once."""
        folder, name = os.path.split(path)
        links = self._links.get(folder)
        if links is None:
            links = self._links[folder] = links_in(folder)
            self.seen.append(("links", folder, sorted(links)))
        return name in links

    def file_type(self, path: Path) -> str | None:
        """'file', 'unreadable' (a file this user cannot read), 'folder' or 'other' (a pipe, a
        device); None when nothing is there."""
        found = file_type(path)
        self.seen.append(("type", str(path), found))
        return found

    def read(self, path: Path, most: int) -> bytes:
        """At most ``most`` bytes of regular file ``path`` (``OSError`` for anything else)."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "it is a folder, not a file")
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file (a pipe or a device?)")
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(most)
        self.seen.append(("read", str(path), most, signature(info), _sha(data)))
        return data


def still_true(seen: Iterable[Observation]) -> bool:
    """Whether every question in ``seen`` gets the same answer now."""
    disk = Disk()
    for question, *rest in seen:
        try:
            if question == "exists":
                path, found = rest
                same = Path(path).exists() == found
            elif question == "realpath":
                path, real = rest
                same = os.path.realpath(path) == real
            elif question == "entry":
                folder, name, found = rest
                same = disk.has_entry(Path(folder), name) == found
            elif question == "links":
                folder, names = rest
                same = sorted(links_in(folder)) == names
            elif question == "type":
                path, found = rest
                same = file_type(Path(path)) == found
            elif question == "read":
                path, most, sig, sha = rest
                same = (
                    signature(os.stat(path)) == tuple(sig)
                    or _sha(disk.read(Path(path), most)) == sha
                )
            else:
                return False  # a question this gemflow does not know: not its plan
        except (OSError, ValueError, TypeError):
            return False
        if not same:
            return False
    return True


def signature(info: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file's content may have: size, mtime, inode and ctime (an edit that
    keeps size and mtime, or a file swapped in with its old mtime, still changes the ctime)."""
    return info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns


def file_type(path: Path) -> str | None:
    """What is at ``path``; never raises: a name too long for the OS is simply not there."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return "file" if os.access(path, os.R_OK) else "unreadable"
    return "folder" if stat.S_ISDIR(mode) else "other"


def links_in(folder: str) -> frozenset[str]:
    """The names of the symbolic links in ``folder`` (none when it is not there)."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(entry.name for entry in entries if entry.is_symlink())
    except OSError:
        return frozenset()


def _listing(folder: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
