"""The events of a tool call, from its start through its approval, output and edits to its end.

Each call carries what its tool declares about itself (:class:`~ponder.runtime.tools.base.Tool`):
its ``kind`` and a one-line ``summary``, so that every frontend shows a tool it has never heard of
(an MCP server's, a new one) without a list of tool names. Files written before version 3 of the
schema have neither; :func:`_before_version_3` fills them in for the tools those versions had.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from ponder.runtime.event_base import EventBase
from ponder.sandbox.safe_text import safe_name

ToolKind = Literal["read", "edit", "execute", "plan", "submit", "host"]
"""What a call does, which decides how it is approved and shown: ``read`` looks and changes
nothing, ``edit`` changes a file, ``execute`` runs a shell command in the sandbox, ``plan``
updates the plan (shown as the plan, not as a call), ``submit`` ends the run, ``host`` runs on
the user's machine outside the sandbox (an MCP server's tool)."""

_VERSION_2_KINDS: dict[str, ToolKind] = {
    "bash": "execute",
    "view": "read",
    "create_file": "edit",
    "str_replace": "edit",
    "insert": "edit",
    "undo_edit": "edit",
    "update_plan": "plan",
    "submit": "submit",
}
"""The tools of schema versions 1 and 2, whose events did not carry their kind."""


def describe_arguments(arguments: dict[str, Any]) -> str:
    """A call's arguments in one line: its path when it has one (control characters escaped, so
    a file name cannot pass for a line of ponder's), otherwise ``key=value`` pairs."""
    path = arguments.get("path")
    if isinstance(path, str):
        return safe_name(path)
    return safe_name(", ".join(f"{k}={v!r}" for k, v in arguments.items())[:200])


def _before_version_3(data: Any) -> Any:
    """A tool call event of an older file, with the kind (and summary) its tool had."""
    if not isinstance(data, dict) or "kind" in data:
        return data
    name = str(data.get("name", ""))
    kind = "host" if name.startswith("mcp__") else _VERSION_2_KINDS.get(name)
    data = {**data, "kind": kind}
    if "summary" not in data:  # (an event without the field ignores it)
        arguments = data.get("arguments")
        if not isinstance(arguments, dict):
            data["summary"] = "(unreadable arguments)"
        elif kind == "execute":
            data["summary"] = f"$ {arguments.get('command', '')}"
        else:
            data["summary"] = describe_arguments(arguments)
    return data


class _CallEvent(EventBase):
    """An event of one call: a file older than version 3 gets the kind its tool had."""

    @model_validator(mode="before")
    @classmethod
    def _older(cls, data: Any) -> Any:
        return _before_version_3(data)


class ToolCallStarted(_CallEvent):
    type: Literal["tool_call_started"] = "tool_call_started"
    step: int
    call_id: str
    name: str
    kind: ToolKind | None
    """What the tool declares it does; None when the model named no tool of the session."""
    summary: str
    """The call in one line for a person, as its tool words it (``$ pytest -q``, a path)."""
    arguments: dict[str, Any] | None = None
    """None when the model's arguments could not be parsed."""
    raw_arguments: str = ""


class FileTexts(BaseModel):
    """A file's whole text before and after an edit, for clients that draw the diff themselves
    (ACP's diff content is the whole old and new text). Kept in memory only: session files and
    ``--json`` carry the diff, which says the same in a fraction of the size."""

    model_config = ConfigDict(frozen=True)

    path: str
    """The file, as the edit's diff names it (relative to the workspace), unescaped."""
    old: str | None
    """None: the edit creates the file."""
    new: str


class ApprovalRequested(_CallEvent):
    """A person (or the headless policy) must allow this call before it runs."""

    type: Literal["approval_requested"] = "approval_requested"
    call_id: str
    name: str
    kind: ToolKind | None
    """As in its :class:`ToolCallStarted`."""
    summary: str
    """What would run, as its tool shows it: the command, or the diff an edit would make."""
    reason: str
    prefix: str
    """What "always allow" would allow from now on."""
    texts: FileTexts | None = Field(default=None, exclude=True)
    """For an edit: the file before and after (in memory only, see :class:`FileTexts`)."""


class ApprovalResolved(EventBase):
    type: Literal["approval_resolved"] = "approval_resolved"
    call_id: str
    decision: Literal["once", "always", "deny"]
    message: str | None = None
    """With a denial: what the model is told."""
    by: Literal["user", "policy"] = "user"


class ToolOutput(EventBase):
    """Live output of a running tool (a shell command's stdout and stderr)."""

    type: Literal["tool_output"] = "tool_output"
    call_id: str
    text: str


class ToolCallFinished(_CallEvent):
    type: Literal["tool_call_finished"] = "tool_call_finished"
    call_id: str
    name: str
    kind: ToolKind | None
    """As in its :class:`ToolCallStarted`."""
    ok: bool
    result: str
    """What the model is shown."""
    shown: str | None = None
    """What a person is shown instead of ``result``, when the tool says (see ``for_person``)."""
    exit_code: int | None = None
    timed_out: bool = False
    interrupted: bool = False
    """The user stopped the command; ``exit_code`` is then whatever the kill left."""
    notice: str | None = None
    """How the sandbox ended or treated the command, when it says something: stopped by the
    disk guard, killed out of memory, a fork bomb stopped."""
    elapsed_s: float = Field(validation_alias=AliasChoices("elapsed_s", "elapsed"))
    """Seconds the call took (``elapsed`` in version 1)."""

    @property
    def for_person(self) -> str:
        """The result as a person reads it."""
        return self.result if self.shown is None else self.shown


class FileEdited(EventBase):
    type: Literal["file_edited"] = "file_edited"
    call_id: str
    path: str
    diff: str
    texts: FileTexts | None = Field(default=None, exclude=True)
    """The file before and after (in memory only, see :class:`FileTexts`)."""


PlanStatus = Literal["pending", "in_progress", "completed"]


class PlanStep(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: str
    status: PlanStatus


class PlanUpdated(EventBase):
    """The model's plan (``update_plan``), whole each time: the newest one is the plan."""

    type: Literal["plan_updated"] = "plan_updated"
    call_id: str
    explanation: str | None = None
    plan: list[PlanStep]
