"""The one closed set of events a run produces (documented in docs/events.md).

Everything downstream consumes these and nothing else: the TUI, the line printer, ``--json``
output, session files. Each is a frozen pydantic model with a ``type`` tag, so any event
round-trips through JSON with :func:`event_to_json` and :func:`event_from_json`. The
conversation itself travels as :class:`MessageAdded` and :class:`ContextCompacted` events, so a
session file alone is enough to resume a run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter
from pydantic_core import PydanticSerializationError

from ponder.model.k2_parser import valid_unicode
from ponder.runtime.event_base import EventBase
from ponder.runtime.tool_events import ApprovalRequested as ApprovalRequested
from ponder.runtime.tool_events import ApprovalResolved as ApprovalResolved
from ponder.runtime.tool_events import FileEdited as FileEdited
from ponder.runtime.tool_events import FileTexts as FileTexts
from ponder.runtime.tool_events import PlanStatus as PlanStatus
from ponder.runtime.tool_events import PlanStep as PlanStep
from ponder.runtime.tool_events import PlanUpdated as PlanUpdated
from ponder.runtime.tool_events import ToolCallFinished as ToolCallFinished
from ponder.runtime.tool_events import ToolCallStarted as ToolCallStarted
from ponder.runtime.tool_events import ToolKind as ToolKind
from ponder.runtime.tool_events import ToolOutput as ToolOutput
from ponder.sandbox.safe_text import BIDI_CONTROLS

SCHEMA_VERSION = 3
"""Raised when an event changes in a way older readers would misread. Version 2 renamed
``run_started.time_limit_s`` to ``time_limit`` and ``tool_call_finished.elapsed`` to
``elapsed_s``; version 3 added the tool's ``kind`` and the call's ``summary`` to the tool call
events (:mod:`ponder.runtime.tool_events`). Files of versions 1 and 2 still read."""


class RunStarted(EventBase):
    type: Literal["run_started"] = "run_started"
    task: str
    session_id: str | None = None
    """The session this run belongs to (``ponder exec --resume ID`` continues it)."""
    model: str
    sandbox: str
    max_steps: int
    max_tokens: int | None = None
    """The task's token budget, when it has one."""
    time_limit: float | None = Field(
        None, validation_alias=AliasChoices("time_limit", "time_limit_s")
    )
    """The task's wall-clock limit in seconds, when it has one (``time_limit_s`` in version 1)."""
    context_size: int | None = None
    """Tokens the model can attend to, when known."""
    context_source: str | None = None
    """Where that figure comes from; one ponder assumed starts with "assumed"."""


class MessageAdded(EventBase):
    """A message joined the conversation (system, user, assistant or tool), as OpenAI JSON."""

    type: Literal["message_added"] = "message_added"
    message: dict[str, Any]


class StepStarted(EventBase):
    type: Literal["step_started"] = "step_started"
    step: int
    max_steps: int


class ReasoningText(EventBase):
    """A piece of the model's reasoning as it streams."""

    type: Literal["reasoning"] = "reasoning"
    step: int
    text: str


class ContentText(EventBase):
    """A piece of the model's visible answer as it streams."""

    type: Literal["content"] = "content"
    step: int
    text: str


class ReasoningBudgetReached(EventBase):
    """The step's reasoning hit its budget and was closed so the model acts."""

    type: Literal["reasoning_budget_reached"] = "reasoning_budget_reached"
    step: int
    tokens: int


class ModelRetrying(EventBase):
    """The model's server could not be used; ponder tries again in ``delay_s`` seconds."""

    type: Literal["model_retrying"] = "model_retrying"
    step: int
    attempt: int
    attempts: int
    error: str
    delay_s: float


class UsageReported(EventBase):
    type: Literal["usage"] = "usage"
    step: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    context_size: int | None = None
    estimated: bool = False
    """ponder counted: the server sent no usage."""


class ContextCompacted(EventBase):
    """Older parts of the conversation were shortened so the next prompt fits."""

    type: Literal["context_compacted"] = "context_compacted"
    kind: Literal["hide_outputs", "summary", "cleared"]
    tokens_before: int
    tokens_after: int
    messages: list[dict[str, Any]]
    """The whole conversation after the change (what a resumed session continues from)."""


class ReplyProblem(EventBase):
    """The model's reply could not be used as it was: empty, only reasoning, or a tool call
    that cannot be run. The model is told and asked again, up to a limit (then the run ends
    with ``error``)."""

    type: Literal["reply_problem"] = "reply_problem"
    step: int
    problem: str
    retrying: bool
    """The model is asked again (false: the run ends, or the step's other calls went ahead)."""


class LoopDetected(EventBase):
    type: Literal["loop_detected"] = "loop_detected"
    step: int
    kind: Literal["repeated_call", "repeated_reasoning"]
    repeats: int
    action: Literal["nudge", "stop"]


class PathChange(BaseModel):
    """One path (or a folder standing for many) that changed in the workspace."""

    model_config = ConfigDict(frozen=True)

    path: str
    """Relative to the workspace; a folder ends in ``/`` and stands for ``count`` paths."""
    change: Literal["added", "modified", "deleted"]
    shown: bool
    """The diff shows it (``ponder diff``, ``/diff``)."""
    undoable: bool
    """``/undo`` can put it back."""
    note: str = ""
    """Why it is not in the diff, or cannot be undone."""
    warning: str = ""
    """Why a person must look at it before running anything here (something on the host
    runs it: bytecode, git metadata and hooks, executables)."""
    count: int = 1


