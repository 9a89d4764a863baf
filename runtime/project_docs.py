"""Project instructions: the AGENTS.md files that tell an agent how to work in a repository.

The semantics are Codex's (and kimi-cli's): one file per directory from the repository root
down to the working directory, root first so deeper files come later and win; in each directory
``AGENTS.override.md`` replaces ``AGENTS.md``, and configured fallback names (``CLAUDE.md``, ...)
are tried after them. A user-level file from ponder's config folder comes before all of them.
Past the size cap the deepest files are kept and the shallowest dropped, with a note.

The workspace is written by the sandbox, so its files are hostile: a file is read only when it
is a regular file itself (never through a symlink, never a FIFO), and only up to the cap.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

NAMES = ("AGENTS.override.md", "AGENTS.md")
MAX_BYTES = 32 * 1024


@dataclass(frozen=True)
class ProjectDoc:
    shown_as: str
    """Where it came from, as the model and the user read it (relative to the repository)."""
    text: str


def repository_root(workspace: Path) -> Path:
    """The nearest folder at or above ``workspace`` with a ``.git``; the workspace without one."""
    for folder in (workspace, *workspace.parents):
        if os.path.lexists(folder / ".git"):
            return folder
    return workspace


def read_regular(path: Path, limit: int) -> str | None:
    """At most ``limit`` bytes of ``path`` when it is a regular file and not a link; else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return file.read(limit).decode("utf-8", errors="replace")


def find_project_docs(
    workspace: Path,
    fallbacks: tuple[str, ...] = (),
    user_doc: Path | None = None,
    max_bytes: int = MAX_BYTES,
) -> tuple[list[ProjectDoc], str | None]:
    """The instructions for ``workspace``, in prompt order, and a note when some were cut."""
    root = repository_root(workspace)
    folders = [workspace, *workspace.parents]
    folders = list(reversed(folders[: folders.index(root) + 1]))
    found: list[ProjectDoc] = []
    if user_doc is not None:
        text = read_regular(user_doc, max_bytes + 1)  # one more: over the cap shows
        if text is not None and text.strip():
            found.append(ProjectDoc(str(user_doc), text))
    for folder in folders:
        for name in (*NAMES, *fallbacks):
            text = read_regular(folder / name, max_bytes + 1)
            if text is not None and text.strip():
                found.append(ProjectDoc((folder / name).relative_to(root).as_posix(), text))
                break
    return _within(found, max_bytes)


def _within(docs: list[ProjectDoc], max_bytes: int) -> tuple[list[ProjectDoc], str | None]:
    """The deepest docs that fit in ``max_bytes`` together, and what was left out or cut."""
    kept: list[ProjectDoc] = []
    used = 0
    for index in range(len(docs) - 1, -1, -1):
        doc = docs[index]
        size = len(doc.text.encode())
        if used + size <= max_bytes:
            kept.insert(0, doc)
            used += size
            continue
        problems = []
        left_out = [d.shown_as for d in docs[: index + 1]]
        if not kept:  # the deepest one alone is too long: its beginning is kept
            start = doc.text.encode()[:max_bytes].decode(errors="ignore")
            kept.append(ProjectDoc(doc.shown_as, start + "\n[... cut at the size limit ...]"))
            problems.append(f"{doc.shown_as} cut")
            left_out.pop()
        if left_out:
            problems.append(f"left out {', '.join(left_out)}")
        return kept, f"instructions are over {max_bytes:,} bytes: {'; '.join(problems)}"
    return kept, None


def instructions_prompt(docs: list[ProjectDoc]) -> str:
    """The part of the system prompt that carries the instructions."""
    if not docs:
        return ""
    parts = [
        "# Instructions for this repository",
        "Follow these; when two disagree, the one listed later (deeper in the tree) wins.",
    ]
    for doc in docs:
        parts.append(f"## {doc.shown_as}\n\n{doc.text.strip()}")
    return "\n\n".join(parts)
