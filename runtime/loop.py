"""The agent loop: generate, run the tools the model called, feed back the results, repeat.

One :class:`Agent` holds one conversation. :meth:`Agent.run` takes a task and the run's
:class:`~ponder.runtime.port.RunPort` (where its events go and its approvals come from) and goes
on until the model answers without calling a tool, calls ``submit``, a budget runs out, the loop
guard stops it, or the user interrupts: an :class:`Ending`, which :meth:`Agent.run` turns into
the run's one :class:`RunFinished`. Every change to the conversation is an event, so the session
file can restore it. Nothing the model does (bad arguments, unknown tools, failing commands)
stops a run; backend and sandbox failures end it with ``error``; a checkpoint failure turns
checkpoints off (an event says why) and the run goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, replace

from ponder.model.backend import BackendError, BackendUnavailable, ChatBackend
from ponder.model.messages import Message, ToolCall
from ponder.model.options import GenerationSettings
from ponder.runtime.agent_settings import AgentSettings, system_prompt
from ponder.runtime.approvals import ApprovalAnswer, ApprovalPolicy
from ponder.runtime.budgets import BudgetTracker, start_clock
from ponder.runtime.checkpoints import CheckpointError, Checkpoints
from ponder.runtime.context import ContextFitter, TaskState
from ponder.runtime.events import (
    ApprovalRequested,
    CheckpointsOff,
    ContextCompacted,
    Event,
    FinishReason,
    MessageAdded,
    ReplyProblem,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)
from ponder.runtime.loop_guard import LoopGuard
from ponder.runtime.port import RunPort, Unattended
from ponder.runtime.reply import Reply, read_reply
from ponder.runtime.tool_calls import ToolRunner
from ponder.runtime.tools import default_tools
from ponder.runtime.tools.base import Tool, ToolOutcome
from ponder.runtime.usage import UsageTotals
from ponder.sandbox.base import Sandbox, SandboxError

UNUSABLE_REPLIES = 3
"""Replies in a row that cannot be used (empty, only reasoning, calls that cannot run) before
the run ends with ``error``."""


@dataclass(frozen=True)
class Ending:
    """How a run ends; :meth:`Agent.run` turns it into the run's :class:`RunFinished`."""

    reason: FinishReason
    answer: str = ""
    error: str | None = None
    retryable: bool | None = None


IDLE: RunPort = Unattended(lambda event: None)
"""The port between runs: nothing is watching, and nothing asks."""


