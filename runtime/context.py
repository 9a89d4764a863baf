"""Keeping the conversation inside the model's context, without losing the task.

Before each step the prompt is measured against the context. Past the threshold, older tool
outputs are hidden first (their bodies replaced by a short marker), oldest first, the latest few
kept whole. If that is not enough, older steps are summarised by the model, and the summary is
given back together with a task state ponder keeps itself (the task, the files changed, the last
failing command), so nothing that matters depends on the summary alone. The task text is never
touched.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from ponder.model.backend import ChatBackend
from ponder.model.deltas import Usage
from ponder.model.messages import Message, ToolSchema
from ponder.model.options import GenerationSettings
from ponder.runtime.events import (
    Event,
    FileEdited,
    PlanUpdated,
    ToolCallFinished,
    ToolCallStarted,
)
from ponder.runtime.reply import Reply, read_reply

HIDDEN_MARKER = (
    "[output hidden to save context ({chars} characters); run the command again if needed]"
)
SUMMARY_REQUEST = (
    "The conversation is about to outgrow the context. Summarise the work so far for yourself: "
    "what you found, what you changed and why, what failed, and your plan for what is left. Be "
    "specific (file names, function names, commands, error messages). Write only the summary."
)


@dataclass(frozen=True)
class ContextSettings:
    keep_recent_outputs: int = 3
    """The latest tool outputs that are never hidden."""
    keep_recent_steps: int = 2
    """The latest steps that are never summarised."""


@dataclass
class TaskState:
    """What ponder itself knows about the run, carried verbatim through a summary."""

    task: str = ""
    files_changed: list[str] = field(default_factory=list)
    last_failure: str = ""
    plan: list[tuple[str, str]] = field(default_factory=list)
    """The model's newest plan (``update_plan``): (step, status) pairs."""
    last_command: str = ""

    def follow(self, event: Event) -> None:
        """Keep up with the run's tool events (the files edited, the last failing command,
        the plan)."""
        if isinstance(event, FileEdited) and event.path not in self.files_changed:
            self.files_changed.append(event.path)
        elif isinstance(event, ToolCallStarted) and event.kind == "execute":
            self.last_command = event.summary
        elif isinstance(event, ToolCallFinished) and event.kind == "execute" and not event.ok:
            self.last_failure = f"{self.last_command} (exit {event.exit_code})"
        elif isinstance(event, PlanUpdated):
            self.plan = [(item.step, item.status) for item in event.plan]

    def describe(self) -> str:
        files = ", ".join(self.files_changed) if self.files_changed else "none yet"
        lines = [f"Task: {self.task}", f"Files changed so far: {files}"]
        if self.last_failure:
            lines.append(f"Last failing command: {self.last_failure}")
        if self.plan:
            lines.append("Plan:")
            lines += [f"- [{status}] {step}" for step, status in self.plan]
        return "\n".join(lines)


@dataclass(frozen=True)
class Compaction:
    kind: str
    tokens_before: int
    tokens_after: int
    usage: Usage | None = None
    """What writing the summary used (it counts in the run's usage and token budget)."""


def _step_starts(messages: Sequence[Message]) -> list[int]:
    return [i for i, m in enumerate(messages) if m.role == "assistant"]


class ContextFitter:
    """Shortens a conversation that no longer fits: older tool outputs first, then a summary."""

    def __init__(self, settings: ContextSettings | None = None, threshold: float = 0.85) -> None:
        self.settings = settings or ContextSettings()
        self.threshold = threshold
        """Share of the context the next prompt may fill before anything is shortened."""

    def fit(
        self,
        messages: list[Message],
        tools: Sequence[ToolSchema],
        backend: ChatBackend,
        state: TaskState,
        generation: GenerationSettings,
        cancel: threading.Event | None = None,
        force: bool = False,
    ) -> list[Compaction]:
        """Shorten ``messages`` in place until the prompt fits under the threshold; with
        ``force`` (the user's /compact), hide old outputs and summarise regardless. A summary is
        generated with ``generation`` (the run's sampling and caps) and stops at ``cancel``."""
        size = backend.context_size
        if not size and not force:
            return []
        limit = 0 if force else int((size or 0) * self.threshold)
        before = backend.count_tokens(messages, tools)
        if before <= limit:
            return []
        done = []
        if self._hide_outputs(messages):
            after = backend.count_tokens(messages, tools)
            done.append(Compaction("hide_outputs", before, after))
            before = after
        if before > limit:
            summarised = self._summarise(messages, tools, backend, state, generation, cancel)
            if summarised is not None:
                after = backend.count_tokens(messages, tools)
                done.append(Compaction("summary", before, after, summarised.usage))
        return done

    def _hide_outputs(self, messages: list[Message]) -> bool:
        tool_indexes = [i for i, m in enumerate(messages) if m.role == "tool"]
        keep = set(tool_indexes[-self.settings.keep_recent_outputs :])
        changed = False
        for index in tool_indexes:
            message = messages[index]
            if index in keep or message.content.startswith("[output hidden"):
                continue
            marker = HIDDEN_MARKER.format(chars=len(message.content))
            if len(marker) < len(message.content):
                messages[index] = message.model_copy(update={"content": marker})
                changed = True
        return changed

    def _summarise(
        self,
        messages: list[Message],
        tools: Sequence[ToolSchema],
        backend: ChatBackend,
        state: TaskState,
        generation: GenerationSettings,
        cancel: threading.Event | None,
    ) -> Reply | None:
        """The summary's reply, once it replaced the older steps; None when there was nothing
        to summarise or the generation was interrupted (the conversation is left as it was)."""
        starts = _step_starts(messages)
        if len(starts) <= self.settings.keep_recent_steps:
            return None
        first_step = starts[0]
        keep_from = starts[-self.settings.keep_recent_steps]
        head, middle, tail = (
            messages[:first_step],
            messages[first_step:keep_from],
            messages[keep_from:],
        )
        request = Message(role="user", content=SUMMARY_REQUEST)
        size = backend.context_size or 0
        # The summary request itself must fit: the oldest steps go unread if they do not.
        while (
            size
            and len(middle) > 1
            and backend.count_tokens([*head, *middle, request], tools) > size
        ):
            later = [i for i, m in enumerate(middle) if m.role == "assistant" and i > 0]
            middle = middle[later[0] :] if later else middle[1:]
        deltas = backend.stream([*head, *middle, request], tools, generation, cancel)
        reply = read_reply(deltas, 0, lambda event: None, size or None)
        if reply.cancelled:
            return None
        summary = reply.content.strip()
        if reply.cut:
            summary += "\n[the summary was cut off: the run's token budget ran out]"
        carried = Message(
            role="user",
            content=(
                "[The earlier steps of this task were summarised to save context.]\n\n"
                f"Summary:\n{summary or '(the summary came back empty)'}\n\n"
                f"State kept by ponder:\n{state.describe()}"
            ),
        )
        messages[:] = [*head, carried, *tail]
        return reply
