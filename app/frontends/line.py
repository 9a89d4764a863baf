"""Line mode: events printed as they happen, for plain terminals, pipes and logs.

Reasoning is dimmed, tool calls get a one-line header and their live output, edits print as
diffs. Colour and styles drop away by themselves when the output is not a terminal.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

from ponder.app.frontends.terminal_input import QueuedLines, enter_as_newline
from ponder.app.wording.events import (
    STOPPED,
    counted,
    describe_ending,
    describe_note,
    plan_lines,
    shown_as_call,
)
from ponder.app.wording.for_display import for_display
from ponder.runtime.approvals import ApprovalAnswer, Decision
from ponder.runtime.events import (
    ApprovalRequested,
    ContentText,
    Event,
    FileEdited,
    PlanUpdated,
    ReasoningText,
    RunFinished,
    RunStarted,
    StepStarted,
    ToolCallFinished,
    ToolCallStarted,
    ToolOutput,
)
from ponder.runtime.port import answered, policy_answer

RESULT_PREVIEW_LINES = 12


class LinePrinter:
    """Prints events to ``console``; call it with each event in order. Without
    ``interactive`` (``-p -v``, ``exec -v``, heavy mode), no note points at a slash command."""

    def __init__(self, console: Console, interactive: bool = True) -> None:
        self.console = console
        self.interactive = interactive
        self._streaming: str | None = None
        self._output_open = False

    def _end_stream(self) -> None:
        if self._streaming is not None or self._output_open:
            self.console.print()
        self._streaming = None
        self._output_open = False

    def _stream(self, kind: str, text: str, style: str) -> None:
        if self._streaming != kind:
            self._end_stream()
            if kind == "reasoning":
                self.console.print(Text("thinking: ", style="dim bold"), end="")
            self._streaming = kind
        self.console.print(Text(text, style=style), end="", soft_wrap=True)

    def __call__(self, event: Event) -> None:
        event = for_display(event)
        out = self.console
        if isinstance(event, RunStarted):
            out.print(Text(f"ponder · {event.model} · {event.sandbox}", style="bold"))
            if event.context_size and (event.context_source or "").startswith("assumed"):
                said = f"context {event.context_size:,} tokens ({event.context_source})"
                out.print(Text(said, style="yellow"))
            first, _, more = event.task.partition("\n")  # piped input can be a whole log
            extra = f"  (+ {counted(more.count(chr(10)) + 1, 'more line')})" if more else ""
            out.print(Text(f"task: {first}{extra}"))
        elif isinstance(event, StepStarted):
            self._end_stream()
            out.rule(Text(f"step {event.step}", style="dim"), style="dim")
        elif isinstance(event, ReasoningText):
            self._stream("reasoning", event.text, "dim italic")
        elif isinstance(event, ContentText):
            self._stream("content", event.text, "")
        elif isinstance(event, ToolCallStarted) and shown_as_call(event):
            self._end_stream()
            out.print(
                Text("▶ ", style="bold cyan")
                + Text(f"{event.name} ", style="bold")
                + Text(event.summary.replace("\n", "\n  "))  # no line of it starts as ours
            )
        elif isinstance(event, ToolOutput):
            out.print(Text(event.text, style="dim"), end="", soft_wrap=True)
            self._output_open = not event.text.endswith("\n")
        elif isinstance(event, FileEdited):
            self._end_stream()
            from rich.syntax import Syntax  # pygments: only runs that edit pay for it

            out.print(Syntax(event.diff.rstrip("\n"), "diff", theme="ansi_dark", word_wrap=True))
        elif isinstance(event, ToolCallFinished):
            if shown_as_call(event) or not event.ok:
                self._print_finished(event)
        elif isinstance(event, PlanUpdated):
            self._end_stream()
            out.print(
                Text("plan" + (f": {event.explanation}" if event.explanation else ""), "bold")
            )
            for line, item in zip(plan_lines(event), event.plan, strict=True):
                style = (
                    "dim"
                    if item.status == "completed"
                    else "bold"
                    if item.status == "in_progress"
                    else ""
                )
                out.print(Text(f"  {line}", style=style))
        elif isinstance(event, RunFinished):
            self._end_stream()
            self._print_run_finished(event)
        elif (note := describe_note(event, self.interactive)) is not None:
            self._note(note)

    def _note(self, text: str) -> None:
        self._end_stream()
        self.console.print(Text(f"· {text}", style="yellow"))

    def _print_finished(self, event: ToolCallFinished) -> None:
        self._end_stream()
        mark, style = ("✓", "green") if event.ok else ("✗", "red")
        detail = describe_ending(event) or event.name
        self.console.print(Text(f"{mark} {detail} · {event.elapsed_s:.1f}s", style=style))
        if event.notice:
            self.console.print(Text(f"  {event.notice}", style="yellow"))
        if event.exit_code is None and event.kind != "submit" and event.for_person:
            # Indented under its call: no line of a result (which can hold a file name with a
            # newline, or anything a file holds) can pass for one of ponder's own.
            lines = event.for_person.rstrip("\n").split("\n")
            shown = lines[:RESULT_PREVIEW_LINES]
            if len(lines) > RESULT_PREVIEW_LINES:
                shown.append(f"… {len(lines) - RESULT_PREVIEW_LINES} more lines")
            self.console.print(Text("\n".join(f"  {line}" for line in shown), style="dim"))

    def _print_run_finished(self, event: RunFinished) -> None:
        if event.reason == "error":
            self.console.print(Text(f"error: {event.error}", style="bold red"))
        elif event.reason == "max_steps":
            self.console.print(
                Text(f"stopped: reached {counted(event.steps, 'step')}", style="yellow")
            )
        elif event.reason in STOPPED:
            self.console.print(Text(f"stopped: {STOPPED[event.reason]}", style="yellow"))
        elif event.reason == "submitted":
            self.console.print(Text(f"submitted: {event.answer}", style="bold green"))


def ask_in_line_mode(
    console: Console, request: ApprovalRequested, typing: QueuedLines | None = None
) -> ApprovalAnswer:
    """Ask at the terminal: [y]es once, [a]lways for the prefix, [n]o, or no with a message.
    Lines typed while the task runs are not read meanwhile (``typing``): the answer is this."""
    request = for_display(request)
    with typing.paused() if typing else contextlib.nullcontext(), enter_as_newline(True):
        console.print(
            Text(f"? {request.name} needs approval: {request.reason}", style="bold yellow")
        )
        console.print(Text(request.summary))
        return _answer(request)


def _answer(request: ApprovalRequested) -> ApprovalAnswer:
    choices = f"[y]es / [a]lways allow `{request.prefix}` / [n]o / [m]essage: "
    while True:
        try:
            given = input(choices).strip()
        except EOFError:
            return ApprovalAnswer("deny", "No answer (end of input).")
        answer = given.lower()
        if answer in ("y", "yes"):
            return ApprovalAnswer("once")
        if answer in ("a", "always"):
            return ApprovalAnswer("always")
        if answer in ("n", "no"):
            return ApprovalAnswer("deny")
        word, _, said = given.partition(" ")
        if word.lower() in ("m", "message") and said.strip():  # the message on the same line
            return ApprovalAnswer("deny", said.strip())
        if answer in ("m", "message"):
            try:
                return ApprovalAnswer("deny", input("message to the model: ").strip() or None)
            except EOFError:
                return ApprovalAnswer("deny")
        print("answer y, a, n, or m and the message for the model")


@dataclass(frozen=True)
class LinePort:
    """Line mode as a run's port: events printed, approvals asked at the terminal (or answered
    with ``unattended`` when there is no person to ask)."""

    printer: LinePrinter
    console: Console
    unattended: Decision | None
    typing: QueuedLines | None = None
    """What is typed while a task runs (an interactive prompt loop)."""

    def event(self, event: Event) -> None:
        self.printer(event)

    def approve(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        if self.unattended is not None:
            return answered(policy_answer(self.unattended))
        return answered(ask_in_line_mode(self.console, request, self.typing))
