"""A session as Markdown: the task, the reasoning, each command with its output, each edit."""

from __future__ import annotations

from typing import Any

from ponder.app.wording.events import counted
from ponder.app.wording.for_display import for_display
from ponder.app.wording.markdown import fenced
from ponder.runtime.events import (
    AnswerRejected,
    ContentText,
    Event,
    FileEdited,
    ReasoningText,
    RunFinished,
    RunStarted,
    StepStarted,
    ToolCallFinished,
    ToolCallStarted,
)
from ponder.sandbox.safe_text import safe_text


def to_markdown(header: dict[str, Any], events: list[Event]) -> str:
    """The session as Markdown; its texts are made safe to print on a terminal."""
    header = {key: safe_text(str(value)) for key, value in header.items()}
    out = [f"# ponder session {header.get('id', '')}\n"]
    out.append(
        f"- started: {header.get('created', '')}\n- workspace: `{header.get('workspace', '')}`\n"
    )
    out.append(f"- model: `{header.get('model', '')}`\n")
    reasoning: list[str] = []
    content: list[str] = []
    calls: dict[str, ToolCallStarted] = {}

    def flush() -> None:
        if reasoning:
            quoted = "\n".join(f"> {line}" for line in "".join(reasoning).splitlines())
            out.append(f"\n<details><summary>Reasoning</summary>\n\n{quoted}\n\n</details>\n")
            reasoning.clear()
        if content:
            out.append("\n" + "".join(content).strip() + "\n")
            content.clear()

    for event in map(for_display, events):
        if isinstance(event, RunStarted):
            out.append(f"\n## Task\n\n{event.task}\n")
        elif isinstance(event, StepStarted):
            flush()
            out.append(f"\n### Step {event.step}\n")
        elif isinstance(event, ReasoningText):
            reasoning.append(event.text)
        elif isinstance(event, ContentText):
            content.append(event.text)
        elif isinstance(event, ToolCallStarted):
            flush()
            calls[event.call_id] = event
            out.append(f"\n**{event.name}** `{event.summary}`\n")
        elif isinstance(event, ToolCallFinished):
            out.append("\n" + fenced(event.for_person))
        elif isinstance(event, FileEdited):
            out.append(f"\nEdited `{event.path}`:\n\n" + fenced(event.diff, "diff"))
        elif isinstance(event, RunFinished):
            flush()
            out.append(f"\n**Finished:** {event.reason} after {counted(event.steps, 'step')}")
            out.append(f" ({event.error})\n" if event.error else "\n")
        elif isinstance(event, AnswerRejected):
            then = "sent back to the model" if event.retrying else "the run failed"
            out.append(f"\n**Answer rejected** by --output-schema ({event.problem}); {then}\n")
    flush()
    return "".join(out)
