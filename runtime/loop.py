"""The agent loop: generate, run the tools the model called, feed back the results, repeat.

One :class:`Agent` holds one conversation. :meth:`Agent.run` takes a task and goes on until the
model answers without calling a tool, calls ``submit``, a budget runs out, the loop guard stops
it, or the user interrupts. Every change to the conversation is an event, so the session file
can restore it. Nothing the model does (bad arguments, unknown tools, failing commands) stops a
run; backend and sandbox failures end it with reason ``error``. A checkpoint failure turns
checkpoints off (an event says why) and the run goes on.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from ponder.model.backend import (
    BackendError,
    BackendUnavailable,
    ChatBackend,
    GenerationSettings,
)
from ponder.model.deltas import (
    CallDropped,
    ContentDelta,
    Finished,
    ParsedToolCall,
    ReasoningCut,
    ReasoningDelta,
    ToolCallEnd,
    Usage,
)
from ponder.model.messages import Message, ToolCall
from ponder.runtime.approvals import ApprovalPolicy, Approver
from ponder.runtime.budgets import Budgets, BudgetTracker
from ponder.runtime.checkpoints import CheckpointError, Checkpoints
from ponder.runtime.context import ContextManager, ContextSettings, TaskState
from ponder.runtime.events import (
    Checkpointed,
    CheckpointsOff,
    ContentText,
    ContextCompacted,
    Emit,
    Event,
    FileEdited,
    FinishReason,
    LoopDetected,
    MessageAdded,
    ReasoningBudgetReached,
    ReasoningText,
    ReplyProblem,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
)
from ponder.runtime.loop_guard import NUDGES, LoopGuard, LoopGuardSettings
from ponder.runtime.tool_calls import ToolRunner
from ponder.runtime.tools import default_tools
from ponder.runtime.tools.base import Tool, ToolOutcome
from ponder.sandbox.base import Sandbox, SandboxError


def system_prompt(workdir: str) -> str:
    return (
        "You are ponder, a coding agent. You work in a sandboxed Linux environment where the "
        f"user's repository is at {workdir} (your working directory). Every tool runs there."
        "\n\nWork like a careful engineer: look at the code before changing it, reproduce a "
        "problem before fixing it, make the smallest change that solves it, and run the tests to "
        "check. When the task is done, answer with a short summary of what you changed and why, "
        "without calling a tool."
    )


@dataclass(frozen=True)
class AgentSettings:
    budgets: Budgets = field(default_factory=Budgets)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    loop_guard: LoopGuardSettings = field(default_factory=LoopGuardSettings)
    system_prompt: str | None = None
    """None: :func:`system_prompt` for the sandbox's workspace."""


UNUSABLE_REPLIES = 3
"""Replies in a row that cannot be used (empty, only reasoning, calls that cannot run) before
the run ends with ``error``."""


@dataclass
class _Generated:
    reasoning_parts: list[str] = field(default_factory=list)
    content_parts: list[str] = field(default_factory=list)
    calls: list[ParsedToolCall] = field(default_factory=list)
    dropped: list[CallDropped] = field(default_factory=list)
    completion_tokens: int = 0
    prompt_tokens: int | None = None
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


