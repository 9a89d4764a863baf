"""Running one step's tool calls: approval first, then the tool, every result in call order.

Consecutive calls of tools that declare themselves ``parallel`` (``view``), and that the
approval policy allows without asking, compute together in a pool; everything else runs one at a
time. Every event of a call leaves from the run's thread, in call order: a pooled call's events
are held until the calls before it have sent theirs (the run's port promises that, and the task
state and the session file have one writer). A call the model got wrong (unparseable arguments,
an unknown tool, bad parameters) is answered with an error for the model, never raised. After an
interrupt, the remaining calls are answered "not run".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ponder.model.deltas import ParsedToolCall
from ponder.runtime.approvals import ApprovalAnswer, ApprovalPolicy, Verdict
from ponder.runtime.events import (
    ApprovalRequested,
    ApprovalResolved,
    Emit,
    Event,
    ToolCallFinished,
    ToolCallStarted,
)
from ponder.runtime.port import NOBODY
from ponder.runtime.tool_events import describe_arguments
from ponder.runtime.tools.base import Tool, ToolContext, ToolInputError, ToolOutcome
from ponder.sandbox.base import Sandbox

INTERRUPTED = "[not run: the user interrupted]"
RAW_SHOWN = 2000
"""Most of a call's unusable arguments quoted back to the model."""
POOL_SIZE = 4


Ask = Callable[[ApprovalRequested], ApprovalAnswer | None]
"""Gets the run's answer to an approval request; None when the run was interrupted meanwhile."""


