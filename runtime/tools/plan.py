"""The ``update_plan`` tool: the model keeps a short checklist the person can watch.

The shape is Codex's (``explanation``, ``plan: [{step, status}]``), which models trained on
agent traces know. The plan is shown by every frontend and kept word for word in the task state
when the conversation is summarised.
"""

from __future__ import annotations

from typing import Any, get_args

from ponder.model.messages import ToolSchema
from ponder.runtime.events import PlanStatus, PlanStep, PlanUpdated
from ponder.runtime.tool_events import ToolKind
from ponder.runtime.tools.base import BaseTool, ToolContext, ToolInputError, ToolOutcome

MAX_STEPS = 50
MAX_STEP_CHARS = 500

SCHEMA = ToolSchema(
    name="update_plan",
    description=(
        "Keep a short plan of the task that the user can see. Send the whole plan each time: "
        "each step a short sentence with its status (pending, in_progress or completed), at "
        "most one in_progress. Update it as steps are done or the plan changes; skip it for "
        "tasks of one or two steps."
    ),
    parameters={
        "type": "object",
        "properties": {
            "explanation": {"type": "string", "description": "Why the plan changed (optional)."},
            "plan": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "step": {"type": "string"},
                        "status": {"type": "string", "enum": list(get_args(PlanStatus))},
                    },
                    "required": ["step", "status"],
                },
            },
        },
        "required": ["plan"],
    },
)


def parse_plan(arguments: dict[str, Any]) -> tuple[str | None, list[PlanStep]]:
    """The explanation and the steps; :class:`ToolInputError` says what is wrong."""
    items = arguments.get("plan")
    if not isinstance(items, list):
        raise ToolInputError("parameter `plan` is required and must be a list of steps")
    if len(items) > MAX_STEPS:
        raise ToolInputError(f"a plan has at most {MAX_STEPS} steps; this one has {len(items)}")
    steps = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("step"), str):
            raise ToolInputError(f"step {number} must be an object with a `step` string")
        status = item.get("status")
        if status not in get_args(PlanStatus):
            raise ToolInputError(
                f"step {number} has status {status!r}; use pending, in_progress or completed"
            )
        steps.append(
            PlanStep.model_validate({"step": item["step"][:MAX_STEP_CHARS], "status": status})
        )
    if sum(step.status == "in_progress" for step in steps) > 1:
        raise ToolInputError("at most one step can be in_progress")
    explanation = arguments.get("explanation")
    return (explanation if isinstance(explanation, str) and explanation.strip() else None), steps


class PlanTool(BaseTool):
    """Shown as the plan it sets (:class:`PlanUpdated`), not as a call."""

    schema = SCHEMA
    kind: ToolKind = "plan"

    def summary(self, arguments: dict[str, Any]) -> str:
        steps = arguments.get("plan")
        return f"{len(steps)} steps" if isinstance(steps, list) else "the plan"

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        explanation, steps = parse_plan(arguments)
        context.emit(PlanUpdated(call_id=context.call_id, explanation=explanation, plan=steps))
        return ToolOutcome("Plan updated.")
