"""Session files: every event of a session, one JSON line each, flushed as it happens.

The first line describes the session; the rest are events. Because the conversation travels as
events too (``message_added``, ``context_compacted``), a session file alone restores a run: a
SIGKILL loses at most the line being written. Files live in the user data directory.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import platformdirs

from ponder.model.messages import Message, ToolCall
from ponder.runtime.events import (
    SCHEMA_VERSION,
    ContextCompacted,
    Event,
    MessageAdded,
    RunFinished,
    RunStarted,
    event_from_json,
    event_to_json,
)

INTERRUPTED_RESULT = "[not run: the session stopped before this call finished]"


def sessions_dir() -> Path:
    return platformdirs.user_data_path("ponder") / "sessions"


def new_session_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


class SessionRecorder:
    """Appends events to ``<directory>/<id>.jsonl``; call it with each event."""

    def __init__(self, directory: Path, header: dict[str, Any], session_id: str | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        self.id = session_id or new_session_id()
        self.path = directory / f"{self.id}.jsonl"
        resuming = self.path.exists()
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
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


def read_session(path: Path) -> tuple[dict[str, Any], list[Event]]:
    """The header and the events; a torn last line (a crash mid-write) is skipped."""
    header: dict[str, Any] = {}
    events: list[Event] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if not line.endswith("\n"):
                break  # the write a crash interrupted
            if number == 0:
                header = json.loads(line)
                continue
            events.append(event_from_json(line))
    return header, events


def list_sessions(directory: Path | None = None) -> list[SessionInfo]:
    found = []
    for path in sorted((directory or sessions_dir()).glob("*.jsonl"), reverse=True):
        try:
            header, events = read_session(path)
        except (OSError, ValueError):
            continue
        task = next((e.task for e in events if isinstance(e, RunStarted)), "")
        ends = [e.reason for e in events if isinstance(e, RunFinished)]
        status = ends[-1] if ends and isinstance(events[-1], RunFinished) else "incomplete"
        found.append(
            SessionInfo(
                id=str(header.get("id", path.stem)),
                path=path,
                created=str(header.get("created", "")),
                workspace=str(header.get("workspace", "")),
                model=str(header.get("model", "")),
                task=task,
                status=status,
            )
        )
    return found


def find_session(session_id: str | None, directory: Path | None = None) -> SessionInfo | None:
    """A session by id (or its unique beginning); the newest one when ``session_id`` is None."""
    sessions = list_sessions(directory)
    if session_id is None:
        return sessions[0] if sessions else None
    matching = [s for s in sessions if s.id.startswith(session_id)]
    return matching[0] if len(matching) == 1 else None


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
