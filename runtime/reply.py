"""One step's reply from the model: the backend's deltas read into events as they stream, and
gathered into what the loop decides on."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from ponder.model.deltas import (
    CallDropped,
    ContentDelta,
    Delta,
    Finished,
    ParsedToolCall,
    ReasoningCut,
    ReasoningDelta,
    Retrying,
    ToolCallEnd,
    Usage,
)
from ponder.runtime.events import (
    ContentText,
    Event,
    ModelRetrying,
    ReasoningBudgetReached,
    ReasoningText,
    UsageReported,
)


@dataclass
class Reply:
    reasoning_parts: list[str] = field(default_factory=list)
    content_parts: list[str] = field(default_factory=list)
    calls: list[ParsedToolCall] = field(default_factory=list)
    dropped: list[CallDropped] = field(default_factory=list)
    usage: Usage | None = None
    cancelled: bool = False
    cut: bool = False
    """Stopped at the step's token limit."""
    seconds: float = 0.0

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def content(self) -> str:
        return "".join(self.content_parts)

    @property
    def completion_tokens(self) -> int:
        return self.usage.completion_tokens if self.usage else 0

    def problem(self) -> str | None:
        """Why a reply without a runnable call is no answer either; None when it is one."""
        if self.dropped:
            return "; ".join(
                f"your tool call {d.raw_id!r} was not run: {d.why}" for d in self.dropped
            )
        if self.content.strip():
            return None
        if self.reasoning.strip():
            return "your reply held only reasoning, with no answer and no tool call"
        return "your reply was empty"


def read_reply(
    deltas: Iterator[Delta],
    step: int,
    event: Callable[[Event], None],
    context_size: int | None,
) -> Reply:
    """Stream the backend's deltas out as events; the reply they add up to."""
    reply = Reply()
    started = time.monotonic()
    for delta in deltas:
        if isinstance(delta, ReasoningDelta):
            reply.reasoning_parts.append(delta.text)
            event(ReasoningText(step=step, text=delta.text))
        elif isinstance(delta, ContentDelta):
            reply.content_parts.append(delta.text)
            event(ContentText(step=step, text=delta.text))
        elif isinstance(delta, ToolCallEnd):
            reply.calls.append(delta.call)
        elif isinstance(delta, CallDropped):
            reply.dropped.append(delta)
        elif isinstance(delta, ReasoningCut):
            event(ReasoningBudgetReached(step=step, tokens=delta.tokens))
        elif isinstance(delta, Retrying):
            event(ModelRetrying(step=step, **asdict(delta)))
        elif isinstance(delta, Usage):
            reply.usage = delta
            event(UsageReported(step=step, context_size=context_size, **asdict(delta)))
        elif isinstance(delta, Finished):
            reply.cancelled = delta.reason == "cancelled"
            reply.cut = delta.reason == "length"
    reply.seconds = time.monotonic() - started
    return reply
