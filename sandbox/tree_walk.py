"""Walking a folder that the sandbox may change while it is walked, never through a symlink.

A background job can swap any directory of the workspace for a symlink to ``/`` at any moment.
A walk that lists a directory by its path would then follow the link and walk the host's whole
disk (reading its metadata, and taking minutes). :func:`walk_entries` enters each directory by
a descriptor opened relative to its parent's with ``O_NOFOLLOW``: a directory that became a
symlink is not entered. Only one descriptor per level of depth is open at a time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

_ENCODING = sys.getfilesystemencoding()
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

Entry = os.DirEntry[str]
"""An entry of a directory listed by descriptor: its name is ``str`` (``os.fsencode`` gives the
bytes)."""


def _open(name: bytes, parent: int | None) -> int | None:
    """A descriptor of directory ``name`` in ``parent`` (a link is refused); ``parent`` None:
    ``name`` is the root, a path the user gave, which may be reached through links."""
    flags = _DIRECTORY if parent is not None else _DIRECTORY & ~os.O_NOFOLLOW
    try:
        return os.open(name, flags, dir_fd=parent)
    except OSError:
        return None


def walk_entries(
    root: bytes,
    descend: Callable[[bytes, Entry], bool] = lambda path, entry: True,
    on_directory: Callable[[bytes, bytes], None] | None = None,
    unlistable: Callable[[bytes, Entry], None] | None = None,
) -> Iterator[tuple[bytes, Entry, bool]]:
    """Every entry under ``root`` as (its path relative to ``root``, the entry, whether it is a
    directory), depth first.

    A directory is entered when ``descend`` says so (by default always). ``on_directory`` gets
    a path that names each directory entered (``/proc/self/fd/N``) and its relative path, before
    it is listed (to watch it); ``unlistable`` gets a directory that could not be entered (no
    permission, gone, swapped for a link, too deep for the descriptors left), while its parent
    is still open (so ``entry.stat`` works)."""
    top = _open(root, None)
    if top is None:
        return
    stack: list[tuple[bytes, int, Iterator[Entry]]] = []

    def enter(relative: bytes, fd: int) -> bool:
        try:
            if on_directory is not None:
                on_directory(b"/proc/self/fd/%d" % fd, relative)
            stack.append((relative, fd, iter(os.scandir(fd))))
        except OSError:
            os.close(fd)
            return False
        return True

    enter(b"", top)
    while stack:
        relative, fd, entries = stack[-1]
        try:
            entry = next(entries)
        except (StopIteration, OSError):
            stack.pop()
            os.close(fd)
            continue
        name = entry.name.encode(_ENCODING, "surrogateescape")
        path = relative + b"/" + name if relative else name
        try:
            is_directory = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_directory = False
        yield path, entry, is_directory
        if is_directory and descend(path, entry):
            child = _open(name, fd)
            if (child is None or not enter(path, child)) and unlistable is not None:
                unlistable(path, entry)
