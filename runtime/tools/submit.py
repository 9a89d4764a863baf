"""The ``submit`` tool: the model says the task is done (headless runs end on it)."""

from __future__ import annotations

from typing import Any

from ponder.model.messages import ToolSchema
from ponder.runtime.tool_events import ToolKind
from ponder.runtime.tools.base import BaseTool, ToolContext, ToolOutcome

SCHEMA = ToolSchema(
    name="submit",
    description=(
        "Finish the task. Call this once the work is complete and verified; the changes in the "
        "workspace are the result. Give a short summary of what you changed and why."
    ),
    parameters={
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "What was changed and why."},
        },
        "required": [],
    },
)


class SubmitTool(BaseTool):
    schema = SCHEMA
    kind: ToolKind = "submit"

    def summary(self, arguments: dict[str, Any]) -> str:
        return "the task is done"

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        summary = arguments.get("summary")
        text = summary if isinstance(summary, str) and summary.strip() else "Submitted."
        return ToolOutcome(text=text, ends_run=True)
