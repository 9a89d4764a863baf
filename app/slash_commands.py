"""The slash commands of an interactive session, shared by the TUI and line mode.

Each command takes the text after its name and returns what to show. Commands that only make
sense in one frontend (/theme, /quit, clearing the screen) are that frontend's own; the rest
act on the :class:`~ponder.app.session.Session` and live here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast, get_args

import platformdirs

from ponder.runtime.approvals import Mode
from ponder.runtime.confined_files import ConfinedTree
from ponder.sandbox.safe_text import safe_text

if TYPE_CHECKING:  # the TUI imports this module for HELP; it must not pull in the session
    from ponder.app.session import Session

HELP = {
    "help": "this list",
    "undo": "put the files back as they were before the last change",
    "diff": "everything this session changed",
    "compact": "shorten the conversation now (hide old outputs, summarise old steps)",
    "model": "show the model; /model SPEC switches to another",
    "approvals": "show the approval mode and rules; /approvals ask|auto|yolo switches",
    "theme": "show the themes; /theme NAME switches",
    "sessions": "the latest sessions",
    "mcp": "the MCP servers and their tools",
    "export": "write this session to a file: /export [md|json] [PATH] (default: the data folder)",
    "init": "have the model write a starter AGENTS.md for this repository",
    "clear": "start the conversation afresh (the session file keeps everything)",
    "quit": "leave ponder",
}
ARGUMENTS = {
    "approvals": ["ask", "auto", "yolo"],
    "export": ["md", "json"],
    "model": ["llamacpp:", "openai:", "scripted:"],
}
"""What Tab offers after a command's name (the TUI adds its themes)."""
INIT_TASK = (
    "Look around this repository and write an AGENTS.md file at its root for the coding agents "
    "that will work in it (or improve the one there, keeping what is still true). In under 60 "
    "lines of Markdown: what the project is, how it is laid out, the commands that build, test "
    "and lint it (run them to be sure they work), the conventions the code follows, and "
    "anything an agent must not do. Only write what you checked; no generic advice."
)
TASK_COMMANDS = {"init": INIT_TASK}
"""Commands that are a task for the model: the frontend runs their text as the next task."""
SLOW = frozenset({"compact", "model"})
"""Commands that may take a while (a model call, loading a model): run them off the UI thread."""


TUI_KEYS = {
    "Enter": "send (while ponder works: queue it for after)",
    "Ctrl+J": "a new line",
    "Tab": "complete a /command, its argument or an @file; in an empty prompt: the transcript",
    "↑ ↓": "earlier messages",
    "Tab Shift+Tab": "in the transcript: the next or previous block (Enter opens it, c copies it)",
    "Esc": "interrupt the model, a command or a waiting approval",
    "y a n m": "answer an approval: once, always, deny, deny with a message",
    "Ctrl+Q": "quit",
}
LINE_KEYS = {
    "Enter": "send",
    "Tab": "complete a /command, its argument or an @file",
    "Ctrl+C": "interrupt the model or a command (twice: quit)",
    "Ctrl+D": "quit",
}


def help_text(names: list[str], keys: dict[str, str] | None = None) -> str:
    width = max(len(name) for name in names) + 2
    lines = [f"/{name:<{width}}{HELP[name]}" for name in names]
    if keys:
        key_width = max(len(key) for key in keys) + 2
        lines += ["", "keys:", *(f"  {key:<{key_width}}{what}" for key, what in keys.items())]
    return "\n".join(lines)


class SessionCommands:
    """The session's slash commands: ``commands[name](argument) -> text to show``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.commands: dict[str, Callable[[str], str]] = {
            "undo": self._undo,
            "diff": self._diff,
            "compact": self._compact,
            "model": self._model,
            "approvals": self._approvals,
            "sessions": self._sessions,
            "mcp": lambda _: self.session.mcp_status(),
            "export": self._export,
            "clear": self._clear,
        }

    def _undo(self, _: str) -> str:
        return self.session.undo()

    def _diff(self, _: str) -> str:
        return self.session.diff()

    def _compact(self, _: str) -> str:
        return "compacted" if self.session.compact() else "nothing to compact yet"

    def _model(self, spec: str) -> str:
        if spec.strip():
            self.session.switch_model(spec.strip())
        backend = self.session.model
        size = ""
        if backend.context_size:
            size = f", context {backend.context_size:,} tokens ({backend.context_source})"
        return f"model: {backend.name}{size}"

    def _approvals(self, mode: str) -> str:
        policy = self.session.policy
        if policy is None:
            return "approvals are off in this session"
        wanted = mode.strip()
        if wanted:
            if wanted not in get_args(Mode):
                return "the modes are ask, auto and yolo"
            policy.mode = cast(Mode, wanted)
        rules = [f"allow {rule}" for rule in policy.allow] + [f"deny {r}" for r in policy.deny]
        return f"approval mode: {policy.mode}" + "".join(f"\n  {rule}" for rule in rules)

    def _sessions(self, _: str) -> str:
        from ponder.runtime.sessions import list_sessions

        rows = [
            f"{info.id}  {info.status:<12} {safe_text(info.headline(60))}"
            for info in list_sessions()[:15]
        ]
        return "\n".join(rows) or "no sessions yet"

    def _export(self, argument: str) -> str:
        from ponder.app.frontends.export import to_markdown
        from ponder.runtime.events import event_to_json
        from ponder.runtime.sessions import read_session

        words = argument.split()
        fmt = words.pop(0) if words and words[0] in ("md", "json") else ""
        if len(words) > 1 or (words and not fmt and "/" not in words[0] and "." not in words[0]):
            return f"/export takes md or json, then a path if you like; not {argument.strip()!r}"
        if not fmt:
            fmt = "json" if words and words[0].endswith(".json") else "md"
        if not words:  # the data folder, not the repository
            path = platformdirs.user_data_path("ponder") / "exports" / f"{self.session.id}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            path = Path(words[0]).expanduser()
        header, events, _ = read_session(self.session.recorder.path)
        if fmt == "json":
            text = json.dumps(
                {"session": header, "events": [json.loads(event_to_json(e)) for e in events]}
            )
        else:
            text = to_markdown(header, events)
        if path.is_absolute():
            path.write_text(text, encoding="utf-8")
            return f"exported to {path}"
        # Inside the workspace, a name the sandbox made a symlink must not lead the write out.
        ConfinedTree(self.session.workspace.resolve()).write_file(
            os.fsencode(path), text.encode(), executable=False
        )
        return f"exported to {self.session.workspace / path}"

    def _clear(self, _: str) -> str:
        self.session.clear()
        return "a fresh conversation; the session file keeps the old one"
