"""What is in the workspace, as the host sees it: every path, and facts the sandbox cannot forge.

A process in the sandbox can set a file's modification time (``touch -r``), plant a ``.git``,
hide files behind ``.gitignore`` or in a cache folder, or give a file a size that costs nothing
on disk. It cannot set a file's inode change time (``ctime``, which the kernel sets on every
write, rename or attribute change) or its inode number. :func:`walk` reads, for every path
under the workspace (ignored and cache folders, nested repositories and ``.git`` included,
symlinks not followed), the kind, mode, size, inode, mtime and ctime: two walks that agree on
a path saw the same file.

Each path is then *stored* (its content goes into the checkpoint, so the diff shows it and undo
restores it) or only *listed* (a signature of its facts is kept, so the change is seen and
reported, but not its content): :func:`unstored_reason` says which, and why.
:func:`warning` names the changes a person must not miss, because something on their machine
runs them: bytecode, Python start-up files, git metadata and hooks, executables.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ponder.sandbox.tree_walk import Entry, walk_entries

STORE_FILE_LIMIT = 8 * 1024**2
"""Bytes beyond which a file's content is not stored (by its size, so a sparse file costs
nothing): it is listed, and undo cannot put it back."""
CACHE_FOLDERS = frozenset(
    {
        b"node_modules",
        b"__pycache__",
        b".venv",
        b"venv",
        b".tox",
        b".nox",
        b".mypy_cache",
        b".pytest_cache",
        b".ruff_cache",
    }
)
"""Folders of installed packages and caches: listed, never stored (they are big and rebuilt)."""

Stat = tuple[int, int, int, int, int, int, int, int]
"""A path's facts: mode (kind and permissions), size, inode, mtime and ctime (ns), link count,
owner and group."""
MODE, SIZE, INODE, MTIME, CTIME, LINKS, OWNER, GROUP = range(8)


def facts_of(info: os.stat_result) -> Stat:
    return (
        info.st_mode,
        info.st_size,
        info.st_ino,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_nlink,
        info.st_uid,
        info.st_gid,
    )


def identity_of(info: os.stat_result) -> Stat:
    """A folder's facts by its identity alone (made, removed or replaced, not its content)."""
    return (info.st_mode, 0, info.st_ino, 0, 0, 0, info.st_uid, info.st_gid)


_EUID = os.geteuid() if hasattr(os, "geteuid") else -1
_GROUPS = frozenset(os.getgroups()) | {os.getegid()} if hasattr(os, "getgroups") else frozenset()


@dataclass
class Walk:
    found: dict[bytes, Stat]
    """Every path but the folders that could be listed, with its facts."""
    blind: set[bytes]
    """Folders that could not be listed: what is in them is not seen."""


def walk(root: bytes, on_directory: Callable[[bytes, bytes], None] | None = None) -> Walk:
    """Every path under ``root`` but readable directories, relative to it, with its facts.

    Symlinks are never followed, not even one a directory became mid-walk
    (:func:`~ponder.sandbox.tree_walk.walk_entries`); a directory this user cannot list is
    itself an entry (what is inside cannot be seen, which is reported), and so is every ``.git``
    folder. A repository's ``objects`` folder is known by its identity only: thousands of files
    of data named by their own hash, which run nothing. ``on_directory`` is called with a path
    naming each directory, and its relative path, before it is listed (to watch it)."""
    found: dict[bytes, Stat] = {}
    blind: set[bytes] = set()

    def descend(path: bytes, entry: Entry) -> bool:
        if entry.name == "objects" and _in_metadata(path):
            found[path] = identity_of(entry.stat(follow_symlinks=False))  # not walked
            return False
        if entry.name == ".git":
            found[path] = identity_of(entry.stat(follow_symlinks=False))  # made or replaced
        return True

    def unlistable(path: bytes, entry: Entry) -> None:
        info = entry.stat(follow_symlinks=False)
        found[path] = (*identity_of(info)[:3], info.st_mtime_ns, info.st_ctime_ns, 0, *_owner(info))
        blind.add(path)

    for path, entry, is_directory in walk_entries(root, descend, on_directory, unlistable):
        if is_directory:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        found[path] = (  # facts_of, inline: this loop runs for every path at every walk
            info.st_mode,
            info.st_size,
            info.st_ino,
            info.st_mtime_ns,
            info.st_ctime_ns,
            info.st_nlink,
            info.st_uid,
            info.st_gid,
        )
    return Walk(found, blind)


def own_output(root: bytes) -> dict[bytes, int]:
    """ponder's own stdout and stderr where they are files in the workspace (``-v 2> log``),
    relative path -> inode. What ponder writes there is no change of the session's: left out
    of the walk while the path is still that file (replaced by anything else, it counts)."""
    found = {}
    for fd in (1, 2):
        try:
            info = os.fstat(fd)
            path = os.fsencode(Path(f"/proc/self/fd/{fd}").readlink())
        except OSError:
            continue
        prefix = root.rstrip(b"/") + b"/"
        if stat.S_ISREG(info.st_mode) and path.startswith(prefix):
            found[path[len(prefix) :]] = info.st_ino
    return found


def _owner(info: os.stat_result) -> tuple[int, int]:
    return info.st_uid, info.st_gid


def _in_metadata(path: bytes) -> bool:
    return any(is_git_metadata(part) for part in path.split(b"/")[:-1])


