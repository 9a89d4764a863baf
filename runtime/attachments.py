"""``@path`` in a task: the file's contents go to the model with the task, as Claude Code and
Codex attach them.

Only plain relative paths of regular files in the workspace are read, through
:class:`~ponder.runtime.confined_files.ConfinedTree` (a link, ``..``, ``.git``, a FIFO or a
device is never followed or opened for reading); each file is cut at :data:`FILE_LIMIT` bytes and
all of them at :data:`TOTAL_LIMIT`, and what was cut or left out is said, to the model and to
the person.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ponder.runtime.confined_files import ConfinedTree, OutsideWorkspace

FILE_LIMIT = 64 * 1024
TOTAL_LIMIT = 256 * 1024
_MENTION = re.compile(r"(?<![\w@/])@([\w.+-][\w./+-]*)")


@dataclass
class Attached:
    text: str = ""
    """The files' contents, to follow the task."""
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What was cut or not attached, and why."""


def attach_mentions(task: str, workspace: Path) -> Attached:
    """The contents of every file of the workspace that ``task`` names as ``@path``."""
    result = Attached()
    blocks: list[str] = []
    left = TOTAL_LIMIT
    tree = ConfinedTree(workspace)
    for name in dict.fromkeys(m.rstrip(".") for m in _MENTION.findall(task)):
        try:
            data = tree.read_file(os.fsencode(name), min(FILE_LIMIT, left))
        except (OutsideWorkspace, FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # not a workspace file: an address, a handle, or a path the model may make
        if data is None:
            result.notes.append(f"@{name} is not a regular file; not attached")
            continue
        if left <= 0:
            result.notes.append(f"@{name} not attached: {TOTAL_LIMIT // 1024} KB already are")
            continue
        cap = min(FILE_LIMIT, left)
        cut = len(data) > cap
        text = data[:cap].decode("utf-8", errors="replace")
        if "\0" in text:
            result.notes.append(f"@{name} is binary; not attached")
            continue
        left -= min(len(data), cap)
        shown = f"{name} (first {cap // 1024} KB)" if cut else name
        if cut:
            result.notes.append(f"@{name} cut at {cap // 1024} KB")
        blocks.append(f'<file path="{shown}">\n{text}\n</file>')
        result.files.append(name)
    if blocks:
        result.text = "\n\nFiles the task names:\n" + "\n".join(blocks)
    return result
