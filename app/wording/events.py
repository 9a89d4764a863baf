"""How events are worded for a person, the same in every frontend: a call's ending, a plan, a
server, a run's usage, a checkpoint, and the one-line notes."""

from __future__ import annotations

from ponder.app.wording.changes import changes_block
from ponder.runtime.events import (
    AnswerRejected,
    ApprovalResolved,
    Checkpointed,
    CheckpointsOff,
    ContextCompacted,
    Event,
    FilesAttached,
    InstructionsLoaded,
    LoopDetected,
    McpServer,
    McpServersStarted,
    ModelRetrying,
    PlanUpdated,
    ReasoningBudgetReached,
    ReplyProblem,
    RunFinished,
    ToolCallFinished,
    ToolCallStarted,
)

STOPPED = {
    "token_budget": "the token budget is used up",
    "time_limit": "the time limit was reached",
    "loop": "the model kept repeating itself",
    "interrupted": "interrupted; the session goes on with the next message",
}


COMPACTIONS = {
    "hide_outputs": "older tool outputs hidden",
    "summary": "older steps summarised",
    "cleared": "conversation cleared",
}


def counted(number: int, noun: str) -> str:
    """``1 step``, ``3 steps``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def describe_ending(event: ToolCallFinished) -> str | None:
    """How a command ended, in the words both frontends show; None for tools without an exit."""
    if event.interrupted:
        return "interrupted"
    if event.timed_out:
        return "timed out"
    if event.exit_code is not None:
        return f"exit {event.exit_code}"
    return None


PLAN_MARKS = {"completed": "✓", "in_progress": "▸", "pending": "○"}


def shown_as_call(event: ToolCallStarted | ToolCallFinished) -> bool:
    """Whether a call is shown as a call: a plan update is shown as the plan it sets."""
    return event.kind != "plan"


def plan_lines(event: PlanUpdated) -> list[str]:
    """The plan as a checklist, one line a step."""
    return [f"{PLAN_MARKS[item.status]} {item.step}" for item in event.plan]


def describe_server(server: McpServer) -> str:
    if server.state == "failed":
        return f"MCP server {server.name} failed: {server.error}"
    tools = counted(len(server.tools), "tool")
    return f"MCP server {server.name}: {tools} ({', '.join(server.tools)})"


def _tokens(count: int) -> str:
    return f"{count / 1000:.1f}K" if count >= 1000 else str(count)


def describe_usage(session_id: str, finished: RunFinished) -> str:
    """One line: the session (to resume it), steps, tokens, time and cost."""
    parts = [f"session {session_id}", counted(finished.steps, "step")]
    usage = finished.usage
    if usage is not None:
        cached = f" ({_tokens(usage.cached_tokens)} cached)" if usage.cached_tokens else ""
        prompt = f"{_tokens(usage.prompt_tokens)} prompt{cached}"
        tokens = f"{prompt} + {_tokens(usage.completion_tokens)} completion tokens"
        parts.append(tokens + (" (estimated: the server sent no counts)" * usage.estimated))
        parts.append(f"{usage.wall_s:.1f} s")
        if usage.cost_usd is not None:
            parts.append(f"${usage.cost_usd:.4f}")
    parts.append(f"continue with: ponder exec --resume {session_id} PROMPT")
    return " · ".join(parts)


def describe_checkpoint(event: Checkpointed, interactive: bool = True) -> str:
    """The checkpoint's line, then what of its change a person must look at (``interactive``:
    the session takes slash commands)."""
    who = "background jobs of this session changed " if event.background else ""
    names = ", ".join(event.files[:5]) + (
        f" and {len(event.files) - 5} more" if len(event.files) > 5 else ""
    )
    undo = "/undo or `ponder undo`" if interactive else "`ponder undo`"
    line = f"checkpoint {event.commit[:8]}: {who}{names} ({undo} takes it back)"
    block = changes_block(
        event.changes, "look at these before you run anything here:", warnings_only=True
    )
    return f"{line}\n{block}" if block else line


def describe_note(event: Event, interactive: bool = True) -> str | None:
    """The line a person reads when a safety net acts (a budget, the context, the loop guard,
    a checkpoint, a policy's answer); None for every other event. Only an ``interactive``
    session is pointed at slash commands."""
    if isinstance(event, ReasoningBudgetReached):
        return f"reasoning budget reached after {event.tokens:,} tokens; the model acts now"
    if isinstance(event, ModelRetrying):
        return (
            f"model: attempt {event.attempt} of {event.attempts} failed: {event.error}; "
            f"trying again in {event.delay_s:.0f} s"
        )
    if isinstance(event, ContextCompacted):
        before, after = event.tokens_before, event.tokens_after
        return f"context: {COMPACTIONS[event.kind]} ({before:,} → {after:,} tokens)"
    if isinstance(event, LoopDetected):
        return f"loop guard: {event.kind.replace('_', ' ')} ×{event.repeats}, {event.action}"
    if isinstance(event, McpServersStarted):
        return "\n".join([*map(describe_server, event.servers), *event.notes])
    if isinstance(event, InstructionsLoaded):
        return f"instructions from {', '.join(event.files)}" + (
            f" ({event.note})" if event.note else ""
        )
    if isinstance(event, FilesAttached):
        files = f"attached {', '.join(event.files)}" if event.files else ""
        return "; ".join(filter(None, [files, *event.notes]))
    if isinstance(event, CheckpointsOff):
        lost = "/undo and /diff" if interactive else "`ponder undo` and `ponder diff`"
        return f"checkpoints are off: {event.reason}; {lost} will not work"
    if isinstance(event, Checkpointed):
        return describe_checkpoint(event, interactive)
    if isinstance(event, ReplyProblem):
        then = "asked again" if event.retrying else "noted"
        return f"unusable reply: {event.problem} ({then})"
    if isinstance(event, AnswerRejected):
        then = "sent back to the model" if event.retrying else "no more tries"
        return f"the answer does not match --output-schema ({event.problem}); {then}"
    if isinstance(event, ApprovalResolved) and event.by == "policy":
        return f"{event.call_id}: {event.decision} by policy"
    return None


def describe_run_end(event: RunFinished) -> str:
    """How a run ended, in one line for the transcript: its reason, steps and time."""
    steps = counted(event.steps, "step")
    took = f" · {event.usage.wall_s:.1f} s" if event.usage is not None else ""
    if event.reason == "error":
        return f"error after {steps}: {event.error}"
    if event.reason == "max_steps":
        return f"stopped: reached {steps}{took}"
    if event.reason in STOPPED:
        return f"stopped: {STOPPED[event.reason]} · {steps}{took}"
    return f"{event.reason} · {steps}{took}"