class Checkpointed(EventBase):
    """The workspace was saved after a step that changed files (``ponder undo`` goes back)."""

    type: Literal["checkpointed"] = "checkpointed"
    step: int
    commit: str
    files: list[str]
    """Every changed path (folders of many, such as ``node_modules/``, as one)."""
    changes: list[PathChange] = []
    """The same paths with what became of them: shown, undoable, and why a person must look."""
    background: bool = False
    """Made between steps by processes the session left running (background jobs)."""


class InstructionsLoaded(EventBase):
    """The repository's instructions (AGENTS.md files) went into the system prompt."""

    type: Literal["instructions_loaded"] = "instructions_loaded"
    files: list[str]
    """Where they came from, in the order the model reads them (deeper ones win)."""
    note: str | None = None
    """What was left out or cut to stay within the size limit."""


class McpServer(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    state: Literal["ready", "failed"]
    tools: list[str]
    error: str | None = None


class McpServersStarted(EventBase):
    """The session's MCP servers, once they have started or failed (at the first task)."""

    type: Literal["mcp_servers"] = "mcp_servers"
    servers: list[McpServer]
    notes: list[str] = []
    """Servers left out, and why (a project's server not trusted yet, an unusable one)."""


class FilesAttached(EventBase):
    """Files the task names (``@path``) went to the model with it."""

    type: Literal["files_attached"] = "files_attached"
    files: list[str]
    notes: list[str] = []
    """What was cut or left out, and why."""


class CheckpointsOff(EventBase):
    """Checkpoints could not be taken (a folder too big, git failing); the session goes on
    without them, and ``/undo`` and ``/diff`` say why."""

    type: Literal["checkpoints_off"] = "checkpoints_off"
    reason: str


class StepFinished(EventBase):
    type: Literal["step_finished"] = "step_finished"
    step: int
    elapsed_s: float
    model_s: float
    """Waiting for the model (its generation)."""
    tools_s: float
    """Running the step's tool calls (approvals included)."""


FinishReason = Literal[
    "answered",
    "submitted",
    "max_steps",
    "token_budget",
    "time_limit",
    "loop",
    "interrupted",
    "error",
]


class RunUsage(BaseModel):
    """A run's totals over all its steps."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int
    """Prompt tokens of every step together (the cached ones included)."""
    cached_tokens: int
    completion_tokens: int
    wall_s: float
    cost_usd: float | None = None
    """From the config's prices for the model; unset without them."""
    estimated: bool = False
    """Some step's counts are ponder's own (its server sent none)."""


class AnswerRejected(EventBase):
    """``ponder exec --output-schema``: the run's answer is not JSON that matches the schema."""

    type: Literal["answer_rejected"] = "answer_rejected"
    problem: str
    retrying: bool
    """True: the answer goes back to the model, and a new run starts; false: the command
    fails (exit 1)."""


class RunFinished(EventBase):
    type: Literal["run_finished"] = "run_finished"
    reason: FinishReason
    answer: str
    """The final answer (or the submit summary); empty when the run did not get that far."""
    steps: int
    error: str | None = None
    retryable: bool | None = None
    """With an error: true when trying again later may work (backend unreachable, rate limit)."""
    usage: RunUsage | None = None


Event = Annotated[
    RunStarted
    | MessageAdded
    | StepStarted
    | ReasoningText
    | ContentText
    | ReasoningBudgetReached
    | ModelRetrying
    | ToolCallStarted
    | ApprovalRequested
    | ApprovalResolved
    | ToolOutput
    | ToolCallFinished
    | FileEdited
    | PlanUpdated
    | UsageReported
    | ContextCompacted
    | LoopDetected
    | AnswerRejected
    | ReplyProblem
    | Checkpointed
    | CheckpointsOff
    | FilesAttached
    | InstructionsLoaded
    | McpServersStarted
    | StepFinished
    | RunFinished,
    Field(discriminator="type"),
]
Emit = Callable[[Event], None]


@cache
def _adapter() -> TypeAdapter[Event]:
    """Built on first read: building every event's validator at import would cost each start
    of ponder about 0.1 s, and most runs never read an event back."""
    return TypeAdapter(Event)


_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029" + BIDI_CONTROLS + "]")
"""Characters JSON lets through unescaped that a terminal (C1 controls) or a reader (line and
bidirectional-text separators) would act on; they can only occur inside strings."""


def event_to_json(event: Event) -> str:
    """One line of JSON; no control character in it is left unescaped. Never raises: a lone
    surrogate that got into a text (no JSON reader takes one) is written as U+FFFD."""
    try:
        text = event.model_dump_json(exclude_none=True)
    except PydanticSerializationError:
        repaired = type(event).model_validate(_without_surrogates(event.model_dump()))
        text = repaired.model_dump_json(exclude_none=True)
    return _RAW_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def event_from_json(text: str) -> Event:
    return _adapter().validate_json(text)