class Agent:
    def __init__(
        self,
        backend: ChatBackend,
        sandbox: Sandbox,
        emit: Emit,
        *,
        tools: list[Tool] | None = None,
        settings: AgentSettings | None = None,
        policy: ApprovalPolicy | None = None,
        approver: Approver | None = None,
        checkpoints: Checkpoints | None = None,
        messages: list[Message] | None = None,
    ) -> None:
        """``messages`` continues an earlier conversation (``--resume``)."""
        self.backend = backend
        self.sandbox = sandbox
        self.emit = emit
        self.settings = settings or AgentSettings()
        self.tools = {tool.schema.name: tool for tool in (tools or default_tools())}
        self.schemas = [tool.schema for tool in self.tools.values()]
        self.cancel = threading.Event()
        self._time_up = threading.Event()
        self.policy = policy
        self.approver = approver
        self.checkpoints = checkpoints
        self.messages: list[Message] = list(messages or [])
        self.state = TaskState()
        self._context = ContextManager(self.settings.context)
        self._loop_guard = LoopGuard(self.settings.loop_guard)
        self._prompt_tokens: int | None = None
        self._chars_since_count = 0
        self._last_command = ""
        self._unusable_replies = 0

    def interrupt(self) -> None:
        """Stop the current generation or command within a moment; the run ends ``interrupted``."""
        self.cancel.set()

    def _emit(self, event: Event) -> None:
        if isinstance(event, FileEdited) and event.path not in self.state.files_changed:
            self.state.files_changed.append(event.path)
        elif isinstance(event, ToolCallStarted) and event.name == "bash" and event.arguments:
            self._last_command = str(event.arguments.get("command", ""))
        elif isinstance(event, ToolCallFinished) and event.name == "bash" and not event.ok:
            self.state.last_failure = f"{self._last_command} (exit {event.exit_code})"
        self.emit(event)

    def _add(self, message: Message) -> None:
        self.messages.append(message)
        self._chars_since_count += len(message.content) + len(message.reasoning or "")
        self.emit(MessageAdded(message=message.to_openai()))

    def run(self, task: str) -> RunFinished:
        self.cancel.clear()
        budgets = self.settings.budgets
        self.emit(
            RunStarted(
                task=task,
                model=self.backend.name,
                sandbox=self.sandbox.description,
                max_steps=budgets.max_steps,
                max_tokens=budgets.total_tokens,
                time_limit_s=budgets.wall_clock_s,
            )
        )
        if not self.messages:
            prompt = self.settings.system_prompt or system_prompt(self.sandbox.workdir)
            self._add(Message(role="system", content=prompt))
        self._add(Message(role="user", content=task))
        self.state.task = task
        tracker = BudgetTracker(budgets)
        step = 0
        clock = self._start_clock(budgets.wall_clock_s)
        try:
            while True:
                limit = tracker.exceeded(step)
                if limit is not None:
                    return self._finish(limit, "", step)
                if self.cancel.is_set():
                    return self._finish("interrupted", "", step)
                step += 1
                finished = self._step(step, tracker)
                if finished is not None:
                    return finished
        except (BackendError, SandboxError) as error:
            retryable = isinstance(error, BackendUnavailable) or None
            return self._finish("error", "", step, error=str(error), retryable=retryable)
        finally:
            if clock is not None:
                clock.cancel()

    def _start_clock(self, seconds: float | None) -> threading.Timer | None:
        """The run's wall clock, which also stops a generation or a command that runs past it."""
        self._time_up.clear()
        if seconds is None:
            return None

        def time_up() -> None:
            self._time_up.set()
            self.cancel.set()

        clock = threading.Timer(seconds, time_up)
        clock.daemon = True
        clock.start()
        return clock

    def _checkpoint(self, step: int, before: bool) -> None:
        """Before a step's tools run, note the workspace; after, store what the step changed."""
        if self.checkpoints is None:
            return
        try:
            if before:
                self.checkpoints.before_step()
                return
            checkpoint = self.checkpoints.checkpoint()
        except CheckpointError as error:  # the safety net failed; the work itself did not
            self.checkpoints = None
            self.emit(CheckpointsOff(reason=str(error)))
            return
        if checkpoint is not None:
            self.emit(Checkpointed(step=step, commit=checkpoint.commit, files=checkpoint.files))

    def _finish(
        self,
        reason: FinishReason,
        answer: str,
        steps: int,
        error: str | None = None,
        retryable: bool | None = None,
    ) -> RunFinished:
        if reason == "interrupted" and self._time_up.is_set():
            reason = "time_limit"
        finished = RunFinished(
            reason=reason, answer=answer, steps=steps, error=error, retryable=retryable
        )
        self.emit(finished)
        return finished

    def _step(self, step: int, tracker: BudgetTracker) -> RunFinished | None:
        started = time.monotonic()
        self._fit_context()
        self.emit(StepStarted(step=step, max_steps=tracker.budgets.max_steps))
        generated = self._generate(step, tracker)
        tracker.add_tokens(generated.completion_tokens)
        out_of_tokens = generated.cut and tracker.out_of_tokens  # the budget ran out mid-step
        calls = [] if generated.cancelled or out_of_tokens else generated.calls
        self._add(
            Message(
                role="assistant",
                content=generated.content,
                reasoning=generated.reasoning,
                tool_calls=[
                    ToolCall(id=c.id, name=c.name, arguments=c.raw_arguments) for c in calls
                ],
            )
        )
        tools_started = time.monotonic()
        outcomes: list[ToolOutcome] = []
        if calls:
            self._checkpoint(step, before=True)
            runner = ToolRunner(
                self.tools, self.sandbox, self._emit, self.cancel, self.policy, self.approver
            )
            outcomes = runner.run(step, calls)
        tools_seconds = time.monotonic() - tools_started
        verdict = self._guard(step, generated, calls, outcomes)
        if calls and generated.dropped:  # the others ran; the model hears about the rest
            problem = generated.problem() or ""
            self.emit(ReplyProblem(step=step, problem=problem, retrying=False))
            last = outcomes[-1]
            outcomes[-1] = replace(last, text=f"{last.text}\n\n[ponder: {problem}]")
        for call, outcome in zip(calls, outcomes, strict=True):
            self._add(
                Message(role="tool", content=outcome.text, tool_call_id=call.id, name=call.name)
            )
        if calls:
            self._checkpoint(step, before=False)
        self.emit(
            StepFinished(
                step=step,
                elapsed_s=time.monotonic() - started,
                model_s=generated.seconds,
                tools_s=tools_seconds,
            )
        )
        if generated.cancelled or self.cancel.is_set():
            return self._finish("interrupted", generated.content, step)
        if out_of_tokens:  # what the model had written of its answer is kept
            return self._finish("token_budget", generated.content, step)
        if not calls:
            return self._unusable_or_answered(step, generated)
        self._unusable_replies = 0
        if verdict == "stop":
            return self._finish("loop", "", step)
        submitted = next((o for o in outcomes if o.ends_run), None)
        if submitted is not None:
            return self._finish("submitted", submitted.text, step)
        return None

    def _unusable_or_answered(self, step: int, generated: _Generated) -> RunFinished | None:
        """A reply without calls is the answer, unless it is none: then the model is told why
        and asked again, until :data:`UNUSABLE_REPLIES` such replies in a row end the run."""
        problem = generated.problem()
        if problem is None:
            return self._finish("answered", generated.content, step)
        self._unusable_replies += 1
        retrying = self._unusable_replies < UNUSABLE_REPLIES
        self.emit(ReplyProblem(step=step, problem=problem, retrying=retrying))
        if not retrying:
            error = f"the model gave no usable reply {UNUSABLE_REPLIES} times in a row ({problem})"
            return self._finish("error", "", step, error=error)
        self._add(
            Message(
                role="user",
                content=f"[ponder: {problem}. Go on with the task: call a tool (ids are "
                "functions.NAME:N), or give your final answer.]",
            )
        )
        return None

    def _generate(self, step: int, tracker: BudgetTracker) -> _Generated:
        result = _Generated()
        settings = replace(
            self.settings.generation,
            reasoning_budget=tracker.budgets.reasoning_tokens_per_step,
            max_tokens=tracker.tokens_left(self.settings.generation.max_tokens),
        )
        started = time.monotonic()
        for delta in self.backend.stream(self.messages, self.schemas, settings, self.cancel):
            if isinstance(delta, ReasoningDelta):
                result.reasoning_parts.append(delta.text)
                self.emit(ReasoningText(step=step, text=delta.text))
            elif isinstance(delta, ContentDelta):
                result.content_parts.append(delta.text)
                self.emit(ContentText(step=step, text=delta.text))
            elif isinstance(delta, ToolCallEnd):
                result.calls.append(delta.call)
            elif isinstance(delta, CallDropped):
                result.dropped.append(delta)
            elif isinstance(delta, ReasoningCut):
                self.emit(ReasoningBudgetReached(step=step, tokens=delta.tokens))
            elif isinstance(delta, Usage):
                result.completion_tokens = delta.completion_tokens
                self._prompt_tokens = delta.prompt_tokens + delta.completion_tokens
                self._chars_since_count = 0
                self.emit(
                    UsageReported(
                        step=step,
                        prompt_tokens=delta.prompt_tokens,
                        cached_tokens=delta.cached_tokens,
                        completion_tokens=delta.completion_tokens,
                        prefill_tokens_per_s=delta.prefill_tokens_per_s,
                        decode_tokens_per_s=delta.decode_tokens_per_s,
                        context_size=self.backend.context_size,
                    )
                )
            elif isinstance(delta, Finished):
                result.cancelled = delta.reason == "cancelled"
                result.cut = delta.reason == "length"
        result.seconds = time.monotonic() - started
        return result

    def compact(self) -> int:
        """Shorten the conversation now (the user's /compact); the number of actions taken."""
        self.cancel.clear()
        return self._fit_context(force=True)

    def clear(self) -> None:
        """Start the conversation afresh (the user's /clear); the session file goes on."""
        self.messages.clear()
        self.state = TaskState()
        self._prompt_tokens = None
        self._chars_since_count = 0
        self.emit(ContextCompacted(kind="cleared", tokens_before=0, tokens_after=0, messages=[]))

    def _fit_context(self, force: bool = False) -> int:
        size = self.backend.context_size
        if not size and not force:
            return 0
        if self._prompt_tokens is not None and size and not force:
            # From the last step's usage and what was added since: count exactly only when near.
            estimate = self._prompt_tokens + self._chars_since_count // 3
            if estimate < size * self.settings.context.threshold * 0.9:
                return 0
        done_list = self._context.fit(
            self.messages, self.schemas, self.backend, self.state, self.cancel, force=force
        )
        for done in done_list:
            self._prompt_tokens = done.tokens_after
            self._chars_since_count = 0
            self.emit(
                ContextCompacted(
                    kind="summary" if done.kind == "summary" else "hide_outputs",
                    tokens_before=done.tokens_before,
                    tokens_after=done.tokens_after,
                    messages=[m.to_openai() for m in self.messages],
                )
            )
        return len(done_list)

    def _guard(
        self,
        step: int,
        generated: _Generated,
        calls: list[ParsedToolCall],
        outcomes: list[ToolOutcome],
    ) -> str | None:
        """Watch for loops; a nudge is added to the step's last tool result."""
        if not calls:
            return None
        seen = self._loop_guard.observe(
            generated.reasoning, [(c.name, c.arguments, c.raw_arguments) for c in calls]
        )
        if seen is None:
            return None
        kind, repeats, action = seen
        self.emit(LoopDetected(step=step, kind=kind, repeats=repeats, action=action))
        if action == "nudge":
            last = outcomes[-1]
            outcomes[-1] = replace(last, text=f"{last.text}\n\n{NUDGES[kind].format(n=repeats)}")
        return action
