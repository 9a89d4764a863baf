"""Whether anything under a folder changed since the last look, told by the kernel (inotify).

A process in the sandbox can forge a file's modification time but not the kernel's change
notifications: every write, truncation, attribute change, creation, removal or rename of an
entry in a watched directory queues an event, whatever mount namespace it came from.
:class:`ChangeWatch` answers two questions:

- *whether* something changed (:meth:`ChangeWatch.quiet`): the walk that finds what calls
  :meth:`ChangeWatch.watch` on every directory before it lists it, so a directory made meanwhile
  is either listed after its watch exists or announced by an event in its parent;
- *which files were written* (:meth:`ChangeWatch.written`), even when their facts did not
  change: a write through a shared memory mapping into a page that is already dirty changes
  neither mtime nor ctime, but closing the last reference to a file opened for writing
  (``IN_CLOSE_WRITE``, at the latest when the writer exits) names the file.

When the kernel cannot watch (not Linux, the watch limit reached) it answers "maybe", and the
caller walks; when its queue overflowed, every file may have been written.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
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
IN_Q_OVERFLOW = 0x4000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
MASK = (
    IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE
    | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
)  # fmt: skip
"""Every change to a directory's entries or to a file's content or attributes; never a read."""
WRITTEN = IN_MODIFY | IN_CLOSE_WRITE
_HEADER = struct.Struct("iIII")


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
    """One inotify instance over a tree. Close it when done (the kernel drops every watch with
    the descriptor)."""

    def __init__(self) -> None:
        self._libc = _libc()
        self._fd = -1
        self.complete = False
        """Every directory the walks met is watched (so a quiet answer can be trusted)."""
        if self._libc is not None:
            self._fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        self._dirty = True
        self._folders: dict[int, bytes] = {}
        """Each watch's folder, relative to the root, as the last walk found it."""
        self._written: list[tuple[int, bytes]] = []
        self._overflowed = False

    def begin_walk(self) -> None:
        """A walk starts: what happens from now on is news to the next :meth:`quiet`."""
        self._drain()
        self._dirty = False
        self.complete = self._fd >= 0

    def watch(self, directory: bytes, relative: bytes) -> None:
        """Watch ``directory`` (``/proc/self/fd/N`` of the walk's own descriptor, so the very
        directory it is about to list, found at ``relative``); call before listing it.

        Watching a directory already watched is a no-op for the kernel, so every walk simply
        watches every directory it meets (and learns where each watch is now)."""
        if not self.complete or self._libc is None:
            return
        wd = self._libc.inotify_add_watch(self._fd, directory, MASK)
        if wd >= 0:
            self._folders[wd] = relative
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOENT, errno.ENOTDIR):  # gone meanwhile: its parent told us
            self.complete = False  # the watch limit (ENOSPC), or no permission

    def quiet(self) -> bool:
        """True when nothing changed since the last walk began (and the watch is trusted)."""
        if self._drain():
            self._dirty = True
        return self.complete and not self._dirty

    def written(self) -> set[bytes] | None:
        """Files written since the last call, relative to the root, placed by the folders the
        last walk found (call after it); None when the kernel lost count (every file may have
        been)."""
        self._drain()
        overflowed, self._overflowed = self._overflowed, False
        events, self._written = self._written, []
        if overflowed:
            return None
        found = set()
        for wd, name in events:
            folder = self._folders.get(wd)
            if folder is not None:
                found.add(folder + b"/" + name if folder else name)
        return found

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
                self._overflowed = True
                return True
            if not data:
                return seen
            seen = True
            self._read_events(data)

    def _read_events(self, data: bytes) -> None:
        at = 0
        while at + _HEADER.size <= len(data):
            wd, mask, _, length = _HEADER.unpack_from(data, at)
            name = data[at + _HEADER.size : at + _HEADER.size + length].rstrip(b"\0")
            at += _HEADER.size + length
            if mask & IN_Q_OVERFLOW:
                self._overflowed = True
            elif mask & WRITTEN and name:
                self._written.append((wd, name))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.complete = False

    def __del__(self) -> None:  # a forgotten close must not leak the descriptor
        self.close()
