"""The Textual app: a streaming transcript of the run, a status line, and a prompt.

The agent runs in a worker thread and hands its events over through a queue; the UI drains it
about 30 times a second, so a fast model costs one repaint per frame, not one per token.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Static

from ponder.app.tui.blocks import (
    AnswerBlock,
    ApprovalCard,
    DiffBlock,
    ReasoningBlock,
    ToolCard,
    UserBlock,
)
from ponder.app.tui.themes import load_themes
from ponder.runtime.approvals import ApprovalAnswer, ApprovalRequest
from ponder.runtime.events import (
    ContentText,
    Emit,
    Event,
    FileEdited,
    ReasoningText,
    RunFinished,
    RunStarted,
    StepStarted,
    ToolCallFinished,
    ToolCallStarted,
    ToolOutput,
)

RunTask = Callable[[str, Emit], RunFinished]
Command = Callable[[], str]
"""A slash command: runs on the UI thread and returns what to show."""
FRAME_S = 1 / 30


class PonderApp(App[RunFinished | None]):
    """Runs tasks with ``run_task`` and shows their events.

    With ``task`` set the app starts on it at once; with ``interactive`` off there is no prompt
    (the demo) and ``q`` quits once the run is over.
    """

    CSS_PATH = "ponder.tcss"
    TITLE = "ponder"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit"),
        Binding("q", "quit_if_idle", show=False),
        Binding("escape", "interrupt", "Interrupt", priority=True),
    ]

    def __init__(
        self,
        run_task: RunTask,
        *,
        model: str,
        interrupt: Callable[[], None] | None = None,
        task: str | None = None,
        interactive: bool = True,
        theme: str = "ponder-dark",
        user_themes: Path | None = None,
        commands: dict[str, Command] | None = None,
    ) -> None:
        super().__init__()
        self._run_task = run_task
        self._interrupt = interrupt
        self._commands = commands or {}
        self._model = model
        self._first_task = task
        self._interactive = interactive
        self._theme_name = theme
        self._user_themes = user_themes
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._task_running = False
        self._last: RunFinished | None = None
        self._reasoning: ReasoningBlock | None = None
        self._answer: AnswerBlock | None = None
        self._cards: dict[str, ToolCard] = {}
        self._status = {"model": model, "step": "", "sandbox": "", "state": "ready"}

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="transcript")
        if self._interactive:
            yield Input(placeholder="Ask ponder to do something…", id="prompt")
        yield Static(id="status")

    def on_mount(self) -> None:
        for theme in load_themes(self._user_themes):
            self.register_theme(theme)
        self.theme = (
            self._theme_name if self._theme_name in self.available_themes else "ponder-dark"
        )
        self.query_one("#transcript", VerticalScroll).anchor()
        self.set_interval(FRAME_S, self._drain)
        self._show_status()
        if self._first_task:
            self._start(self._first_task)

    def on_input_submitted(self, message: Input.Submitted) -> None:
        task = message.value.strip()
        if not task or self._task_running:
            return
        message.input.value = ""
        if task.startswith("/"):
            self._command(task)
        else:
            self._start(task)

    def _command(self, text: str) -> None:
        name = text[1:].split()[0] if len(text) > 1 else ""
        if name == "quit":
            self.exit(self._last)
            return
        command = self._commands.get(name)
        if command is None:
            known = ", ".join(f"/{n}" for n in [*self._commands, "quit"])
            self._mount(Static(f"unknown command {text}; commands: {known}", classes="error"))
            return
        try:
            shown = command()
        except Exception as error:  # a command's failure is shown, not fatal
            shown = f"/{name} failed: {error}"
        self._mount(Static(Text(shown), classes="note"))

    def action_interrupt(self) -> None:
        if self._task_running and self._interrupt is not None:
            self._interrupt()
            self._status["state"] = "interrupting"
            self._show_status()

    def ask_approval(self, request: ApprovalRequest) -> ApprovalAnswer:
        """Called from the agent's thread: show the request and wait for the person's answer."""
        answered = threading.Event()
        result: list[ApprovalAnswer] = []

        def respond(answer: ApprovalAnswer) -> None:
            result.append(answer)
            answered.set()

        self.call_from_thread(self._mount, ApprovalCard(request, respond))
        answered.wait()
        return result[0]

    def _start(self, task: str) -> None:
        self._task_running = True
        self._mount(UserBlock(task))
        self._status["state"] = "running"
        self._show_status()

        def work() -> None:
            try:
                self._run_task(task, self._events.put)
            except Exception as error:  # a bug must not leave the UI waiting forever
                message = f"{type(error).__name__}: {error}"
                self._events.put(RunFinished(reason="error", answer="", steps=0, error=message))

        self.run_worker(work, thread=True, group="agent", exit_on_error=False)

    def action_quit_if_idle(self) -> None:
        if not self._interactive and not self._task_running:
            self.exit(self._last)

    def _mount(self, widget: Widget) -> None:
        self.query_one("#transcript", VerticalScroll).mount(widget)

    def _drain(self) -> None:
        """Apply what arrived since the last frame, merging runs of streamed text."""
        batch: list[Event] = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            last = batch[-1] if batch else None
            if isinstance(event, ReasoningText | ContentText) and type(last) is type(event):
                assert isinstance(last, ReasoningText | ContentText)
                batch[-1] = last.model_copy(update={"text": last.text + event.text})
            else:
                batch.append(event)
        for event in batch:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._status["sandbox"] = event.sandbox
        elif isinstance(event, StepStarted):
            self._reasoning = self._answer = None
            self._status["step"] = f"step {event.step}/{event.max_steps}"
        elif isinstance(event, ReasoningText):
            if self._reasoning is None:
                self._reasoning = ReasoningBlock()
                self._mount(self._reasoning)
            self._reasoning.add_text(event.text)
        elif isinstance(event, ContentText):
            if self._answer is None:
                self._answer = AnswerBlock()
                self._mount(self._answer)
            self._answer.add_text(event.text)
        elif isinstance(event, ToolCallStarted):
            card = self._cards[event.call_id] = ToolCard(event)
            self._mount(card)
        elif isinstance(event, ToolOutput):
            self._cards[event.call_id].write(event.text)
        elif isinstance(event, ToolCallFinished):
            self._cards[event.call_id].finish(event)
        elif isinstance(event, FileEdited):
            self._mount(DiffBlock(event.path, event.diff))
        elif isinstance(event, RunFinished):
            self._finished(event)
        self._show_status()

    def _finished(self, event: RunFinished) -> None:
        self._task_running = False
        self._last = event
        state = {
            "answered": "done",
            "submitted": "submitted",
            "max_steps": "step limit",
            "token_budget": "token budget used up",
            "time_limit": "time limit",
            "loop": "stopped: repeating itself",
            "interrupted": "interrupted",
        }
        self._status["state"] = state.get(event.reason, "error")
        if event.reason == "error":
            self._mount(Static(f"error: {event.error}", classes="error"))
        if not self._interactive:
            self._status["state"] += " · press q to quit"

    def _show_status(self) -> None:
        parts = [self._status[key] for key in ("model", "step", "sandbox", "state")]
        self.query_one("#status", Static).update(" · ".join(p for p in parts if p))
