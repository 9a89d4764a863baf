"""What the prompt completes, in the TUI and in line mode: ``/commands`` and ``@paths``.

``@path`` names a file of the workspace; its contents go to the model with the task
(:mod:`ponder.runtime.attachments`). The file list comes from git when the workspace is a
repository (so ignored build outputs stay out) and from a bounded walk otherwise.
"""

from __future__ import annotations

import os
import re
from os.path import commonpath
from pathlib import Path

import platformdirs

from ponder.runtime.host_git import GitFailed, run_git
from ponder.sandbox.safe_text import safe_name

MAX_FILES = 20_000
SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "venv", ".venv", "target", "build"})


def history_file() -> Path:
    """The prompt history, shared by the TUI and line mode."""
    path = platformdirs.user_data_path("ponder") / "history"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def workspace_files(root: Path) -> list[str]:
    """Files and directories of the workspace, relative, directories ending in ``/``; names
    with control characters (which the sandbox can make) are left out, never shown."""
    try:
        output = run_git(
            "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=root, timeout=5
        )
        listed = output.decode(errors="replace").split("\0")[:-1][:MAX_FILES]
    except GitFailed:
        listed = _walk(root)
    listed = [name for name in listed if safe_name(name) == name]
    directories = {str(Path(f).parent) + "/" for f in listed if "/" in f}
    for directory in list(directories):  # the parents of nested directories too
        parts = directory.rstrip("/").split("/")
        directories.update("/".join(parts[:i]) + "/" for i in range(1, len(parts)))
    return sorted(directories) + sorted(listed)


def _walk(root: Path) -> list[str]:
    found: list[str] = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [
            d for d in subdirectories if not d.startswith(".") and d not in SKIPPED_DIRS
        ]
        base = Path(directory).relative_to(root)
        found.extend(str(base / name) for name in files if not name.startswith("."))
        if len(found) >= MAX_FILES:
            return found[:MAX_FILES]
    return found


def current_word(text: str) -> str:
    """The word being typed at the end of ``text``."""
    return text.rsplit(maxsplit=1)[-1] if text and not text[-1].isspace() else ""


def candidates(
    text: str,
    commands: list[str],
    files: list[str],
    arguments: dict[str, list[str]] | None = None,
) -> list[str]:
    """Completions for the word at the end of ``text`` (the prompt up to the cursor):
    a command, a command's argument (``arguments[name]``), or an ``@path``."""
    word = current_word(text)
    if word.startswith("/") and text.lstrip() == word:
        return [f"/{name}" for name in commands if name.startswith(word[1:])]
    command = re.fullmatch(r"\s*/(\w+) +(\S*)", text)
    if command and arguments and command[1] in arguments:
        return [value for value in arguments[command[1]] if value.startswith(command[2])]
    if word.startswith("@"):
        prefix = word[1:]
        depth = prefix.count("/")
        # One level at a time: entries of the directory typed so far.
        return [
            f"@{path}"
            for path in files
            if path.startswith(prefix) and path.rstrip("/").count("/") == depth
        ]
    return []


def common_prefix(words: list[str]) -> str:
    return commonpath(words) if words else ""
