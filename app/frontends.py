"""Choosing how a session is shown and how its questions are answered.

The TUI needs a terminal on both ends; anything else gets line mode. Approvals go to whichever
frontend has a person in front of it; without one (a pipe, CI) the configured policy answers.
Interrupting a run (Esc in the TUI, Ctrl-C in line mode) stops it and keeps the session.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Literal

from rich.console import Console

from ponder.app.config import Config, config_dir
from ponder.app.line import LinePrinter, ask_in_line_mode
from ponder.app.tui.app import Command, PonderApp
from ponder.runtime.approvals import ApprovalAnswer, ApprovalRequest, Approver, PolicyApprover
from ponder.runtime.events import Emit, RunFinished

Frontend = Literal["tui", "line"]
RunTask = Callable[[str, Emit], RunFinished]


def pick_frontend(plain: bool) -> Frontend:
    if plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return "line"
    return "tui"


def unattended_approver(config: Config) -> Approver:
    """Who answers when nobody can: the ``approve_unattended`` policy."""
    return PolicyApprover("once" if config.approve_unattended == "allow" else "deny")


class ApprovalBridge:
    """An approver that hands each request to the attached frontend, else to ``fallback``."""

    def __init__(self, fallback: Approver) -> None:
        self.fallback = fallback
        self.handler: Approver | None = None

    def __call__(self, request: ApprovalRequest) -> ApprovalAnswer:
        return (self.handler or self.fallback)(request)


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
    bridge: ApprovalBridge | None,
    model: str,
    first_task: str | None,
    interactive: bool = True,
    theme: str = "ponder-dark",
    commands: dict[str, Command] | None = None,
) -> RunFinished | None:
    app = PonderApp(
        run_task,
        interrupt=interrupt,
        model=model,
        task=first_task,
        interactive=interactive,
        theme=theme,
        user_themes=config_dir() / "themes",
        commands=commands,
    )
    if bridge is not None:
        bridge.handler = app.ask_approval
    return app.run()


def run_line(
    run_task: RunTask,
    *,
    interrupt: Callable[[], None],
    bridge: ApprovalBridge | None,
    first_task: str | None,
) -> RunFinished | None:
    """One task when given one (a one-liner), else a prompt loop until end of input."""
    console = Console(highlight=False)
    printer = LinePrinter(console)
    if bridge is not None and sys.stdin.isatty():
        bridge.handler = lambda request: ask_in_line_mode(console, request)

    def one(task: str) -> RunFinished:
        with ctrl_c_interrupts(interrupt):
            return run_task(task, printer)

    if first_task is not None:
        return one(first_task)
    from prompt_toolkit import PromptSession

    session: PromptSession[str] = PromptSession()
    last: RunFinished | None = None
    while True:
        try:
            task = session.prompt("› ").strip()
        except EOFError:
            return last
        if task:
            last = one(task)
