"""Choosing how a session is shown and how its questions are answered.

The TUI needs a terminal on both ends; anything else gets line mode. Each frontend is the run's
port (:mod:`ponder.runtime.port`): it shows the events and answers approvals, through the person
in front of it or, without one (a pipe, CI), the configured policy. Interrupting a run (Esc in
the TUI, Ctrl-C in line mode) stops it and keeps the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, TextIO

from rich.console import Console
from rich.text import Text

from ponder.app.completion import history_file, workspace_files
from ponder.app.config import Config, config_dir
from ponder.app.frontends.line import LinePort, LinePrinter
from ponder.app.frontends.terminal_input import Typed, enter_as_newline, typed_ahead
from ponder.app.slash_commands import SLOW, TASK_COMMANDS
from ponder.runtime.approvals import Decision
from ponder.runtime.events import RunFinished
from ponder.sandbox.safe_text import safe_name

if TYPE_CHECKING:  # Textual takes a quarter of a second to import; headless runs skip it
    from ponder.app.frontends.tui.app import Command, PonderApp, RunTask

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


def run_tui(
    run_task: RunTask,
    *,
    interrupt: Callable[[], None],
    model: str,
    first_task: str | None,
    interactive: bool = True,
    theme: str | None = None,
    commands: dict[str, Command] | None = None,
    workspace: Path | None = None,
    inline: bool = False,
    sandbox: str = "",
    history: tuple[str, list[str]] | None = None,
) -> RunFinished | None:
    """The TUI; ``theme`` None is the one last chosen with /theme."""
    from ponder.app.frontends.tui.app import PonderApp
    from ponder.app.frontends.tui.themes import remember_theme, remembered_theme

    keys = "Esc interrupts · Ctrl+Q quits"
    welcome = _welcome(model, sandbox, workspace, keys)

    typed = typed_ahead() if interactive else Typed([], "")
    queued = typed.lines
    if first_task is None and queued:
        first_task, *queued = queued
    app = PonderApp(
        run_task,
        interrupt=interrupt,
        model=model,
        task=first_task,
        queued=queued,
        draft=typed.rest,
        interactive=interactive,
        theme=theme or remembered_theme() or "ponder-dark",
        user_themes=config_dir() / "themes",
        welcome=welcome,
        on_theme=remember_theme,
        earlier=history,
        commands=commands,
        slow_commands=SLOW,
        files=(lambda: workspace_files(workspace)) if workspace else list,
        history=history_file(),
    )
    with enter_as_newline(False), _forgiving_stderr():  # Enter typed meanwhile stays Enter
        finished, left = asyncio.run(_run_until_told_to_stop(app, inline))
    if left:  # unwind every `with` block (the sandbox goes) and exit as the signal asked
        raise SystemExit(128 + left)
    if inline:  # the inline frame is cleared; the whole transcript goes to the scrollback
        print(app.final_transcript)
    return finished


class _Forgiving:
    """A stream whose writes fail quietly once the terminal is gone."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError):
            return self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def _forgiving_stderr() -> Iterator[None]:
    """Textual draws on ``sys.__stderr__`` from a writer thread. On a terminal that hung up
    a write fails (EIO), the thread ends, and Textual's shutdown then waits forever to queue
    its last write (Textual 8.2): ponder never exited. Output to a closed terminal has nowhere
    to go, so here it is dropped."""
    real = sys.__stderr__
    if real is None:
        yield
        return
    sys.__stderr__ = _Forgiving(real)  # type: ignore[misc, assignment]
    try:
        yield
    finally:
        sys.__stderr__ = real  # type: ignore[misc]


def _welcome(model: str, sandbox: str, workspace: Path | None, keys: str) -> str:
    """What an interactive session opens with: where it works, and its main keys."""
    where = f" · {safe_name(str(workspace))}" if workspace else ""
    return (
        f"ponder · {model}{' · ' + sandbox if sandbox else ''}{where}\n"
        f"Enter sends · Ctrl+J new line · Tab completes · @file attaches · {keys} · "
        "/help lists commands and keys"
    )


async def _run_until_told_to_stop(app: PonderApp, inline: bool) -> tuple[RunFinished | None, int]:
    """``app`` until it ends, or until SIGHUP (the terminal closed, the ssh link dropped) or
    SIGTERM: then the run is stopped and the app left, the way quitting does. (A Python signal
    handler raising SystemExit does not get through Textual's loop; the app went on running,
    and on a hung-up terminal its input thread spun on end-of-file.)"""
    loop = asyncio.get_running_loop()
    left = 0

    def leave(signum: int) -> None:
        nonlocal left
        left = signum
        app.exit()

    stops = {signum: signal.getsignal(signum) for signum in (signal.SIGHUP, signal.SIGTERM)}
    for signum in stops:
        loop.add_signal_handler(signum, leave, signum)
    try:
        return await app.run_async(inline=inline), left
    finally:
        for signum, before in stops.items():
            loop.remove_signal_handler(signum)
            signal.signal(signum, before)


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
) -> RunFinished | None:
    """One task when given one (a one-liner), else a prompt loop until end of input.
    Approvals are asked at the terminal, or answered ``unattended`` without one; a resumed
    session's ``history`` (its note and conversation so far) is printed first, dimmed; a
    person at a terminal is greeted as in the TUI (``model``, ``sandbox``)."""
    # Into a pipe or a file, lines stay whole: whatever reads them does its own wrapping.
    console = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
    port = LinePort(LinePrinter(console), console, None if sys.stdin.isatty() else unattended)
    if history is not None:
        console.print(Text(history[0], style="bold"))
        for line in history[1][-12:]:
            console.print(Text(line, style="dim"))

    def one(task: str) -> RunFinished:
        with ctrl_c_interrupts(interrupt), enter_as_newline(False):
            return run_task(task, port)

    if first_task is not None:
        return one(first_task)
    from ponder.app.frontends.line_prompt import LinePrompt  # prompt-toolkit: only here

    prompt = LinePrompt(commands or {}, workspace)
    if sys.stdin.isatty() and model:
        keys = "Ctrl+C interrupts · Ctrl+D quits"
        console.print(Text(_welcome(model, sandbox, workspace, keys), style="dim"))
    typed = typed_ahead()  # what was typed while ponder started: sent, or left in the prompt
    waiting, draft = typed.lines, typed.rest
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
            last = one(TASK_COMMANDS[text.strip()[1:]])
        elif text.startswith("/"):
            if prompt.command(text, console) == "quit":
                return None if sys.stdin.isatty() else last
        elif text:
            last = one(text)
