"""Running one step's tool calls: approval first, then the tool, every result in call order.

Consecutive read-only calls (``view``) run together; everything else runs one at a time. A
call the model got wrong (unparseable arguments, an unknown tool, bad parameters) is answered
with an error for the model, never raised. After an interrupt, the remaining calls are
answered "not run".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ponder.model.deltas import ParsedToolCall
from ponder.runtime.approvals import (
    MCP_PREFIX,
    READ_ONLY_TOOLS,
    ApprovalAnswer,
    ApprovalPolicy,
)
from ponder.runtime.events import (
    ApprovalRequested,
    ApprovalResolved,
    Emit,
    ToolCallFinished,
    ToolCallStarted,
)
from ponder.runtime.port import NOBODY
from ponder.runtime.tools.base import Tool, ToolContext, ToolInputError, ToolOutcome
from ponder.sandbox.base import Sandbox
from ponder.sandbox.safe_text import safe_name

INTERRUPTED = "[not run: the user interrupted]"
RAW_SHOWN = 2000
"""Most of a call's unusable arguments quoted back to the model."""


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
        self._waits = threading.local()
        """``waited_s``: how long this thread's call waited for its answer (the person's time,
        left out of the call's elapsed time); read-only calls run in threads of their own."""

    def run(self, step: int, calls: list[ParsedToolCall]) -> list[ToolOutcome]:
        outcomes: dict[int, ToolOutcome] = {}
        batch: list[tuple[int, ParsedToolCall]] = []

        def flush() -> None:
            if len(batch) == 1:
                outcomes[batch[0][0]] = self._call(step, batch[0][1])
            elif batch:
                with ThreadPoolExecutor(max_workers=min(4, len(batch))) as pool:
                    done = pool.map(lambda item: self._call(step, item[1]), batch)
                    outcomes.update(zip((i for i, _ in batch), done, strict=True))
            batch.clear()

        for position, call in enumerate(calls):
            if call.name in READ_ONLY_TOOLS and call.name != "submit" and call.error is None:
                batch.append((position, call))
                continue
            flush()
            outcomes[position] = self._call(step, call)
        flush()
        return [outcomes[i] for i in range(len(calls))]

    def _call(self, step: int, call: ParsedToolCall) -> ToolOutcome:
        self.emit(
            ToolCallStarted(
                step=step,
                call_id=call.id,
                name=call.name,
                arguments=call.arguments,
                raw_arguments=call.raw_arguments,
            )
        )
        started = time.monotonic()
        self._waits.waited_s = 0.0
        outcome = self._outcome(step, call)
        self.emit(
            ToolCallFinished(
                call_id=call.id,
                name=call.name,
                ok=outcome.ok,
                result=outcome.text,
                exit_code=outcome.exit_code,
                timed_out=outcome.timed_out,
                interrupted=outcome.interrupted,
                notice=outcome.notice,
                elapsed_s=time.monotonic() - started - self._waits.waited_s,
            )
        )
        return outcome

    def _outcome(self, step: int, call: ParsedToolCall) -> ToolOutcome:
        if self.cancel.is_set():
            return ToolOutcome(INTERRUPTED, ok=False, interrupted=True)
        if call.error is not None or call.arguments is None:
            raw = call.raw_arguments
            shown = (
                raw if len(raw) <= RAW_SHOWN else f"{raw[:RAW_SHOWN]}… ({len(raw):,} characters)"
            )
            return ToolOutcome(
                f"Error: the call to `{call.name}` was not run: {call.error}. "
                f"Raw arguments: {shown!r}",
                ok=False,
            )
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(self.tools)
            return ToolOutcome(f"Error: no tool named `{call.name}`; tools: {known}", ok=False)
        refusal = self._approve(call)
        if refusal is not None:
            return refusal
        context = ToolContext(
            sandbox=self.sandbox, emit=self.emit, call_id=call.id, step=step, cancel=self.cancel
        )
        try:
            return tool.run(call.arguments, context)
        except ToolInputError as error:
            return ToolOutcome(f"Error: {error}", ok=False)

    def _approve(self, call: ParsedToolCall) -> ToolOutcome | None:
        """None when the call may run; otherwise the refusal the model is shown."""
        if self.policy is None or call.arguments is None:
            return None
        verdict = self.policy.check(call.name, call.arguments)
        if verdict.action == "allow":
            return None
        if verdict.action == "deny":
            return ToolOutcome(f"Denied by a rule: {verdict.reason}", ok=False)
        request = ApprovalRequested(
            call_id=call.id,
            name=call.name,
            summary=_summary(call),
            reason=verdict.reason,
            prefix=verdict.prefix,
        )
        self.emit(request)
        asked = time.monotonic()
        answer = self.ask(request)
        self._waits.waited_s = time.monotonic() - asked
        if answer is None:  # interrupted while it waited
            return ToolOutcome(INTERRUPTED, ok=False, interrupted=True)
        self.emit(
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


def _summary(call: ParsedToolCall) -> str:
    """What a person is asked about. The path goes in on one line (its first line names the
    file), so a name with a newline cannot pass its second half off as the file's text."""
    arguments = call.arguments or {}
    if call.name == "bash":
        return str(arguments.get("command", ""))
    path = safe_name(str(arguments.get("path", "")))

    def details(key: str) -> str:
        return str(arguments.get(key, ""))[:2000]

    if call.name.startswith(MCP_PREFIX):
        return f"{call.name} {json.dumps(arguments, ensure_ascii=False)[:2000]}"
    if call.name == "str_replace":
        return f"{path}\n--- replace\n{details('old_str')}\n+++ with\n{details('new_str')}"
    if call.name == "create_file":
        return f"{path} (new file)\n{details('file_text')}"
    if call.name == "insert":
        return f"{path} after line {arguments.get('insert_line')}\n{details('new_str')}"
    return f"{call.name} {path}".strip()