class ToolRunner:
    def __init__(
        self,
        tools: dict[str, Tool],
        sandbox: Sandbox,
        emit: Emit,
        ask: Ask,
        cancel: threading.Event,
        policy: ApprovalPolicy | None,
    ) -> None:
        self.tools = tools
        self.sandbox = sandbox
        self.emit = emit
        self.ask = ask
        self.cancel = cancel
        self.policy = policy

    def run(self, step: int, calls: list[ParsedToolCall]) -> list[ToolOutcome]:
        outcomes: list[ToolOutcome] = []
        batch: list[ParsedToolCall] = []

        def flush() -> None:
            if len(batch) == 1:
                outcomes.append(self._call(step, batch[0], self.emit))
            elif batch:
                outcomes.extend(self._together(step, batch))
            batch.clear()

        for call in calls:
            if self._may_pool(call):
                batch.append(call)
                continue
            flush()
            outcomes.append(self._call(step, call, self.emit))
        flush()
        return outcomes

    def _together(self, step: int, calls: list[ParsedToolCall]) -> list[ToolOutcome]:
        """Calls computed in the pool; their events sent from here, one call after another."""
        held: list[tuple[list[Event], Future[ToolOutcome]]] = []
        outcomes = []
        with ThreadPoolExecutor(max_workers=min(POOL_SIZE, len(calls))) as pool:
            for call in calls:
                events: list[Event] = []
                held.append((events, pool.submit(self._call, step, call, events.append)))
            for events, future in held:
                outcome = future.result()  # the call's events are all in once it has ended
                for event in events:
                    self.emit(event)
                outcomes.append(outcome)
        return outcomes

    def _may_pool(self, call: ParsedToolCall) -> bool:
        tool = self.tools.get(call.name)
        if tool is None or not tool.parallel or call.error is not None or call.arguments is None:
            return False
        return self._verdict(tool, call.name, call.arguments).action == "allow"

    def _verdict(self, tool: Tool, name: str, arguments: dict[str, object]) -> Verdict:
        if self.policy is None:
            return Verdict("allow")
        command = tool.preview(arguments, self.sandbox).text if tool.kind == "execute" else ""
        return self.policy.check(tool.kind, name, command)

    def _call(self, step: int, call: ParsedToolCall, emit: Emit) -> ToolOutcome:
        tool = self.tools.get(call.name)
        if call.arguments is None:
            summary = "(unreadable arguments)"
        elif tool is not None:
            summary = tool.summary(call.arguments)
        else:
            summary = describe_arguments(call.arguments)
        kind = tool.kind if tool is not None else None
        emit(
            ToolCallStarted(
                step=step,
                call_id=call.id,
                name=call.name,
                kind=kind,
                summary=summary,
                arguments=call.arguments,
                raw_arguments=call.raw_arguments,
            )
        )
        started = time.monotonic()
        outcome, waited_s = self._outcome(step, call, tool, emit)
        emit(
            ToolCallFinished(
                call_id=call.id,
                name=call.name,
                kind=kind,
                ok=outcome.ok,
                result=outcome.text,
                shown=outcome.shown,
                exit_code=outcome.exit_code,
                timed_out=outcome.timed_out,
                interrupted=outcome.interrupted,
                notice=outcome.notice,
                elapsed_s=time.monotonic() - started - waited_s,
            )
        )
        return outcome

    def _outcome(
        self, step: int, call: ParsedToolCall, tool: Tool | None, emit: Emit
    ) -> tuple[ToolOutcome, float]:
        """The call's outcome, and how long it waited for a person (left out of its time)."""
        if self.cancel.is_set():
            return ToolOutcome(INTERRUPTED, ok=False, interrupted=True), 0.0
        if call.error is not None or call.arguments is None:
            raw = call.raw_arguments
            shown = (
                raw if len(raw) <= RAW_SHOWN else f"{raw[:RAW_SHOWN]}… ({len(raw):,} characters)"
            )
            return ToolOutcome(
                f"Error: the call to `{call.name}` was not run: {call.error}. "
                f"Raw arguments: {shown!r}",
                ok=False,
            ), 0.0
        if tool is None:
            known = ", ".join(self.tools)
            return ToolOutcome(f"Error: no tool named `{call.name}`; tools: {known}", ok=False), 0.0
        asked = time.monotonic()
        refusal = self._approve(call, tool, call.arguments, emit)
        waited_s = time.monotonic() - asked
        if refusal is not None:
            return refusal, waited_s
        context = ToolContext(
            sandbox=self.sandbox, emit=emit, call_id=call.id, step=step, cancel=self.cancel
        )
        try:
            return tool.run(call.arguments, context), waited_s
        except ToolInputError as error:
            return ToolOutcome(f"Error: {error}", ok=False), waited_s

    def _approve(
        self, call: ParsedToolCall, tool: Tool, arguments: dict[str, object], emit: Emit
    ) -> ToolOutcome | None:
        """None when the call may run; otherwise the refusal the model is shown. Only calls
        that run alone get here asking (pooled calls were allowed outright)."""
        verdict = self._verdict(tool, call.name, arguments)
        if verdict.action == "allow" or self.policy is None:
            return None
        if verdict.action == "deny":
            return ToolOutcome(f"Denied by a rule: {verdict.reason}", ok=False)
        preview = tool.preview(arguments, self.sandbox)
        request = ApprovalRequested(
            call_id=call.id,
            name=call.name,
            kind=tool.kind,
            summary=preview.text,
            texts=preview.texts,
            reason=verdict.reason,
            prefix=verdict.prefix,
        )
        emit(request)
        answer = self.ask(request)
        if answer is None:  # interrupted while it waited
            return ToolOutcome(INTERRUPTED, ok=False, interrupted=True)
        emit(
            ApprovalResolved(
                call_id=call.id, decision=answer.decision, message=answer.message, by=answer.by
            )
        )
        if answer.decision == "always" and verdict.prefix:
            self.policy.allow.append(verdict.prefix)
        if answer.decision == "deny" and answer.by == "policy":  # nobody was asked
            return ToolOutcome(f"Not allowed. {answer.message or NOBODY}", ok=False)
        if answer.decision == "deny":
            said = f" Their message: {answer.message}" if answer.message else ""
            return ToolOutcome(f"The user did not allow this action.{said}", ok=False)
        return None
