"""Choosing how a session is shown and how its questions are answered.

The TUI needs a terminal on both ends; anything else gets line mode. Each frontend is the run's
port (:mod:`ponder.runtime.port`): it shows the events and answers approvals, through the person
in front of it or, without one (a pipe, CI), the configured policy. Interrupting a run (Esc in
the TUI, Ctrl-C in line mode) stops it and keeps the session.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal

from rich.console import Console
from rich.text import Text

from ponder.app.config import Config
from ponder.app.frontends.line import LinePort, LinePrinter
from ponder.app.frontends.terminal_input import QueuedLines, enter_as_newline, typed_ahead
from ponder.app.sandboxes import warn
from ponder.app.slash_commands import TASK_COMMANDS
from ponder.runtime.approvals import Decision
from ponder.runtime.events import RunFinished
from ponder.sandbox.safe_text import safe_name

if TYPE_CHECKING:  # Textual takes a quarter of a second to import; headless runs skip it
    from ponder.app.frontends.tui.app import Command, RunTask

Frontend = Literal["tui", "line"]


def pick_frontend(plain: bool) -> Frontend:
    if plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return "line"
    return "tui"


def unattended_decision(config: Config) -> Decision:
    """What answers approvals when nobody can: the ``approve_unattended`` policy."""
    return "once" if config.session.approve_unattended == "allow" else "deny"


@contextmanager
def ctrl_c_interrupts(interrupt: Callable[[], None]) -> Iterator[None]:
    """While a task runs in line mode: Ctrl-C stops the task; a second Ctrl-C quits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal pressed
        pressed += 1
        if pressed > 1:
            raise KeyboardInterrupt
        print("\n[interrupting; Ctrl-C again to quit]", file=sys.stderr, flush=True)
        interrupt()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def welcome(model: str, sandbox: str, workspace: Path | None, keys: str) -> str:
    """What an interactive session opens with: where it works, and its main keys."""
    where = f" · {safe_name(str(workspace))}" if workspace else ""
    return (
        f"ponder · {model}{' · ' + sandbox if sandbox else ''}{where}\n"
        f"Enter sends · Ctrl+J new line · Tab completes · @file attaches · {keys} · "
        "/help lists commands and keys"
    )


def run_line(
    run_task: RunTask,
    *,
    interrupt: Callable[[], None],
    unattended: Decision,
    first_task: str | None,
    commands: dict[str, Command] | None = None,
    workspace: Path | None = None,
    history: tuple[str, list[str]] | None = None,
    model: str = "",
    sandbox: str = "",
    notes: Sequence[str] = (),
) -> RunFinished | None:
    """One task when given one (a one-liner), else a prompt loop until end of input.
    Approvals are asked at the terminal, or answered ``unattended`` without one; a resumed
    session's ``history`` (its note and conversation so far) is printed first, dimmed; a
    person at a terminal is greeted as in the TUI (``model``, ``sandbox``), and then told the
    sandbox's ``notes``."""
    # Into a pipe or a file, lines stay whole: whatever reads them does its own wrapping.
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    typing = QueuedLines(lambda line: console.print(Text(f"queued: {line}", style="dim")))
    port = LinePort(
        LinePrinter(console), console, None if sys.stdin.isatty() else unattended, typing
    )
    if history is not None:
        console.print(Text(history[0], style="bold"))
        for line in history[1][-12:]:
            console.print(Text(line, style="dim"))

    def one(task: str) -> RunFinished:
        with ctrl_c_interrupts(interrupt), enter_as_newline(False):
            return run_task(task, port)

    waiting: list[str] = []  # messages to send next, and the prompt's text to start with
    draft = ""

    def one_of_many(task: str) -> RunFinished:
        """A task of the prompt loop: what is typed meanwhile is shown as queued, sent next."""
        with ctrl_c_interrupts(interrupt), typing.reading():
            finished = run_task(task, port)
        nonlocal draft
        queued, typing.lines = [*typing.lines, typing.leftover()], []
        if finished.reason == "interrupted":  # stopped: what was queued comes back unsent,
            draft = "\n".join(filter(None, [*queued, draft]))  # as Esc leaves it in the TUI
        else:
            waiting.extend(queued[:-1])
            draft = queued[-1] or draft
        return finished

    greeted = first_task is None and sys.stdin.isatty() and bool(model)
    if not greeted:
        warn(notes)
    if first_task is not None:
        return one(first_task)
    from ponder.app.frontends.line_prompt import LinePrompt  # prompt-toolkit: only here

    prompt = LinePrompt(commands or {}, workspace)
    if greeted:
        keys = "Ctrl+C interrupts · Ctrl+D quits"
        console.print(Text(welcome(model, sandbox, workspace, keys), style="dim"))
        for note in notes:
            console.print(Text(f"warning: {note}", style="yellow"))
    typed = typed_ahead()  # what was typed while ponder started: sent, or left in the prompt
    waiting[:], draft = typed.lines, typed.rest
    last: RunFinished | None = None
    # Someone at a terminal who ends the session ends it well (exit 0); tasks piped in are a
    # script, whose exit code follows its last task.
    while True:
        try:
            if waiting:
                text = prompt.read(typed=waiting.pop(0))
            else:
                text, draft = prompt.read(draft=draft), ""
        except EOFError:
            return None if sys.stdin.isatty() else last
        except KeyboardInterrupt:  # Ctrl-C at the prompt clears the line, like a shell
            continue
        if text.strip()[1:] in TASK_COMMANDS:
            last = one_of_many(TASK_COMMANDS[text.strip()[1:]])
        elif text.startswith("/"):
            if prompt.command(text, console) == "quit":
                return None if sys.stdin.isatty() else last
        elif text:
            last = one_of_many(text)
        if typing.ended and not waiting:  # Ctrl+D typed during the task
            return None