class Agent:
    def __init__(
        self,
        backend: ChatBackend,
        sandbox: Sandbox,
        *,
        tools: list[Tool] | None = None,
        settings: AgentSettings | None = None,
        policy: ApprovalPolicy | None = None,
        checkpoints: Checkpoints | None = None,
        messages: list[Message] | None = None,
        session_id: str | None = None,
    ) -> None:
        """``messages`` continues an earlier conversation (``--resume``)."""
        self.session_id = session_id
        self.backend = backend
        self.sandbox = sandbox
        self.settings = settings or AgentSettings()
        self.tools = {tool.schema.name: tool for tool in (tools or default_tools())}
        self.schemas = [tool.schema for tool in self.tools.values()]
        self.cancel = threading.Event()
        self._time_up = threading.Event()
        self.policy = policy
        self.checkpoints = checkpoints
        self.messages: list[Message] = list(messages or [])
        self.state = TaskState()
        self._port: RunPort = IDLE
        self._context = ContextFitter(
            self.settings.context, self.settings.budgets.context_threshold
        )
        self._loop_guard = LoopGuard(self.settings.loop_guard)
        self._prompt_tokens: int | None = None
        self._chars_since_count = 0
        self._unusable_replies = 0
        self._steps = 0
        self._usage = UsageTotals()

    # --- what frontends and slash commands may do

    def interrupt(self) -> None:
        """Stop the current generation, command or approval within a moment; the run ends
        ``interrupted``."""
        self.cancel.set()

    def switch_backend(self, backend: ChatBackend) -> ChatBackend:
        """Go on with another model (the conversation is kept); returns the one replaced."""
        old, self.backend = self.backend, backend
        return old

    def compact(self, port: RunPort) -> int:
        """Shorten the conversation now (the user's /compact); the number of actions taken."""
        self.cancel.clear()
        self._port = port
        try:
            return self._fit_context(force=True)
        finally:
            self._port = IDLE

    def clear(self, port: RunPort) -> None:
        """Start the conversation afresh (the user's /clear); the session file goes on."""
        self.messages.clear()
        self.state = TaskState()
        self._prompt_tokens = None
        self._chars_since_count = 0
        port.event(ContextCompacted(kind="cleared", tokens_before=0, tokens_after=0, messages=[]))

    # --- a run

    def run(
        self, task: str, port: RunPort, attached: str = "", preface: Sequence[Event] = ()
    ) -> RunFinished:
        """Run ``task`` to its end; ``attached`` (files the task names) goes to the model with
        it but is not the task the events show; ``preface`` follows ``RunStarted`` (notes of
        the session's setup: a consumer's first event is always the run's start)."""
        self.cancel.clear()
        self._time_up.clear()
        self._port = port
        self._steps = 0
        self._usage = UsageTotals()
        started = time.monotonic()
        budgets = self.settings.budgets
        clock = start_clock(budgets.time_limit, self._time_is_up)
        try:
            self._event(
                RunStarted(
                    task=task,
                    session_id=self.session_id,
                    model=self.backend.name,
                    sandbox=self.sandbox.description,
                    max_steps=budgets.max_steps,
                    max_tokens=budgets.max_tokens,
                    time_limit=budgets.time_limit,
                    context_size=self.backend.context_size,
                    context_source=self.backend.context_source,
                )
            )
            for event in preface:
                self._event(event)
            ending = self._run(task, attached, BudgetTracker(budgets))
        except (BackendError, SandboxError) as error:
            retryable = isinstance(error, BackendUnavailable) or None
            ending = Ending("error", error=str(error), retryable=retryable)
        finally:
            if clock is not None:
                clock.cancel()
        self._checkpoint(self._steps, settle=True)
        finished = RunFinished(
            reason=ending.reason,
            answer=ending.answer,
            steps=self._steps,
            error=ending.error,
            retryable=ending.retryable,
            usage=self._usage.report(time.monotonic() - started, self.settings.prices),
        )
        self._event(finished)
        self._port = IDLE
        return finished

    def _run(self, task: str, attached: str, tracker: BudgetTracker) -> Ending:
        if not self.messages:
            prompt = self.settings.system_prompt or system_prompt(self.sandbox.workdir)
            if self.settings.instructions:
                prompt += "\n\n" + self.settings.instructions
            self._add(Message(role="system", content=prompt))
        self._add(Message(role="user", content=task + attached))
        self.state.task = task
        while True:
            limit = tracker.exceeded(self._steps)
            if limit is not None:
                return Ending(limit)
            stopped = self._stopped()
            if stopped is not None:
                return Ending(stopped)
            self._steps += 1
            ending = self._step(self._steps, tracker)
            if ending is not None:
                return ending

    def _stopped(self) -> FinishReason | None:
        """Why the run must stop now: its wall clock ran out, or the user interrupted it."""
        if self._time_up.is_set():
            return "time_limit"
        return "interrupted" if self.cancel.is_set() else None

    def _time_is_up(self) -> None:
        """The run's clock ran out: a generation or a command running now stops too."""
        self._time_up.set()
        self.cancel.set()

    def _event(self, event: Event) -> None:
        """Every event of the run goes out here; the task state follows the tool events."""
        self.state.follow(event)
        self._port.event(event)

    def _add(self, message: Message) -> None:
        self.messages.append(message)
        self._chars_since_count += len(message.content) + len(message.reasoning or "")
        self._event(MessageAdded(message=message.to_openai()))

    def _approve(self, request: ApprovalRequested) -> ApprovalAnswer | None:
        """The port's reply, waited for; None when the run was interrupted meanwhile."""
        reply = self._port.approve(request)
        while not self.cancel.is_set():
            try:
                return reply.result(timeout=0.1)
            except TimeoutError:
                continue
            except CancelledError:  # the frontend went away with the question open
                return ApprovalAnswer("deny", "Nobody answered.")
        reply.cancel()
        return None

    def _step(self, step: int, tracker: BudgetTracker) -> Ending | None:
        started = time.monotonic()
        self._fit_context(tracker=tracker)
        self._event(StepStarted(step=step, max_steps=tracker.budgets.max_steps))
        reply = self._generate(step, tracker)
        tracker.add_tokens(reply.completion_tokens)
        out_of_tokens = reply.cut and tracker.out_of_tokens  # the budget ran out mid-step
        calls = [] if reply.cancelled or out_of_tokens else reply.calls
        tool_calls = [ToolCall(id=c.id, name=c.name, arguments=c.raw_arguments) for c in calls]
        self._add(
            Message(
                role="assistant",
                content=reply.content,
                reasoning=reply.reasoning,
                tool_calls=tool_calls,
            )
        )
        tools_started = time.monotonic()
        outcomes: list[ToolOutcome] = []
        if calls:
            self._checkpoint(step, before=True)
            runner = ToolRunner(
                self.tools, self.sandbox, self._event, self._approve, self.cancel, self.policy
            )
            outcomes = runner.run(step, calls)
        tools_seconds = time.monotonic() - tools_started
        seen = self._loop_guard.judge(step, reply.reasoning, reply.calls, outcomes)
        if seen is not None:
            self._event(seen)
        if calls and reply.dropped:  # the others ran; the model hears about the rest
            problem = reply.problem() or ""
            self._event(ReplyProblem(step=step, problem=problem, retrying=False))
            outcomes[-1] = replace(outcomes[-1], text=f"{outcomes[-1].text}\n\n[ponder: {problem}]")
        for call, outcome in zip(calls, outcomes, strict=True):
            self._add(
                Message(role="tool", content=outcome.text, tool_call_id=call.id, name=call.name)
            )
        if calls:
            self._checkpoint(step, before=False)
        self._event(
            StepFinished(
                step=step,
                elapsed_s=time.monotonic() - started,
                model_s=reply.seconds,
                tools_s=tools_seconds,
            )
        )
        stopped = self._stopped()
        if reply.cancelled or stopped is not None:
            return Ending(stopped or "interrupted", reply.content)
        if out_of_tokens:  # what the model had written of its answer is kept
            return Ending("token_budget", reply.content)
        if not calls:
            return self._answer_or_retry(step, reply)
        self._unusable_replies = 0
        if seen is not None and seen.action == "stop":
            return Ending("loop")
        submitted = next((o for o in outcomes if o.ends_run), None)
        return Ending("submitted", submitted.text) if submitted is not None else None

    def _answer_or_retry(self, step: int, reply: Reply) -> Ending | None:
        """A reply without calls is the answer, unless it is none: then the model is told why
        and asked again, until :data:`UNUSABLE_REPLIES` such replies in a row end the run."""
        problem = reply.problem()
        if problem is None:
            return Ending("answered", reply.content)
        self._unusable_replies += 1
        retrying = self._unusable_replies < UNUSABLE_REPLIES
        self._event(ReplyProblem(step=step, problem=problem, retrying=retrying))
        if not retrying:
            error = f"the model gave no usable reply {UNUSABLE_REPLIES} times in a row ({problem})"
            return Ending("error", error=error)
        self._add(
            Message(
                role="user",
                content=f"[ponder: {problem}. Go on with the task: call a tool (ids are "
                "functions.NAME:N), or give your final answer.]",
            )
        )
        return None

    def _capped(self, tracker: BudgetTracker | None) -> GenerationSettings:
        """The user's sampling, with a step's caps (every generation of the run gets them)."""
        generation = self.settings.generation
        cap = (
            tracker.tokens_left(generation.max_new_tokens) if tracker else generation.max_new_tokens
        )
        reasoning = self.settings.budgets.max_reasoning_tokens
        return replace(generation, max_reasoning_tokens=reasoning, max_new_tokens=cap)

    def _generate(self, step: int, tracker: BudgetTracker) -> Reply:
        settings = self._capped(tracker)
        deltas = self.backend.stream(self.messages, self.schemas, settings, self.cancel)
        reply = read_reply(deltas, step, self._event, self.backend.context_size)
        if reply.usage is not None:
            self._usage.add(reply.usage)
            self._prompt_tokens = reply.usage.prompt_tokens + reply.usage.completion_tokens
            self._chars_since_count = 0
        return reply

    def _checkpoint(self, step: int, before: bool = False, settle: bool = False) -> None:
        """Before a step's tools run, note the workspace (storing what background jobs changed
        since the last step); after, store what the step changed; as the run ends (``settle``),
        store what its background jobs changed since."""
        if self.checkpoints is None:
            return
        try:
            if settle:
                checkpoint = self.checkpoints.settle()
            elif before:
                checkpoint = self.checkpoints.before_step()
            else:
                checkpoint = self.checkpoints.checkpoint(f"step {step}")
        except CheckpointError as error:  # the safety net failed; the work itself did not
            self.checkpoints = None
            self._event(CheckpointsOff(reason=str(error)))
            return
        if checkpoint is not None:
            self._event(checkpoint.event(step))

    def _fit_context(self, force: bool = False, tracker: BudgetTracker | None = None) -> int:
        size = self.backend.context_size
        if not size and not force:
            return 0
        if self._prompt_tokens is not None and size and not force:
            # From the last step's usage and what was added since: count exactly only when near.
            estimate = self._prompt_tokens + self._chars_since_count // 3
            if estimate < size * self.settings.budgets.context_threshold * 0.9:
                return 0
        done_list = self._context.fit(
            self.messages,
            self.schemas,
            self.backend,
            self.state,
            self._capped(tracker),
            self.cancel,
            force,
        )
        for done in done_list:
            self._prompt_tokens = done.tokens_after
            self._chars_since_count = 0
            if done.usage is not None:
                self._usage.add(done.usage)
                if tracker is not None:
                    tracker.add_tokens(done.usage.completion_tokens)
            self._event(
                ContextCompacted(
                    kind="summary" if done.kind == "summary" else "hide_outputs",
                    tokens_before=done.tokens_before,
                    tokens_after=done.tokens_after,
                    messages=[m.to_openai() for m in self.messages],
                )
            )
        return len(done_list)
