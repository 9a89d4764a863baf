"""The agent loop: generate, run the tools the model called, feed back the results, repeat.

One :class:`Agent` holds one conversation. :meth:`Agent.run` takes a task and runs until the model
answers without calling a tool, calls ``submit``, or the step limit is reached. Everything that
happens is emitted as an event; nothing the model does (bad arguments, unknown tools, failing
commands) stops the run, only backend or sandbox failures do, and those end it with a reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ponder.model.backend import BackendError, ChatBackend, GenerationSettings
from ponder.model.deltas import ContentDelta, ParsedToolCall, ReasoningDelta, ToolCallEnd, Usage
from ponder.model.messages import Message, ToolCall
from ponder.runtime.events import (
    ContentText,
    Emit,
    FinishReason,
    ReasoningText,
    RunFinished,
    RunStarted,
    StepStarted,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
)
from ponder.runtime.tools import default_tools
from ponder.runtime.tools.base import Tool, ToolContext, ToolInputError, ToolOutcome
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


@dataclass
class AgentSettings:
    max_steps: int = 300
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    system_prompt: str | None = None
    """None: :func:`system_prompt` for the sandbox's workspace."""


@dataclass
class _Step:
    reasoning: str = ""
    content: str = ""
    calls: list[ParsedToolCall] = field(default_factory=list)


class Agent:
    def __init__(
        self,
        backend: ChatBackend,
        sandbox: Sandbox,
        emit: Emit,
        *,
        tools: list[Tool] | None = None,
        settings: AgentSettings | None = None,
    ) -> None:
        self.backend = backend
        self.sandbox = sandbox
        self.emit = emit
        self.settings = settings or AgentSettings()
        self.tools = {tool.schema.name: tool for tool in (tools or default_tools())}
        prompt = self.settings.system_prompt or system_prompt(sandbox.workdir)
        self.messages: list[Message] = [Message(role="system", content=prompt)]

    def run(self, task: str) -> RunFinished:
        self.messages.append(Message(role="user", content=task))
        max_steps = self.settings.max_steps
        self.emit(
            RunStarted(
                task=task,
                model=self.backend.name,
                sandbox=self.sandbox.description,
                max_steps=max_steps,
            )
        )
        step = 0
        try:
            for step in range(1, max_steps + 1):
                self.emit(StepStarted(step=step, max_steps=max_steps))
                generated = self._generate(step)
                self.messages.append(
                    Message(
                        role="assistant",
                        content=generated.content,
                        reasoning=generated.reasoning,
                        tool_calls=[
                            ToolCall(id=c.id, name=c.name, arguments=c.raw_arguments)
                            for c in generated.calls
                        ],
                    )
                )
                if not generated.calls:
                    return self._finish("answered", generated.content, step)
                for call in generated.calls:
                    outcome = self._call_tool(step, call)
                    self.messages.append(
                        Message(
                            role="tool", content=outcome.text, tool_call_id=call.id, name=call.name
                        )
                    )
                    if outcome.ends_run:
                        return self._finish("submitted", outcome.text, step)
            return self._finish("max_steps", "", step)
        except (BackendError, SandboxError) as error:
            return self._finish("error", "", step, error=str(error))

    def _finish(
        self, reason: FinishReason, answer: str, steps: int, error: str | None = None
    ) -> RunFinished:
        finished = RunFinished(reason=reason, answer=answer, steps=steps, error=error)
        self.emit(finished)
        return finished

    def _generate(self, step: int) -> _Step:
        result = _Step()
        schemas = [tool.schema for tool in self.tools.values()]
        for delta in self.backend.stream(self.messages, schemas, self.settings.generation):
            if isinstance(delta, ReasoningDelta):
                result.reasoning += delta.text
                self.emit(ReasoningText(step=step, text=delta.text))
            elif isinstance(delta, ContentDelta):
                result.content += delta.text
                self.emit(ContentText(step=step, text=delta.text))
            elif isinstance(delta, ToolCallEnd):
                result.calls.append(delta.call)
            elif isinstance(delta, Usage):
                self.emit(
                    UsageReported(
                        step=step,
                        prompt_tokens=delta.prompt_tokens,
                        cached_tokens=delta.cached_tokens,
                        completion_tokens=delta.completion_tokens,
                        prefill_tokens_per_s=delta.prefill_tokens_per_s,
                        decode_tokens_per_s=delta.decode_tokens_per_s,
                    )
                )
        return result

    def _call_tool(self, step: int, call: ParsedToolCall) -> ToolOutcome:
        self.emit(
            ToolCallStarted(step=step, call_id=call.id, name=call.name, arguments=call.arguments)
        )
        started = time.monotonic()
        outcome = self._outcome(step, call)
        self.emit(
            ToolCallFinished(
                call_id=call.id,
                name=call.name,
                ok=outcome.ok,
                result=outcome.text,
                exit_code=outcome.exit_code,
                timed_out=outcome.timed_out,
                elapsed=time.monotonic() - started,
            )
        )
        return outcome

    def _outcome(self, step: int, call: ParsedToolCall) -> ToolOutcome:
        if call.error is not None or call.arguments is None:
            return ToolOutcome(
                text=f"Error: the call to `{call.name}` was not run: {call.error}. "
                f"Raw arguments: {call.raw_arguments!r}",
                ok=False,
            )
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(self.tools)
            return ToolOutcome(text=f"Error: no tool named `{call.name}`; tools: {known}", ok=False)
        context = ToolContext(sandbox=self.sandbox, emit=self.emit, call_id=call.id, step=step)
        try:
            return tool.run(call.arguments, context)
        except ToolInputError as error:
            return ToolOutcome(text=f"Error: {error}", ok=False)
