"""Session files: every event of a session, one JSON line each, flushed as it happens.

The first line describes the session; the rest are events. Because the conversation travels as
events too (``message_added``, ``context_compacted``), a session file alone restores a run: a
SIGKILL loses at most the line being written. Files live in the user data directory.

Files are only ever appended to. A line a crash tore is sealed with a newline before anything is
appended after it, and a line that cannot be read (torn, garbage, from a newer ponder) is
skipped and counted: it never hides the rest of its session, and a bad file never hides the
others.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

import platformdirs

from ponder.model.messages import Message, ToolCall
from ponder.runtime.events import (
    SCHEMA_VERSION,
    AnswerRejected,
    ContextCompacted,
    Event,
    MessageAdded,
    RunFinished,
    RunStarted,
    event_from_json,
    event_to_json,
)
from ponder.sandbox.safe_text import safe_text

INTERRUPTED_RESULT = "[not run: the session stopped before this call finished]"


def sessions_dir() -> Path:
    return platformdirs.user_data_path("ponder") / "sessions"


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_session_id(session_id: str) -> str:
    """``session_id`` when it can name a file of the sessions directory; ValueError otherwise."""
    if not _SESSION_ID.fullmatch(session_id) or ".." in session_id:
        raise ValueError(f"{session_id!r} is not a session id")
    return session_id


class SessionRecorder:
    """Appends events to ``<directory>/<id>.jsonl``; call it with each event."""

    def __init__(self, directory: Path, header: dict[str, Any], session_id: str | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)  # what commands printed may hold secrets
        self.id = check_session_id(session_id or new_session_id())
        self.path = directory / f"{self.id}.jsonl"
        torn = _ends_torn(self.path)
        resuming = self.path.exists()
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
        if torn:  # seal the line a crash cut off, so the next event starts a line of its own
            self._write("")
        if not resuming:
            first = {"type": "session", "version": SCHEMA_VERSION, "id": self.id, **header}
            self._write(json.dumps(first, ensure_ascii=False))

    def _write(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()

    def __call__(self, event: Event) -> None:
        self._write(event_to_json(event))

    def close(self) -> None:
        self._file.close()


def _ends_torn(path: Path) -> bool:
    """Whether the file's last line lacks its newline (a write a crash interrupted)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class SessionInfo:
    id: str
    path: Path
    created: str
    workspace: str
    model: str
    task: str
    status: str
    """How the last run ended, or ``incomplete``."""

    def headline(self, width: int = 80) -> str:
        """The task in one line: its first line, cut at ``width`` (a piped file can be long;
        the text is the model's and the user's: escape it before printing)."""
        lines = self.task.strip().splitlines() or [""]
        first = lines[0].replace("\t", " ")
        return first[:width] + ("…" if len(lines) > 1 or len(first) > width else "")


class SessionFile(NamedTuple):
    header: dict[str, Any]
    """The first line: id, creation time, workspace, model ({} when it is unreadable)."""
    events: list[Event]
    skipped: int
    """Lines that could not be read (torn by a crash, damaged, from a newer ponder)."""


def read_session(path: Path) -> SessionFile:
    """Everything readable in a session file; raises only OSError (the file itself)."""
    header: dict[str, Any] = {}
    events: list[Event] = []
    skipped = 0
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue  # the newline that sealed a torn line
            try:
                if number == 0:
                    first = json.loads(line)
                    if not isinstance(first, dict) or first.get("type") != "session":
                        raise ValueError("not a session header")
                    header = first
                else:
                    events.append(event_from_json(line))
            except ValueError:  # JSON or pydantic validation errors, a line cut short
                skipped += 1
    return SessionFile(header, events, skipped)


def skipped_warning(path: Path, skipped: int) -> str:
    lines = "line" if skipped == 1 else "lines"
    return f"{skipped} unreadable {lines} of {path} skipped (a crash or damage); the rest is used"


def _age(path: Path) -> tuple[str, int]:
    """Newest first: by the second the id names, then, for ids of one second (whose random
    ends would order them by chance), by when the file was last written."""
    try:
        return path.stem[:15], path.stat().st_mtime_ns
    except OSError:
        return path.stem[:15], 0


def list_sessions(directory: Path | None = None) -> list[SessionInfo]:
    found = []
    for path in sorted((directory or sessions_dir()).glob("*.jsonl"), key=_age, reverse=True):
        if not _SESSION_ID.fullmatch(path.stem):
            continue  # not a file ponder wrote
        try:
            header, events, _ = read_session(path)
        except OSError:
            continue
        task = next((e.task for e in events if isinstance(e, RunStarted)), "")
        runs = [e for e in events if isinstance(e, RunStarted | RunFinished | AnswerRejected)]
        # (what comes after a run's end, such as a checkpoint of its background jobs, is not
        # part of it; an answer --output-schema refused for good is an error)
        last = runs[-1] if runs else None
        status = (
            "error" if isinstance(last, AnswerRejected)
            else last.reason if isinstance(last, RunFinished)
            else "incomplete"
        )  # fmt: skip
        found.append(
            SessionInfo(
                id=path.stem,
                path=path,
                created=str(header.get("created", "")),
                workspace=str(header.get("workspace", "")),
                model=str(header.get("model", "")),
                task=task,
                status=status,
            )
        )
    return found


def find_session(
    session_id: str | None, directory: Path | None = None, workspace: Path | None = None
) -> SessionInfo | None:
    """A session by id (or its unique beginning); without one, the newest that ran a task (in
    ``workspace`` when given)."""
    sessions = list_sessions(directory)
    if session_id is None:
        where = str(workspace) if workspace is not None else None
        return next(
            (s for s in sessions if s.task and (where is None or s.workspace == where)), None
        )
    matching = [s for s in sessions if s.id.startswith(session_id)]
    if len(matching) > 1 and not any(s.id == session_id for s in matching):
        raise AmbiguousSession(session_id, matching)
    return next((s for s in matching if s.id == session_id), matching[0] if matching else None)


def _first_line(task: str) -> str:
    return safe_text((task.splitlines() or [""])[0][:60])


class AmbiguousSession(Exception):
    """More than one session's id starts with what was given: the message lists them."""

    def __init__(self, given: str, matching: list[SessionInfo]) -> None:
        shown = [
            f"  {s.id}  {s.task.splitlines()[0][:60] if s.task else ''}" for s in matching[:10]
        ]
        more = f"\n  … and {len(matching) - 10} more" if len(matching) > 10 else ""
        super().__init__(
            f"{given!r} begins {len(matching)} sessions' ids; give more of one:\n"
            + "\n".join(shown)
            + more
        )


def restore_messages(events: list[Event]) -> list[Message]:
    """The conversation as the events recorded it, ready to continue.

    A call the session stopped in the middle of gets a result saying so, because every
    assistant tool call must be answered before the model is asked again.
    """
    messages: list[Message] = []
    for event in events:
        if isinstance(event, MessageAdded):
            messages.append(Message.from_openai(event.message))
        elif isinstance(event, ContextCompacted):
            messages = [Message.from_openai(m) for m in event.messages]
    answered = {m.tool_call_id for m in messages if m.role == "tool"}
    last_assistant = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    if last_assistant >= 0:
        missing: list[ToolCall] = [
            c for c in messages[last_assistant].tool_calls if c.id not in answered
        ]
        messages += [
            Message(role="tool", content=INTERRUPTED_RESULT, tool_call_id=c.id, name=c.name)
            for c in missing
        ]
    return messages
