"""ponder's events as Agent Client Protocol session updates.

One :class:`UpdateMapper` per prompt turns each event into the update an ACP client (Zed, Toad,
...) shows: reasoning as thought chunks, the answer as message chunks, tool calls with their
kind, live output and diffs, and the plan. Events with no place in ACP give None.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import acp
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    ToolCallLocation,
    ToolCallProgress,
    ToolCallStart,
    ToolCallStatus,
    ToolKind,
    UserMessageChunk,
)

from ponder.app.wording.events import describe_ending, shown_as_call
from ponder.app.wording.for_display import for_display
from ponder.app.wording.markdown import fenced
from ponder.runtime.events import (
    ApprovalRequested,
    ContentText,
    Event,
    FileEdited,
    FileTexts,
    PlanUpdated,
    ReasoningText,
    ToolCallFinished,
    ToolCallStarted,
    ToolOutput,
)

Update = (
    UserMessageChunk
    | AgentMessageChunk
    | AgentThoughtChunk
    | ToolCallStart
    | ToolCallProgress
    | AgentPlanUpdate
)
ACP_KINDS: dict[str, ToolKind] = {
    "read": "read",
    "edit": "edit",
    "execute": "execute",
    "plan": "think",
}
"""ponder's kinds of tool as ACP's; the rest (``submit``, ``host``) are ``other``."""


def acp_kind(kind: str | None) -> ToolKind:
    return ACP_KINDS.get(kind or "", "other")


OUTPUT_SHOWN_CHARS = 16_000
"""A command's live output sent to the client: its last this many characters."""


WHOLE_TEXT_CHARS = 1_000_000
"""An edit's file is sent whole (old and new text, as ACP's diff wants) up to this many
characters (old and new together); a bigger one, or an edit recorded in a session file (which
keeps only the diff), as its hunks."""


def diff_hunks(diff: str) -> list[tuple[str | None, str]]:
    """The old and new text of each hunk of a unified diff (None as the old text of a new
    file): ACP's diff content from a diff alone, one per hunk, no line made up between them.
    A ``\\ No newline at end of file`` takes the newline off the line before it."""
    hunks: list[tuple[list[str], list[str]]] = []
    created = False
    last: list[list[str]] = []
    for line in diff.split("\n")[:-1]:  # the diff's own lines (a line's \f is its own)
        if not hunks and line.startswith("--- "):  # headers come before the first hunk only:
            created = line.startswith("--- /dev/null")  # inside one, "--- x" removes "-- x"
        elif line.startswith("@@"):
            hunks.append(([], []))
        elif hunks and line.startswith("\\"):
            for side in last:
                side[-1] = side[-1].removesuffix("\n")
        elif hunks and line[:1] in ("-", "+", " "):
            old, new = hunks[-1]
            last = {"-": [old], "+": [new], " ": [old, new]}[line[0]]
            for side in last:
                side.append(line[1:] + "\n")
    return [(None if created else "".join(old), "".join(new)) for old, new in hunks]


class UpdateMapper:
    """Turns one prompt's events into ACP updates; ``workspace`` makes paths absolute."""

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace
        self._output: dict[str, str] = {}

    def __call__(self, event: Event) -> Update | None:
        texts = event.texts if isinstance(event, FileEdited) else None  # as they are: data
        event = for_display(event)
        if isinstance(event, ReasoningText):
            return acp.update_agent_thought_text(event.text)
        if isinstance(event, ContentText):
            return acp.update_agent_message_text(event.text)
        if isinstance(event, PlanUpdated):
            return acp.update_plan(
                acp.plan_entry(item.step, status=item.status) for item in event.plan
            )
        if isinstance(event, ToolCallStarted) and shown_as_call(event):
            return self._started(event)
        if isinstance(event, ToolOutput) and event.call_id in self._output:
            shown = (self._output[event.call_id] + event.text)[-OUTPUT_SHOWN_CHARS:]
            self._output[event.call_id] = shown
            return acp.update_tool_call(event.call_id, content=[_text(fenced(shown))])
        if isinstance(event, FileEdited):
            path = _absolute(self.workspace, event.path)
            return acp.update_tool_call(
                event.call_id,
                content=_diff_content(path, event.diff, texts),
                locations=[ToolCallLocation(path=path)],
            )
        if isinstance(event, ToolCallFinished) and event.call_id in self._output:
            return self._finished(event)
        return None

    def _started(self, event: ToolCallStarted) -> ToolCallStart:
        self._output[event.call_id] = ""
        arguments: dict[str, Any] = event.arguments or {}
        path = arguments.get("path")
        locations = None
        if isinstance(path, str):
            locations = [ToolCallLocation(path=_absolute(self.workspace, path))]
        named = event.kind in ("read", "edit", "execute")  # the summary says what it does
        title = event.summary if named else f"{event.name} {event.summary}"
        return acp.start_tool_call(
            event.call_id,
            title,
            kind=acp_kind(event.kind),
            status="in_progress",
            locations=locations,
            raw_input=arguments,
        )

    def _finished(self, event: ToolCallFinished) -> ToolCallProgress:
        del self._output[event.call_id]
        status: ToolCallStatus = "completed" if event.ok else "failed"
        if event.kind == "edit" and event.ok:  # the diff stays the content
            return acp.update_tool_call(event.call_id, status=status, raw_output=event.result)
        ending = describe_ending(event)
        text = fenced(event.for_person) + (ending or "")
        return acp.update_tool_call(
            event.call_id, status=status, content=[_text(text)], raw_output=event.result
        )


def approval_content(request: ApprovalRequested, workspace: str) -> list[Any]:
    """What a permission request shows: why it is asked, and for an edit the change it would
    make (the person answers before the file changes, so it must be here). The file's texts
    are sent as they are: an editor shows them as data, and an escape sequence the model
    slipped in is a difference it shows, where a cleaned copy would hide it."""
    texts = request.texts
    shown = for_display(request)
    content = [_text(shown.reason)]
    if request.kind != "edit":
        return content
    path = texts.path if texts is not None else _diff_path(shown.summary)
    if path is not None:
        content += _diff_content(_absolute(workspace, path), shown.summary, texts)
    return content


def _diff_path(diff: str) -> str | None:
    for line in diff.split("\n"):
        if line.startswith("+++ "):  # the name as difflib wrote it: spaces are the name's
            named = line[4:]
            return named[2:] if named.startswith("b/") else named
    return None


def _diff_content(path: str, diff: str, texts: FileTexts | None) -> list[Any]:
    """The whole file before and after when the event holds it, else each hunk of the diff."""
    if texts is not None and len(texts.old or "") + len(texts.new) <= WHOLE_TEXT_CHARS:
        return [acp.tool_diff_content(path, texts.new, texts.old)]
    return [acp.tool_diff_content(path, new, old) for old, new in diff_hunks(diff)]


def _absolute(workspace: str, path: str) -> str:
    return path if path.startswith("/") else str(PurePosixPath(workspace) / path)


def _text(text: str) -> Any:
    return acp.tool_content(acp.text_block(text))