def signature(facts: Stat) -> str:
    """The facts as a 40-hex id (how a listed path is kept in the checkpoint store)."""
    return hashlib.sha1(b" ".join(b"%d" % f for f in facts), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Side:
    """A path on one side of a change: stored (mode and blob) or listed (its signature)."""

    listed: bool
    mode: str
    object: str

    @property
    def executable(self) -> bool:
        return self.mode == "100755"


@dataclass(frozen=True)
class Change:
    """A path that differs between two checkpoints (a path that moved from stored to listed,
    or back, is one change)."""

    path: bytes
    before: Side | None
    after: Side | None

    @property
    def listed(self) -> bool:
        return any(side is not None and side.listed for side in (self.before, self.after))

    @property
    def kind(self) -> str:
        return "added" if self.before is None else "deleted" if self.after is None else "modified"


# --- stored or listed


def _fold(component: bytes) -> bytes:
    """A name as Windows and macOS file systems compare it (git refuses what folds to .git)."""
    return component.lower().rstrip(b" .")


def is_git_metadata(component: bytes) -> bool:
    """``.git`` and every name git treats as it on some file system (``.GIT``, ``.git.``,
    ``.git ``, ``git~1``, ``.git::$INDEX_ALLOCATION``)."""
    folded = _fold(component)
    return folded in (b".git", b"git~1") or folded.startswith(b".git:")


_GIT_SPECIAL = (b".gitmodules", b".gitattributes", b".gitignore", b".mailmap", b"gitmod~1")


def git_can_store(path: bytes, mode: int) -> bool:
    """Whether git accepts ``path`` in a tree (a superset of what it refuses, git 2.x)."""
    if in_git_metadata(path):
        return False
    return not (stat.S_ISLNK(mode) and _fold(path.rsplit(b"/", 1)[-1]) in _GIT_SPECIAL)


def _readable(facts: Stat) -> bool:
    """Whether this user may read the file, by its mode and owner (root may read anything)."""
    if _EUID == 0:
        return True
    mode = facts[MODE]
    if facts[OWNER] == _EUID:
        return bool(mode & stat.S_IRUSR)
    if facts[GROUP] in _GROUPS:
        return bool(mode & stat.S_IRGRP)
    return bool(mode & stat.S_IROTH)


def in_git_metadata(path: bytes) -> bool:
    """Whether any name on the path is one git treats as ``.git`` on some file system (checked
    cheaply first: most paths do not hold "git" at all)."""
    if b"git" not in path.lower():
        return False
    return any(is_git_metadata(c) for c in path.split(b"/"))


def in_repository_metadata(path: bytes) -> bool:
    """Whether the path is, or is in, a ``.git``: a repository's metadata on this system."""
    return b".git" in path and b".git" in path.split(b"/")


def unstored_reason(path: bytes, facts: Stat) -> str | None:
    """Why a path's content is not stored (None: it is)."""
    components = path.split(b"/")
    mode = facts[0]
    if in_repository_metadata(path):
        return "git metadata"
    cache = next((c for c in components[:-1] if c in CACHE_FOLDERS), None)
    if cache is not None:
        return "cache folder"
    if stat.S_ISDIR(mode):
        return "a folder ponder cannot read"
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        return "not a regular file"
    if stat.S_ISREG(mode) and facts[1] > STORE_FILE_LIMIT:
        return f"over {STORE_FILE_LIMIT // 1024**2} MiB"
    if stat.S_ISREG(mode) and not _readable(facts):
        return "unreadable"
    if not git_can_store(path, mode):
        return "a name git cannot store"
    return None


# --- what must stand out

_BYTECODE = (b".pyc", b".pyo")
_PYTHON_STARTUP = (b"sitecustomize.py", b"usercustomize.py")


_NATIVE = (b".so", b".pyd", b".dylib", b".dll")
_ENVIRONMENTS = frozenset({b".venv", b"venv", b"site-packages", b"node_modules", b".tox", b".nox"})


def warning(
    path: bytes, created: bool, deleted: bool, executable: bool, linked: bool = False
) -> str | None:
    """Why a person must look at this change before running anything here (None: no reason
    beyond reviewing the diff). ``linked``: the file has other names (hard links)."""
    components = path.split(b"/")
    name = components[-1]
    metadata = [i for i, c in enumerate(components) if c == b".git"]
    if not metadata and in_git_metadata(path):
        return (
            "git cannot store this name, so the diff cannot show it: look at it yourself (on "
            "Windows or macOS it is a repository's .git)"
        )
    if metadata:
        inside = components[metadata[0] + 1 :]
        if not inside:
            what = "created" if created else "removed" if deleted else "replaced"
            return f"a git repository was {what} here: git on your machine reads its config"
        if inside[:1] == [b"hooks"] and not name.endswith(b".sample"):
            return "a git hook: git on your machine runs it"
        if inside == [b"config"]:
            return "git config: it can make git on your machine run programs"
        return "inside a repository's git metadata"
    if deleted:
        return None
    if linked and not created:
        return (
            "a hard link: the same file is elsewhere on your disk too (a package cache, another "
            "project), changed there as well; undo puts back only this name"
        )
    if name.endswith(_BYTECODE) or b"__pycache__" in components:
        return "bytecode: Python on your machine may run it instead of the source"
    if name.endswith(b".pth") or name in _PYTHON_STARTUP:
        return "runs whenever Python starts"
    if name.endswith(_NATIVE) or b".so." in name:
        return "a native library: Python imports it before a .py of the same name"
    if _ENVIRONMENTS & set(components[:-1]):
        return "an installed package changed: its code runs when you use this environment"
    if executable:
        return "an executable"
    return None
