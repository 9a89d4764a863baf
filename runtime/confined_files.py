"""Reading and writing files of a workspace from the host without ever leaving it.

The sandbox can turn any directory of the workspace into a symlink to a place on the host, at
any moment (a background job can do it while ponder works). So the host never opens a workspace
path as a whole: :class:`ConfinedTree` walks it one component at a time from a descriptor of the
workspace root, with ``O_NOFOLLOW`` on every step, and creates, replaces and removes entries
relative to the descriptor of their own directory. A symlink on the way is refused, never
followed; a symlink at the end is read or replaced as a link. Names are bytes, so any name git
can store works, and ``.git`` is never touched.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class OutsideWorkspace(Exception):
    """A path that would leave the workspace (a symlink or ``..`` on the way, or ``.git``)."""


@dataclass(frozen=True)
class Entry:
    """What a path holds, in git's terms."""

    kind: Literal["file", "link", "directory", "other"]
    executable: bool = False
    blob: str = ""
    """For files and links: git's object id of the content (a link's content is its target)."""


def blob_id(data: bytes) -> str:
    """The id git gives ``data`` as a blob (SHA-1 repositories)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _parts(path: bytes, metadata: bool = False) -> list[bytes]:
    """The names on the way to ``path``; ``metadata``: a read may enter ``.git``."""
    parts = path.split(b"/")
    if any(part in (b"", b".", b"..") or b"\0" in part for part in parts):
        raise OutsideWorkspace(f"{path!r} is not a plain relative path")
    if not metadata and any(part.lower() == b".git" for part in parts):
        raise OutsideWorkspace(f"{path!r} is inside .git")
    return parts


class ConfinedTree:
    def __init__(self, root: Path) -> None:
        self.root = root

    @contextmanager
    def _parent(
        self, path: bytes, create: bool, metadata: bool = False
    ) -> Iterator[tuple[int, bytes]]:
        """A descriptor of the directory holding ``path`` (made when ``create``), and the name.

        Raises FileNotFoundError when a directory on the way is missing, OutsideWorkspace when
        one is a symlink or not a directory.
        """
        *directories, name = _parts(path, metadata)
        fd = os.open(self.root, _DIRECTORY)
        try:
            for part in directories:
                try:
                    inner = os.open(part, _DIRECTORY, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    inner = os.open(part, _DIRECTORY, dir_fd=fd)
                except OSError as error:
                    if error.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise OutsideWorkspace(
                            f"{path!r}: {part!r} on the way is a link or a file"
                        ) from None
                    raise
                os.close(fd)
                fd = inner
            yield fd, name
        finally:
            os.close(fd)

    def entry(self, path: bytes) -> Entry | None:
        """What ``path`` holds now; None when nothing is there."""
        try:
            with self._parent(path, create=False) as (fd, name):
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    return Entry("link", blob=blob_id(os.readlink(name, dir_fd=fd)))
                if stat.S_ISDIR(info.st_mode):
                    return Entry("directory")
                if not stat.S_ISREG(info.st_mode):
                    return Entry("other")
                handle = os.open(name, _READ, dir_fd=fd)
                with os.fdopen(handle, "rb") as file:
                    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):  # swapped meanwhile
                        return Entry("other")
                    data = file.read()
                return Entry("file", bool(info.st_mode & 0o111), blob_id(data))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def lstat(self, path: bytes) -> os.stat_result | None:
        """The facts of ``path`` itself (a link at the end is not followed); None when nothing
        is there. Reads only, so ``.git`` may be on the way."""
        try:
            with self._parent(path, create=False, metadata=True) as (fd, name):
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def read_file(self, path: bytes, limit: int, metadata: bool = False) -> bytes | None:
        """Up to ``limit`` + 1 bytes of the regular file ``path`` (one more than the limit says
        it was cut); None when ``path`` is a link, a directory or something else.
        ``metadata``: the path may be in a ``.git`` (to read a repository's config)."""
        with self._parent(path, create=False, metadata=metadata) as (fd, name):
            try:
                handle = os.open(name, _READ, dir_fd=fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.EISDIR):
                    return None
                raise
            with os.fdopen(handle, "rb") as file:
                if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):  # a FIFO, a device
                    return None
                return file.read(limit + 1)

    def write_file(
        self, path: bytes, data: bytes, executable: bool, mode: int | None = None
    ) -> None:
        """Create or replace ``path`` with ``data`` (a temporary file, then a rename), with
        ``mode`` (default: 755 or 644 by ``executable``). The file is private until then."""
        mode = mode if mode is not None else 0o755 if executable else 0o644
        with self._parent(path, create=True) as (fd, name):
            self._clear_directory(fd, name)
            temporary = b".ponder-undo-" + os.urandom(6).hex().encode()
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            handle = os.open(temporary, flags, 0o600, dir_fd=fd)
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                    os.fchmod(file.fileno(), mode)
                os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                os.unlink(temporary, dir_fd=fd)
                raise

    def write_link(self, path: bytes, target: bytes) -> None:
        with self._parent(path, create=True) as (fd, name):
            self._clear_directory(fd, name)
            temporary = b".ponder-undo-" + os.urandom(6).hex().encode()
            os.symlink(target, temporary, dir_fd=fd)
            os.rename(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)

    def remove(self, path: bytes) -> None:
        """Remove the file or link at ``path`` (never what a link points to)."""
        try:
            with self._parent(path, create=False) as (fd, name):
                os.unlink(name, dir_fd=fd)
        except (FileNotFoundError, NotADirectoryError):
            pass

    def remove_empty_directory(self, path: bytes) -> None:
        """Remove the folder ``path`` if it is empty (and a folder, not a link to one)."""
        try:
            with self._parent(path, create=False) as (fd, name):
                os.rmdir(name, dir_fd=fd)
        except (OSError, OutsideWorkspace):
            pass  # not empty, gone, or not a plain folder: it stays

    @staticmethod
    def _clear_directory(fd: int, name: bytes) -> None:
        """An empty directory where a file must go is removed (a full one stays: an error)."""
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            os.rmdir(name, dir_fd=fd)
