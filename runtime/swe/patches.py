"""What goes into a prediction's patch, and which files a test patch touches.

The workspace diff holds everything the agent left behind. SWE-bench applies the instance's
``test_patch`` after the prediction, so test files and scripts the agent *added* would collide
with it or pollute the result; build debris (bytecode, caches) is never part of a fix.
"""

from __future__ import annotations

import re
from fnmatch import fnmatch

ALWAYS_DROPPED = ("*.pyc", "*/__pycache__/*", "__pycache__/*", ".pytest_cache/*", "*.egg-info/*")
"""Paths never kept in a patch."""
ADDED_AND_DROPPED = (
    "test_*.py",
    "*/test_*.py",
    "*_test.py",
    "tests/*",
    "*/tests/*",
    "reproduce*",
    "*/reproduce*",
    "repro.py",
    "*/repro.py",
    "repro_*",
    "*/repro_*",
    "scratch*",
    "*/scratch*",
)
"""New files (only new ones) left out of a patch by default: the agent's own tests and scripts."""

_HEADER = re.compile(r"^diff --git a/(.+?) b/(.+)$")


def split_files(diff: str) -> list[tuple[str, str]]:
    """The diff's sections as (path, text), in order."""
    sections: list[tuple[str, str]] = []
    for part in re.split(r"(?m)^(?=diff --git )", diff):
        if not part.strip():
            continue
        match = _HEADER.match(part.splitlines()[0])
        path = match.group(2) if match else ""
        sections.append((path, part))
    return sections


def filter_patch(diff: str, drop_added: tuple[str, ...] = ADDED_AND_DROPPED) -> str:
    """``diff`` without build debris and without new files matching ``drop_added``."""
    kept = []
    for path, text in split_files(diff):
        if any(fnmatch(path, pattern) for pattern in ALWAYS_DROPPED):
            continue
        added = "\nnew file mode " in text.split("@@", 1)[0] or "\n--- /dev/null" in text
        if added and any(fnmatch(path, pattern) for pattern in drop_added):
            continue
        kept.append(text)
    return "".join(kept)


def touched_files(diff: str) -> list[str]:
    """The paths a patch changes (for the test files of a ``test_patch``)."""
    return [path for path, _ in split_files(diff) if path]
