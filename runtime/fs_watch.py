"""Whether anything under a folder changed since the last look, told by the kernel (inotify).

A process in the sandbox can forge a file's modification time but not the kernel's change
notifications: every write, truncation, attribute change, creation, removal or rename of an
entry in a watched directory queues an event, whatever mount namespace it came from. A write
through a shared memory mapping queues none, but closing the last reference to a file opened for
writing does (``IN_CLOSE_WRITE``), and that happens at the latest when the writer exits; so
"no event, and no process of the sandbox alive" means "nothing changed".

:class:`ChangeWatch` only answers *whether* something changed: the walk that finds *what* changed
calls :meth:`ChangeWatch.watch` on every directory before it lists it, so a directory made
meanwhile is either listed after its watch exists or announced by an event in its parent. When
the kernel cannot watch (not Linux, the watch limit reached, the queue overflowed), it answers
"maybe", and the caller walks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
    | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)  # fmt: skip
"""Every change to a directory's entries or to a file's content or attributes; never a read."""


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


class ChangeWatch:
    """One inotify instance over a tree; :meth:`quiet` says whether it saw nothing since the
    last call. Close it when done (the kernel drops every watch with the descriptor)."""

    def __init__(self) -> None:
        self._libc = _libc()
        self._fd = -1
        self.complete = False
        """Every directory the walks met is watched (so a quiet answer can be trusted)."""
        if self._libc is not None:
            self._fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        self._dirty = True

    def begin_walk(self) -> None:
        """A walk starts: what happens from now on is news to the next :meth:`quiet`."""
        self._drain()
        self._dirty = False
        self.complete = self._fd >= 0

    def watch(self, directory: bytes) -> None:
        """Watch ``directory`` (``/proc/self/fd/N`` of the walk's own descriptor, so the very
        directory it is about to list); call before listing it.

        Watching a directory already watched is a no-op for the kernel, so every walk simply
        watches every directory it meets."""
        if not self.complete or self._libc is None:
            return
        if self._libc.inotify_add_watch(self._fd, directory, MASK) < 0:
            code = ctypes.get_errno()
            if code not in (errno.ENOENT, errno.ENOTDIR):  # gone meanwhile: its parent told us
                self.complete = False  # the watch limit (ENOSPC), or no permission

    def quiet(self) -> bool:
        """True when nothing changed since the last walk began (and the watch is trusted)."""
        if self._drain():
            self._dirty = True
        return self.complete and not self._dirty

    def _drain(self) -> bool:
        """Read every queued event; True if there was one."""
        if self._fd < 0:
            return False
        seen = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return seen
            except OSError:
                self.complete = False
                return True
            if not data:
                return seen
            seen = True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.complete = False

    def __del__(self) -> None:  # a forgotten close must not leak the descriptor
        self.close()
