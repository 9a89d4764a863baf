"""A stand-in for the agent when testing the TUI: it emits given events, then waits.

The TUI only sees events and approval requests, so a fixed list of events exercises it exactly
as a run would, without a model or a sandbox (those are tested on their own).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ponder.runtime.approvals import ApprovalAnswer
from ponder.runtime.events import (
    ApprovalRequested,
    ContentText,
    Event,
    FileEdited,
    ReasoningText,
    RunFinished,
    RunStarted,
    StepStarted,
    ToolCallFinished,
    ToolCallStarted,
    ToolOutput,
    UsageReported,
)
from ponder.runtime.port import RunPort

DIFF = (
    "--- a/stats.py\n+++ b/stats.py\n@@ -11,3 +11,3 @@\n     if len(ordered) % 2 == 0:\n"
    "-        return ordered[middle]\n+        return (ordered[middle - 1] + ordered[middle]) / 2\n"
    "     return ordered[middle]\n"
)


def started(max_steps: int = 300) -> list[Event]:
    return [
        RunStarted(
            task="fix the median",
            model="scripted:test",
            sandbox="docker, bind mode, network off",
            max_steps=max_steps,
            max_tokens=50_000,
        )
    ]


def reasoning(step: int, text: str) -> list[Event]:
    return [StepStarted(step=step, max_steps=300), ReasoningText(step=step, text=text)]


def usage(step: int) -> Event:
    return UsageReported(
        step=step,
        prompt_tokens=48_000,
        cached_tokens=47_000,
        completion_tokens=900,
        prefill_tokens_per_s=410.0,
        decode_tokens_per_s=14.2,
        context_size=131_072,
    )


def command(step: int, n: int, line: str, code: int | None) -> list[Event]:
    """A bash call printing ``line``; finished with ``code`` unless it is None (still running)."""
    call = f"functions.bash:{n}"
    events: list[Event] = [
        ToolCallStarted(
            step=step,
            call_id=call,
            name="bash",
            arguments={"command": "python3 -m pytest -q"},
            raw_arguments="{}",
        ),
        ToolOutput(call_id=call, text=line),
    ]
    if code is not None:
        events.append(
            ToolCallFinished(
                call_id=call,
                name="bash",
                ok=code == 0,
                result=line,
                exit_code=code,
                elapsed_s=1.25,
            )
        )
    return events


def edit(step: int, n: int) -> list[Event]:
    call = f"functions.str_replace:{n}"
    return [
        ToolCallStarted(
            step=step,
            call_id=call,
            name="str_replace",
            arguments={"path": "stats.py"},
            raw_arguments="{}",
        ),
        FileEdited(call_id=call, path="stats.py", diff=DIFF),
        ToolCallFinished(call_id=call, name="str_replace", ok=True, result="ok", elapsed_s=0.1),
    ]


def answer(step: int, text: str) -> list[Event]:
    return [
        StepStarted(step=step, max_steps=300),
        ContentText(step=step, text=text),
        RunFinished(reason="answered", answer=text, steps=step),
    ]


class FakeRun:
    """``run_task`` for PonderApp: emits ``events``, asks ``approval`` if given, then waits until
    :meth:`release` (or an interrupt) before finishing."""

    def __init__(
        self, events: Sequence[Event], approval: ApprovalRequested | None = None, hold: bool = True
    ) -> None:
        self.events = list(events)
        self.approval = approval
        self.answers: list[ApprovalAnswer] = []
        self.tasks: list[str] = []
        self.interrupted = threading.Event()
        self._released = threading.Event()
        if not hold:
            self._released.set()

    def release(self) -> None:
        self._released.set()

    def interrupt(self) -> None:
        self.interrupted.set()
        self._released.set()

    def __call__(self, task: str, port: RunPort) -> RunFinished:
        self.tasks.append(task)
        for event in self.events:
            port.event(event)
        if self.approval is not None:
            self.answers.append(port.approve(self.approval).result(60))
        if self.events and isinstance(self.events[-1], RunFinished):
            return self.events[-1]
        self._released.wait(60)
        reason = "interrupted" if self.interrupted.is_set() else "answered"
        finished = RunFinished(reason=reason, answer="", steps=1)
        port.event(finished)
        return finished
