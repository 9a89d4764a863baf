"""What a ponder process leaves behind, and telling when its owner is gone.

Temporary folders (a session's checkpoint index, a batch's repository copies, the local
sandbox's state, an image's root filesystem) are made by :func:`private_tempdir`, whose name
carries the owner's pid and start time. Each is removed when its owner is done with it, on every
exit path; one that a killed process left is found by :func:`remove_leftover_tempdirs` (run by
``ponder sandbox cleanup``), which removes it only once its owner no longer runs.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIXES = ("ponder-index-", "ponder-swe-", "ponder-local-", "ponder-rootfs-", "ponder-copy-")
_NAME = re.compile(r"(?P<prefix>ponder-[a-z]+-)(?P<pid>\d+)\.(?P<start>\d+)-\w+")


def process_start_time(pid: int) -> str:
    """The kernel's start time of ``pid`` (clock ticks since boot); empty when unknown or when
    the process has ended and only its zombie waits to be reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if fields[0] in ("Z", "X") else fields[19]


def owner_alive(pid: int, start: str) -> bool:
    """Whether process ``pid`` of this machine runs and is the one that started at ``start``
    (a reused pid is someone else)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return process_start_time(pid) == start


def private_tempdir(prefix: str) -> Path:
    """A new temporary folder named for this process (``prefix`` is one of :data:`PREFIXES`)."""
    assert prefix in PREFIXES, prefix
    pid = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{pid}.{process_start_time(pid) or 0}-"))


def remove_leftover_tempdirs(directory: Path | None = None) -> list[Path]:
    """Remove the temporary folders whose owner no longer runs; returns them."""
    removed = []
    for path in Path(directory or tempfile.gettempdir()).glob("ponder-*"):
        found = _NAME.fullmatch(path.name)
        if found is None or found["prefix"] not in PREFIXES or not path.is_dir():
            continue
        if owner_alive(int(found["pid"]), found["start"]):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
