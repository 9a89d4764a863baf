"""The one closed set of events a run produces.

Everything downstream consumes these and nothing else: the TUI, the line printer, ``--json``
output, session files. Each is a frozen pydantic model with a ``type`` tag, so any event
round-trips through JSON with :func:`event_to_json` and :func:`event_from_json`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    task: str
    model: str
    sandbox: str
    max_steps: int


class StepStarted(_Event):
    type: Literal["step_started"] = "step_started"
    step: int
    max_steps: int


class ReasoningText(_Event):
    """A piece of the model's reasoning as it streams."""

    type: Literal["reasoning"] = "reasoning"
    step: int
    text: str


class ContentText(_Event):
    """A piece of the model's visible answer as it streams."""

    type: Literal["content"] = "content"
    step: int
    text: str


class ToolCallStarted(_Event):
    type: Literal["tool_call_started"] = "tool_call_started"
    step: int
    call_id: str
    name: str
    arguments: dict[str, Any] | None
    """None when the model's arguments could not be parsed."""


class ToolOutput(_Event):
    """Live output of a running tool (a shell command's stdout and stderr)."""

    type: Literal["tool_output"] = "tool_output"
    call_id: str
    text: str


class ToolCallFinished(_Event):
    type: Literal["tool_call_finished"] = "tool_call_finished"
    call_id: str
    name: str
    ok: bool
    result: str
    """What the model is shown."""
    exit_code: int | None = None
    timed_out: bool = False
    elapsed: float


class FileEdited(_Event):
    type: Literal["file_edited"] = "file_edited"
    call_id: str
    path: str
    diff: str


class UsageReported(_Event):
    type: Literal["usage"] = "usage"
    step: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None


FinishReason = Literal["answered", "submitted", "max_steps", "error"]


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    reason: FinishReason
    answer: str
    """The final answer (or the submit summary); empty when the run did not get that far."""
    steps: int
    error: str | None = None


Event = Annotated[
    RunStarted
    | StepStarted
    | ReasoningText
    | ContentText
    | ToolCallStarted
    | ToolOutput
    | ToolCallFinished
    | FileEdited
    | UsageReported
    | RunFinished,
    Field(discriminator="type"),
]
Emit = Callable[[Event], None]

_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def event_to_json(event: Event) -> str:
    return event.model_dump_json()


def event_from_json(text: str) -> Event:
    return _ADAPTER.validate_json(text)
