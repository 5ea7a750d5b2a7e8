"""Folder sources (text, code, html): which files a source selects, and each file's stable id.

``path`` is a folder (read recursively) or a glob; a folder a glob matches is read recursively
too. A file's id is its path relative to the source root (the folder, or the glob's fixed
prefix), so it stays the same across runs and machines. Version-control folders (``.git`` ...)
are never walked: they hold history, not the tree. ``include``/``exclude`` patterns (fnmatch,
on the relative path and on the file name) select files the way a glob does; a file they
leave out is not an input. Everything selected is an input, and the reader accounts for it:
a directory entry that is not a readable regular file (a dangling symlink, a symlink loop, a
FIFO) is selected like any file and quarantined when read (``readers.read_input``), not
skipped. A file reached under several paths (a symlinked folder, a symlink loop that a ``**``
glob follows again and again) is one input, under its shortest path.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Sequence

from pipelines.readers.records import too_large

VCS_DIRS = frozenset({".git", ".hg", ".svn", ".bzr"})
TREE_FORMATS = ("text", "code", "html")
DEFAULT_INCLUDE = {
    "text": ("*.txt", "*.text", "*.md", "*.markdown", "*.rst", "*.adoc", "*.org", "*.tex"),
    "html": ("*.html", "*.htm", "*.xhtml"),
    # code: None means "every file with a known programming language" (see code.LANGUAGES)
}


def tree_root(pattern: str) -> str:
    """The folder ids are relative to: ``pattern`` itself, or its longest glob-free prefix."""
    if os.path.isdir(pattern):
        return os.path.normpath(pattern)
    fixed: list[str] = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    else:
        fixed = fixed[:-1]  # a plain file path: its folder is the root
    return os.path.normpath(os.path.join(*fixed)) if fixed else "."


def relative_id(root: str, path: str) -> str:
    """``path`` relative to ``root``, with forward slashes on every platform."""
    return PurePosixPath(Path(os.path.relpath(path, root))).as_posix()


def matches(relative: str, patterns: Sequence[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(name, p) for p in patterns)


def tree_files(pattern: str, include: Sequence[str] | None, exclude: Sequence[str],
               selected: Callable[[str], bool] | None = None) -> list[str]:
    """Every selected file under ``pattern``, sorted. ``include`` None defers to ``selected``
    (a predicate on the relative path), used by code sources for "has a known language"."""
    root = tree_root(pattern)
    found = set()
    for match in glob.glob(pattern, recursive=True):
        found.update(_walk(match) if os.path.isdir(match) else [match])
    chosen = []
    for path in unique_files(found):
        relative = relative_id(root, path)
        if any(part in VCS_DIRS for part in relative.split("/")):
            continue
        wanted = matches(relative, include) if include is not None else (selected is None or selected(relative))
        if wanted and not matches(relative, exclude):
            chosen.append(path)
    return sorted(chosen)


def _walk(folder: str) -> list[str]:
    """Every entry under ``folder`` that is not a folder (symlinked folders are not followed)."""
    files = []
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if d not in VCS_DIRS)
        files.extend(os.path.join(directory, name) for name in names)
    return files


def unique_files(paths: Iterable[str]) -> list[str]:
    """``paths`` without folders, one path per file: of paths that resolve to the same file,
    the shortest (then the first in order) stays. An entry that does not resolve (a dangling
    symlink, a loop) is known by its resolved folder and name, and stays for the reader to
    quarantine. Sorted."""
    chosen: dict[str, str] = {}
    for path in sorted(paths, key=lambda p: (len(Path(p).parts), p)):
        if os.path.isdir(path):
            continue
        if os.path.exists(path):
            key = os.path.realpath(path)
        else:
            key = os.path.join(os.path.realpath(os.path.dirname(path) or "."), os.path.basename(path))
        chosen.setdefault(key, path)
    return sorted(chosen.values())


@dataclass(frozen=True)
class TreeFile:
    """One file of a folder source, read whole (it is one document) if within the limit."""

    relative: str
    data: bytes | None
    error: str | None


def source_relative(source: dict, path: str) -> str:
    """The id of ``path`` within its folder source."""
    return relative_id(tree_root(source["path"]), path)


def load_tree_file(source: dict, path: str) -> TreeFile:
    relative = source_relative(source, path)
    limit = source["max_document_bytes"]
    try:
        size = os.path.getsize(path)
        if size > limit:  # refused from its size alone: not one byte of it is read
            return TreeFile(relative, None, too_large("file", size, limit))
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        return TreeFile(relative, None, f"unreadable file: {error}")
    if len(data) > limit:  # it grew after the size check
        return TreeFile(relative, None, too_large("file", len(data), limit))
    return TreeFile(relative, data, None)
