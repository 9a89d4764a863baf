"""The status line: model, speed, context, step, budget left, sandbox and what is happening.

It is fed the same events as the transcript and renders one line of theme-coloured content.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual.content import Content
from textual.widget import Widget

from ponder.runtime.events import (
    ApprovalRequested,
    ApprovalResolved,
    ContentText,
    Event,
    ReasoningText,
    RunFinished,
    RunStarted,
    StepStarted,
    ToolCallStarted,
    UsageReported,
)

ENDINGS = {
    "answered": "done",
    "submitted": "submitted",
    "max_steps": "step limit reached",
    "token_budget": "token budget used up",
    "time_limit": "time limit reached",
    "loop": "stopped: repeating itself",
    "interrupted": "interrupted",
    "error": "error",
}


CHARS_PER_TOKEN = 3.5


def _count(tokens: float) -> str:
    return f"{tokens / 1000:.1f}K" if tokens >= 1000 else f"{tokens:.0f}"


def _joined(parts: list[tuple[int, Content]], chosen: set[int]) -> Content:
    return Content(" · ").join(text for index, (_, text) in enumerate(parts) if index in chosen)


@dataclass
class Status:
    model: str
    sandbox: str = ""
    state: str = "ready"
    step: int = 0
    max_steps: int = 0
    prefill: float | None = None
    decode: float | None = None
    context_used: int | None = None
    context_size: int | None = None
    context_assumed: bool = False
    """The context size is ponder's assumption (the server did not say it)."""
    counted_here: bool = False
    """The last step's token counts are ponder's estimate (the server sent none)."""
    tokens_used: int = 0
    max_tokens: int | None = None
    deadline: float | None = None
    _step_started: float = 0.0
    _step_chars: int = 0

    def apply(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.model = event.model  # the run's own (a /model between tasks changes it)
            self.sandbox = event.sandbox
            self.max_steps = event.max_steps
            self.max_tokens = event.max_tokens
            self.context_size = event.context_size
            self.context_assumed = (event.context_source or "").startswith("assumed")
            self.tokens_used = 0
            self.deadline = time.monotonic() + event.time_limit if event.time_limit else None
            self.state = "starting"
        elif isinstance(event, StepStarted):
            self.step = event.step
            self._step_started = time.monotonic()
            self._step_chars = 0
            self.state = "waiting for the model"
        elif isinstance(event, ReasoningText | ContentText):
            self.state = "thinking" if isinstance(event, ReasoningText) else "answering"
            self._step_chars += len(event.text)
            elapsed = time.monotonic() - self._step_started
            if elapsed > 0.5:  # a live estimate until the backend reports the real figure
                self.decode = self._step_chars / CHARS_PER_TOKEN / elapsed
        elif isinstance(event, UsageReported):
            self.prefill = event.prefill_tokens_per_s or self.prefill
            self.decode = event.decode_tokens_per_s or self.decode
            self.context_used = event.prompt_tokens + event.completion_tokens
            self.context_size = event.context_size
            self.tokens_used += event.completion_tokens
            self.counted_here = event.estimated
        elif isinstance(event, ToolCallStarted):
            self.state = f"running {event.name}"
        elif isinstance(event, ApprovalRequested):
            self.state = f"{event.name} waits for your approval"
        elif isinstance(event, ApprovalResolved):
            self.state = "running" if event.decision != "deny" else "denied"
        elif isinstance(event, RunFinished):
            self.state = ENDINGS.get(event.reason, event.reason)

    def render(self, width: int | None = None) -> Content:
        """The parts that fit in ``width`` cells, taken by rank: the state always, then step,
        context, budget left, speed, model and sandbox, each where it still fits."""
        parts = self._parts()
        chosen: set[int] = set()
        for index in sorted(range(len(parts)), key=lambda i: parts[i][0]):
            trial = chosen | {index}
            if not width or parts[index][0] == 0 or _joined(parts, trial).cell_length <= width:
                chosen = trial
        return _joined(parts, chosen)

    def _parts(self) -> list[tuple[int, Content]]:
        """(rank, text) in display order; a higher rank is dropped sooner."""
        parts = [(5, Content.styled(self.model, "$primary bold"))]
        parts.append((0, Content.styled(self.state, "$accent")))
        if self.step:
            parts.append((1, Content(f"step {self.step}/{self.max_steps}")))
        speed = []
        if self.prefill:
            speed.append(f"prefill {self.prefill:,.0f} t/s")
        if self.decode:
            speed.append(f"decode {'~' * self.counted_here}{self.decode:,.1f} t/s")
        if speed:
            parts.append((4, Content(" ".join(speed))))
        if self.context_used is not None and self.context_size:
            share = self.context_used / self.context_size
            style = "$error" if share > 0.85 else "$warning" if share > 0.6 else ""
            used, size = _count(self.context_used), _count(self.context_size)
            used = "~" * self.counted_here + used  # estimated: the server sent no counts
            size += ", assumed" if self.context_assumed else ""
            parts.append((2, Content.styled(f"context {share:.0%} ({used}/{size})", style)))
        left = self._budget_left()
        if left:
            parts.append((3, Content(left)))
        if self.sandbox:
            parts.append((6, Content.styled(self.sandbox, "$text-muted")))
        return parts

    def _budget_left(self) -> str:
        left = []
        if self.max_tokens:
            left.append(f"{_count(max(0, self.max_tokens - self.tokens_used))} tokens")
        if self.deadline is not None:
            left.append(f"{max(0.0, self.deadline - time.monotonic()):.0f} s")
        return " and ".join(left) + " left" if left else ""


class StatusLine(Widget):
    """Renders :class:`Status` at the width it has, so a narrow terminal keeps what matters."""

    def __init__(self, status: Status, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.status = status

    def render(self) -> Content:
        return self.status.render(self.content_size.width)
