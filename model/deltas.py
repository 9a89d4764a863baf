"""What a chat backend streams: a closed set of small immutable records.

Every backend (llama.cpp, OpenAI-compatible, scripted) yields these and nothing else, so the
runtime never needs to know which one it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class ParsedToolCall:
    """A finished tool call. ``error`` is set when the arguments could not be used."""

    id: str
    """The call id as generated, e.g. ``functions.bash:3``; returned verbatim with the result."""
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    call: ParsedToolCall


@dataclass(frozen=True, slots=True)
class CallDropped:
    """A tool call the model wrote that cannot be run: ``raw_id`` as written, ``why`` not."""

    raw_id: str
    why: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts and speeds of one generation step."""

    prompt_tokens: int
    cached_tokens: int
    """Prompt tokens reused from the KV cache (not prefilled again)."""
    completion_tokens: int
    prefill_tokens_per_s: float | None = None
    decode_tokens_per_s: float | None = None
    estimated: bool = False
    """The server sent no counts: ponder counted (the prompt by its template, the answer by
    the pieces it came in)."""


@dataclass(frozen=True, slots=True)
class ReasoningCut:
    """The step's reasoning reached its budget and was closed for the model after ``tokens``."""

    tokens: int


@dataclass(frozen=True, slots=True)
class Retrying:
    """The server could not be used; attempt ``attempt`` of ``attempts`` failed with ``error``
    and the next starts in ``delay_s`` seconds."""

    attempt: int
    attempts: int
    error: str
    delay_s: float


StopReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class Finished:
    """The step's generation ended: ``stop`` at an end-of-turn token, ``length`` at a token cap,
    ``cancelled`` when asked to stop."""

    reason: StopReason


Delta = (
    ReasoningDelta
    | ContentDelta
    | ToolCallEnd
    | CallDropped
    | Usage
    | ReasoningCut
    | Retrying
    | Finished
)
