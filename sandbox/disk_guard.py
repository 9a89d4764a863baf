"""Stopping a command that fills the host's disk through a bind-mounted workspace.

The container's own filesystem is read-only and its ``/tmp`` is a capped tmpfs, but the workspace is
the user's directory: a command could write there until the laptop's disk is full. For the sandbox's
whole life (a job a command left in the background writes while ponder waits for the model, or for
the user), :class:`DiskGuard` reads the free space and free inodes of the workspace's filesystem a
few times a second (one ``statvfs``, nothing else). Only when those say the limits may be passed
does it measure the workspace itself (a walk that counts every block and inode under it), so another
program filling the same disk never gets a command stopped. A command is stopped when the workspace
has grown past ``max_growth`` bytes or ``max_new_files`` files since the session started, or when
the filesystem falls under ``min_free`` while it runs; the reason goes to the model and the user,
and every process of the sandbox is stopped (a background writer too). Commands that shrink the
workspace are never stopped.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ponder.sandbox.base import AnyOf, Halt
from ponder.sandbox.tree_walk import walk_entries

GB = 1024**3
POLL_S = 0.25
MIN_WALK_INTERVAL_S = 2.0
"""Measuring the workspace costs a walk; at most one this often."""


@dataclass(frozen=True)
class DiskLimits:
    """The config file's ``[disk]`` (the metadata make it a setting, the docstrings its help)."""

    max_growth: int = field(default=5 * GB, metadata={"setting": {"unit": "bytes"}})
    """How much the workspace may grow in one session before a command is stopped."""
    max_new_files: int = field(default=250_000, metadata={"setting": {"ge": 0}})
    """How many files and directories the workspace may gain in one session."""
    min_free: int = field(default=GB, metadata={"setting": {"unit": "bytes"}})
    """Free space a command may not take the workspace's disk below."""


@dataclass(frozen=True)
class Usage:
    bytes: int
    files: int


def measure(root: Path) -> Usage:
    """Blocks and inodes under ``root`` (symlinks not followed, hard links counted once)."""
    total = files = 0
    seen: set[tuple[int, int]] = set()
    for _, entry, _ in walk_entries(os.fsencode(root)):
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
        files += 1
        total += info.st_blocks * 512
    return Usage(total, files)


def _human(size: int) -> str:
    return f"{size / GB:.1f} GB" if size >= GB else f"{size / 1024**2:.0f} MB"


class DiskGuard:
    """One per sandbox, watching for its whole life: while a command runs and between commands,
    when the processes a command left in the background may still be writing.

    When a limit is passed, ``on_trip`` is called with the reason (the sandbox stops every
    process it runs), and the running command, if any, is stopped with that reason."""

    def __init__(
        self,
        workspace: Path,
        limits: DiskLimits,
        on_trip: Callable[[str], None] | None = None,
    ) -> None:
        self.workspace = workspace
        self.limits = limits
        self._on_trip = on_trip
        self._lock = threading.Lock()
        self._baseline: Usage | None = None
        self._measured = threading.Thread(target=self._measure_baseline, daemon=True)
        self._measured.start()  # a big workspace takes a moment; commands need not wait for it
        self._growth = Usage(0, 0)
        self._reference = self._free()
        self._last_walk = 0.0
        self._floor = self._reference
        """Free space and inodes when the latest command started (or the last trip)."""
        self._growth_floor = self._growth
        """Growth when the latest command started: shrinking or holding still is never
        stopped."""
        self._command_stop: threading.Event | None = None
        self._command_reasons: list[str] = []
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="ponder-disk-guard", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop watching (the sandbox is gone); safe to call twice."""
        self._done.set()
        if self._watcher is not threading.current_thread():
            self._watcher.join()

    def _measure_baseline(self) -> None:
        self._baseline = measure(self.workspace)

    def _free(self) -> tuple[int, int]:
        """Free bytes and free inodes of the workspace's filesystem."""
        found = os.statvfs(self.workspace)
        return found.f_bavail * found.f_frsize, found.f_favail

    def _confirmed_growth(self, free: tuple[int, int]) -> Usage:
        """The workspace's growth since the session started, measured (the walk)."""
        self._measured.join()
        assert self._baseline is not None
        now = measure(self.workspace)
        self._growth = Usage(now.bytes - self._baseline.bytes, now.files - self._baseline.files)
        self._reference = free
        self._last_walk = time.monotonic()
        return self._growth

    def check(self) -> str | None:
        """Why what runs in the sandbox must stop now; None while it may go on."""
        with self._lock:
            free = self._free()
            at_start, growth_at_start = self._floor, self._growth_floor
            if free[0] < self.limits.min_free and free[0] < at_start[0]:
                return (
                    f"stopped: the disk holding the workspace is down to {_human(free[0])} free "
                    f"(ponder keeps {_human(self.limits.min_free)}: disk.min_free); delete what "
                    "is not needed"
                )
            estimate = Usage(
                self._growth.bytes + self._reference[0] - free[0],
                self._growth.files + self._reference[1] - free[1],
            )
            within = (
                estimate.bytes <= self.limits.max_growth
                and estimate.files <= self.limits.max_new_files
            )
            if within or time.monotonic() - self._last_walk < MIN_WALK_INTERVAL_S:
                return None
            growth = self._confirmed_growth(free)
            if growth.bytes > self.limits.max_growth and growth.bytes > growth_at_start.bytes:
                return (
                    f"stopped: the workspace grew by {_human(growth.bytes)} in this session, past "
                    f"the limit of {_human(self.limits.max_growth)} (disk.max_growth); delete "
                    "what is not needed, or write big files outside the workspace (/tmp)"
                )
            if growth.files > self.limits.max_new_files and growth.files > growth_at_start.files:
                return (
                    f"stopped: the workspace gained {growth.files:,} files in this session, past "
                    f"the limit of {self.limits.max_new_files:,} (disk.max_new_files)"
                )
            return None

    def _watch(self) -> None:
        while not self._done.wait(POLL_S):
            reason = self.check()
            if reason is None:
                continue
            with self._lock:
                self._floor, self._growth_floor = self._free(), self._growth  # tripped once
                stop, self._command_stop = self._command_stop, None
                if stop is not None:
                    self._command_reasons.append(reason)
                    stop.set()
            if self._on_trip is not None:
                self._on_trip(reason)

    @contextmanager
    def command(self, stop: threading.Event) -> Iterator[list[str]]:
        """While a command runs: ``stop`` is set if it must stop; the list it yields then holds
        the reason. The command's start is the new floor: it may not take the disk lower."""
        with self._lock:
            self._floor, self._growth_floor = self._free(), self._growth
            self._command_stop, self._command_reasons = stop, []
            reasons = self._command_reasons
        try:
            yield reasons
        finally:
            with self._lock:
                self._command_stop = None


@contextmanager
def guarded(
    guard: DiskGuard | None, cancel: threading.Event | None
) -> Iterator[tuple[Halt, list[str]]]:
    """For one command: what stops it (the caller's ``cancel``, or the guard), and the list that
    holds the guard's reason once it stopped the command."""
    stop = threading.Event()
    halt = AnyOf(cancel, stop)
    if guard is None:
        yield halt, []
        return
    with guard.command(stop) as reasons:
        yield halt, reasons
