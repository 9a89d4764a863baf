"""The Textual app: a streaming transcript of the run, a status line, and a prompt.

The agent runs in a worker thread and hands its events over through a queue; the UI drains it
about 30 times a second and merges runs of streamed text, so a fast model costs one repaint per
frame, not one per token. How events become blocks is the :class:`Transcript`'s business.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from ponder.app.frontends.tui.blocks import DiffBlock, FoldedBlock, TextBlock
from ponder.app.frontends.tui.cards import ApprovalCard
from ponder.app.frontends.tui.plan import PlanPanel
from ponder.app.frontends.tui.prompt import PromptArea
from ponder.app.frontends.tui.status import Status, StatusLine
from ponder.app.frontends.tui.themes import load_themes
from ponder.app.frontends.tui.transcript import Transcript
from ponder.app.slash_commands import ARGUMENTS, HELP, TASK_COMMANDS, TUI_KEYS, help_text
from ponder.app.wording.events import describe_run_end
from ponder.app.wording.for_display import for_display
from ponder.runtime.approvals import ApprovalAnswer
from ponder.runtime.events import (
    ApprovalRequested,
    ContentText,
    Event,
    ReasoningText,
    RunFinished,
)
from ponder.runtime.port import RunPort
from ponder.sandbox.safe_text import safe_text

RunTask = Callable[[str, RunPort], RunFinished]
Command = Callable[[str], str]
"""A slash command: takes the text after its name, returns what to show."""
FRAME_S = 1 / 30
BUILT_IN = ("help", "theme", "clear", "quit")


class PonderApp(App[RunFinished | None]):
    """Runs tasks with ``run_task`` and shows their events.

    With ``task`` set the app starts on it at once; with ``interactive`` off there is no prompt
    (the demo) and ``q`` quits once the run is over.
    """

    CSS_PATH = Path(__file__).parent / "ponder.tcss"  # absolute, so subclasses find it too
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
        queued: list[str] | None = None,
        draft: str = "",
        interactive: bool = True,
        theme: str = "ponder-dark",
        user_themes: Path | None = None,
        commands: dict[str, Command] | None = None,
        slow_commands: frozenset[str] = frozenset(),
        files: Callable[[], list[str]] = list,
        history: Path | None = None,
        welcome: Sequence[str] = (),
        on_theme: Callable[[str], None] = lambda name: None,
        earlier: tuple[str, list[str]] | None = None,
    ) -> None:
        """``welcome`` is shown when an interactive session opens (a greeting, then warnings);
        ``on_theme`` is told the theme the person switches to (to remember it); ``earlier`` is
        a resumed session's note and its conversation so far, shown folded; ``queued`` and
        ``draft`` are messages and text typed before the app was up."""
        super().__init__()
        self._earlier = earlier
        self.final_transcript = ""
        """The transcript as plain text, kept when the app exits."""
        self._welcome = welcome
        self._on_theme = on_theme
        self._run_task = run_task
        self._interrupt = interrupt
        self._commands = commands or {}
        self._slow = slow_commands
        self._files = files
        self._history = history
        self._first_task = task
        self._interactive = interactive
        self._theme_name = theme
        self._user_themes = user_themes
        self._events: queue.SimpleQueue[Event | _Note | ApprovalCard] = queue.SimpleQueue()
        self._task_running = False
        self._last: RunFinished | None = None
        self._frame = 0
        self._waiting: list[Future[ApprovalAnswer]] = []
        self._queued: list[str] = queued or []
        """Messages typed while a task ran, to send when it ends."""
        self._draft = draft
        self.status = Status(model=model)

    def compose(self) -> ComposeResult:
        yield Transcript()
        yield PlanPanel(id="plan")
        if self._interactive:
            yield Static(id="hint")
            yield Static(id="queue")
            yield PromptArea(self._history, self.command_names, self._files, self._arguments)
        yield StatusLine(self.status, id="status")

    def on_mount(self) -> None:
        self._transcript = self.query_one(Transcript)
        self._plan = self.query_one(PlanPanel)
        themes, problems = load_themes(self._user_themes)
        for theme in themes:
            self.register_theme(theme)
        for problem in problems:
            self._note(problem, error=True)
        self.theme = (
            self._theme_name if self._theme_name in self.available_themes else "ponder-dark"
        )
        self._transcript.anchor()
        self._status_line = self.query_one(StatusLine)
        self.set_interval(FRAME_S, self._drain)
        self.set_interval(0.1, self._spin)
        self._show_status()
        if self._interactive:
            self.query_one(PromptArea).focus().insert(self._draft)
            self._show_queue()
            for number, text in enumerate(self._welcome):
                self._note(text, error=number > 0)
        if self._earlier is not None:
            note, lines = self._earlier
            title = f"{note} · {len(lines)} earlier lines (Tab, then Enter, opens them)"
            self._transcript.add(FoldedBlock(title, "\n".join(lines)))
        if self._first_task:
            self._start(self._first_task)

    # --- input

    def exit(self, *args: Any, **kwargs: Any) -> None:
        self.final_transcript = self._transcript.plain_text()  # the widgets go with the app
        super().exit(*args, **kwargs)

    def _arguments(self) -> dict[str, list[str]]:
        themes = sorted(self.available_themes, key=lambda n: (not n.startswith("ponder"), n))
        model = [self.status.model, *ARGUMENTS["model"]]
        return {**ARGUMENTS, "theme": themes, "model": model}

    def command_names(self) -> list[str]:
        built_in = (*BUILT_IN, *TASK_COMMANDS)
        return [name for name in HELP if name in self._commands or name in built_in]

    def on_prompt_area_submitted(self, message: PromptArea.Submitted) -> None:
        if message.text.startswith("/"):
            self._command(message.text)
        elif self._task_running:  # kept, and sent when the task ends
            self._queued.append(message.text)
            self._show_queue()
        else:
            self._start(message.text)

    def _show_queue(self) -> None:
        queue = self.query_one("#queue", Static)
        lines = [f"queued: {' '.join(text.split())[:100]}" for text in self._queued]
        queue.update(Content("\n".join(lines) + "\n(sent when this task ends; Esc keeps them)"))
        queue.display = bool(self._queued)

    def _send_queued(self, interrupted: bool) -> None:
        """The messages typed while the task ran: the next task, or back in the prompt for
        editing when the person stopped the task."""
        text, self._queued = "\n\n".join(self._queued), []
        self._show_queue()
        if interrupted:
            prompt = self.query_one(PromptArea)
            prompt.load_text(text + ("\n" + prompt.text if prompt.text else ""))
        else:
            self._start(text)

    def on_prompt_area_completions(self, message: PromptArea.Completions) -> None:
        hint = self.query_one("#hint", Static)
        hint.update(Content("  ".join(message.options[:40])))
        hint.display = bool(message.options)

    def _command(self, text: str) -> None:
        name, _, argument = text[1:].partition(" ")
        if name == "quit":
            self.exit(self._last)
        elif name == "help":
            self._note(help_text(self.command_names(), TUI_KEYS))
        elif name == "theme":
            self._switch_theme(argument.strip())
        elif name not in self._commands and name not in TASK_COMMANDS:
            self._note(f"unknown command /{name}; /help lists them", error=True)
        elif self._task_running and name != "diff":
            self.notify(f"/{name} waits until the task is done (Esc interrupts it)")
        elif name in TASK_COMMANDS:
            self._start(TASK_COMMANDS[name])
        else:
            if name == "clear":
                self._transcript.remove_children()
            self._run_command(name, argument)

    def _run_command(self, name: str, argument: str) -> None:
        command = self._commands[name]

        def run(pending: Widget | None = None) -> None:
            try:
                shown, failed = command(argument), False
            except Exception as error:  # a command's failure is shown, not fatal
                shown, failed = f"/{name} failed: {error}", True
            self._events.put(_Note(shown, failed, pending))

        if name in self._slow:
            pending = self._note(f"/{name}…")
            self.run_worker(lambda: run(pending), thread=True, group="command", exit_on_error=False)
        else:
            run()

    def _switch_theme(self, name: str) -> None:
        names = sorted(self.available_themes, key=lambda n: (not n.startswith("ponder"), n))
        if not name:
            self._note(f"theme: {self.theme}\nthemes: {', '.join(names)}")
        elif name in self.available_themes:
            self.theme = name
            self._on_theme(name)
            self._note(f"theme: {name} (remembered)")
        else:
            self._note(f"no theme {name}; themes: {', '.join(names)}", error=True)

    def action_interrupt(self) -> None:
        if self._task_running and self._interrupt is not None:
            self._interrupt()
            self.status.state = "interrupting"
            self._show_status()

    def action_quit_if_idle(self) -> None:
        if not self._interactive and not self._task_running:
            self.exit(self._last)

    # --- the run's port: events come in through the queue, approvals leave as cards

    def _ask(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        """Called from the agent's thread: a card the person answers; the reply is the future."""
        reply: Future[ApprovalAnswer] = Future()
        if not self.is_running:
            reply.set_result(ApprovalAnswer("deny", "The user left ponder."))
            return reply
        self._waiting.append(reply)
        reply.add_done_callback(self._waiting.remove)
        # Through the event queue, so the card comes after everything the run showed before.
        self._events.put(ApprovalCard(for_display(request), reply, self._answered))
        return reply

    def _answered(self) -> None:
        if self._interactive and self.is_running:
            self.query_one(PromptArea).focus()

    def on_unmount(self) -> None:
        """Leaving while the agent works: stop it, so its thread ends and ponder can exit."""
        if self._task_running and self._interrupt is not None:
            self._interrupt()
        for reply in list(self._waiting):
            if not reply.done():
                reply.set_result(ApprovalAnswer("deny", "The user left ponder."))

    # --- running a task

    def _start(self, task: str) -> None:
        self._task_running = True
        self._transcript.add(TextBlock(safe_text(task), classes="user"))
        self.status.state = "starting"
        self._show_status()

        def work() -> None:
            try:
                self._run_task(task, _Port(self))
            except Exception as error:  # a bug must not leave the UI waiting forever
                message = f"{type(error).__name__}: {error}"
                self._events.put(RunFinished(reason="error", answer="", steps=0, error=message))

        self.run_worker(work, thread=True, group="agent", exit_on_error=False)

    def _note(self, text: str, error: bool = False) -> TextBlock:
        return self._transcript.note(text, error)

    @property
    def _shutting_down(self) -> bool:
        """The app is shutting down: its widgets are being removed, children before parents,
        while the frame timers may still fire."""
        return not self.is_running or not self._status_line.is_attached

    def _drain(self) -> None:
        """Apply what arrived since the last frame, merging runs of streamed text."""
        if self._shutting_down:
            return
        batch: list[Event | _Note | ApprovalCard] = []
        texts: list[str] = []  # the run of streamed text at the end of ``batch``
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if isinstance(event, ReasoningText | ContentText) and type(event) is type(
                batch[-1] if batch else None
            ):
                texts.append(event.text)
                continue
            self._merge(batch, texts)
            batch.append(event)
            texts = [event.text] if isinstance(event, ReasoningText | ContentText) else []
        self._merge(batch, texts)
        for item in batch:
            self._take(item)
        if batch:
            self._show_status()

    @staticmethod
    def _merge(batch: list[Event | _Note | ApprovalCard], texts: list[str]) -> None:
        if len(texts) > 1:
            last = batch[-1]
            assert isinstance(last, ReasoningText | ContentText)
            batch[-1] = type(last)(step=last.step, text="".join(texts))

    def _take(self, item: Event | _Note | ApprovalCard) -> None:
        if isinstance(item, _Note):
            if item.replaces is not None and item.replaces.is_attached:
                item.replaces.remove()
            if item.text.startswith("diff --git") and not item.failed:  # /diff, coloured
                diff = DiffBlock("everything this session changed", safe_text(item.text))
                self._transcript.add(diff)
            else:
                self._note(item.text, item.failed)
        elif isinstance(item, ApprovalCard):
            self._transcript.ask(item)
        else:
            item = for_display(item)
            self.status.apply(item)
            self._plan.apply(item)
            if isinstance(item, RunFinished):
                self._finished(item)
            else:
                self._transcript.apply(item)

    def _finished(self, event: RunFinished) -> None:
        self._transcript.run_ended()
        self._task_running = False
        self._last = event
        self._note(describe_run_end(event), error=event.reason == "error")  # in the transcript
        if not self._interactive:
            self.status.state += " · press q to quit"
        elif self._queued:
            self._send_queued(interrupted=event.reason == "interrupted")

    def _spin(self) -> None:
        if self._shutting_down:  # a card whose title is already gone must not be spun
            return
        self._frame += 1
        self._transcript.spin(self._frame)

    def _show_status(self) -> None:
        self._status_line.refresh()


@dataclass(frozen=True)
class _Note:
    """A slash command's result, handed to the UI thread through the event queue; it takes
    the place of ``replaces`` (the "/name…" shown while a slow command ran)."""

    text: str
    failed: bool
    replaces: Widget | None = None


@dataclass(frozen=True)
class _Port:
    """The TUI as a run's port: events are shown at the next frame (merged with their
    neighbours), approvals become cards whose keys complete the reply."""

    app: PonderApp

    def event(self, event: Event) -> None:
        self.app._events.put(event)

    def approve(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        return self.app._ask(request)
