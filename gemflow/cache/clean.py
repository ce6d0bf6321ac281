"""Remove the outputs a workflow made, and nothing else.

A file is removed only when its workflow's lock file (or the lock file of its runs on the
emulator, ``x.emulator.lock``) records it, as an output or an attachment, with the digest it has
on disk: a file edited since gemflow wrote it is kept, and said so. Folders that this leaves empty
go too. The cache is not touched, so ``gemflow run`` restores every output without an API call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from gemflow.cache.lockfile import LockFile, lock_files
from gemflow.errors import EXIT_USAGE, GemflowError
from gemflow.fileio import hash_file


class CleanError(GemflowError):
    exit_code = EXIT_USAGE


@dataclass
class Cleaned:
    """What ``clean`` removed (or would remove) and what it kept, with why."""

    removed: list[str] = field(default_factory=list)  # relative to the workflow's folder
    kept: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    missing: int = 0  # recorded files that were not there
    folders: list[str] = field(default_factory=list)  # folders left empty, removed
    bytes: int = 0
    locked: bool = True  # False: the workflow has no lock file (nothing was made)


def clean(workflow: Path, *, dry_run: bool = False, allow_outside: bool = False) -> Cleaned:
    """Remove the files ``workflow``'s lock file records, where they are as recorded."""
    if not workflow.is_file():
        raise CleanError(f"{workflow}: no such workflow file")
    locks = [LockFile.load(path) for path in lock_files(workflow)]
    for lock in locks:
        if lock.problem:
            raise CleanError(lock.problem)
    root = workflow.absolute().parent
    result = Cleaned(locked=any(lock.signature is not None for lock in locks))
    gone: set[Path] = set()
    for rel, expected in _recorded(locks):
        path = Path(os.path.normpath(root / rel))
        why = _unsafe(root, rel, path, allow_outside)
        if why is None and not os.path.lexists(path):
            result.missing += 1
            continue
        if why is None and not path.is_file():
            why = "not a regular file"
        elif why is None and hash_file(path) not in expected:
            why = "differs from the lock file (edited since gemflow wrote it?)"
        if why is not None:
            result.kept.append((rel, why))
            continue
        result.bytes += path.stat().st_size
        if not dry_run:
            path.unlink()
        gone.add(path)
        result.removed.append(rel)
    result.folders = _empty_folders(root, gone, dry_run=dry_run)
    return result


def _recorded(locks: list[LockFile]) -> list[tuple[str, set[str]]]:
    """(file relative to the workflow's folder, the digests it was written with) for every
    output and attachment of ``locks``."""
    files: dict[str, set[str]] = {}
    for lock in locks:
        for entry in lock.entries.values():
            if entry.refused or not entry.digest:
                continue  # an expected refusal made no file
            files.setdefault(entry.output, set()).add(entry.digest)
            folder = os.path.dirname(entry.output)
            for name, digest in sorted(entry.attachments.items()):
                files.setdefault(Path(folder, name).as_posix(), set()).add(digest)
    return sorted(files.items())


def _unsafe(root: Path, rel: str, path: Path, allow_outside: bool) -> str | None:
    """Why ``path`` must not be touched, or None. A lock file is text anyone can edit: it must
    not make ``clean`` remove a file outside the workflow's folder."""
    if os.path.islink(path):
        return "a symbolic link, not a file gemflow wrote"
    if allow_outside:
        return None
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.isabs(rel) or not real.startswith(real_root.rstrip(os.sep) + os.sep):
        return "outside the workflow's folder (pass --allow-outside to clean it)"
    return None


def _empty_folders(root: Path, gone: set[Path], *, dry_run: bool) -> list[str]:
    """The folders below ``root`` that hold nothing once ``gone`` is gone, deepest first;
    removed unless ``dry_run``."""
    candidates: set[Path] = set()
    for path in gone:
        for folder in path.parents:
            if folder == root or root not in folder.parents:
                break
            candidates.add(folder)
    emptied = []
    for folder in sorted(candidates, key=lambda f: len(f.parts), reverse=True):
        try:
            left = [entry for entry in os.scandir(folder) if Path(entry.path) not in gone]
        except OSError:
            continue
        if left:
            continue
        if not dry_run:
            try:
                folder.rmdir()
            except OSError:
                continue
        gone.add(folder)
        emptied.append(Path(os.path.relpath(folder, root)).as_posix())
    return emptied
