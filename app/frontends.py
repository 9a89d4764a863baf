"""Choosing how a run is shown: the Textual TUI on a terminal, line mode everywhere else."""

from __future__ import annotations

import sys
from typing import Literal

from rich.console import Console

from ponder.app.config import config_dir
from ponder.app.line import LinePrinter
from ponder.app.tui.app import PonderApp
from ponder.model.backend import ChatBackend
from ponder.runtime.events import Emit, RunFinished
from ponder.runtime.loop import Agent, AgentSettings
from ponder.sandbox.base import Sandbox

Frontend = Literal["tui", "line"]


def pick_frontend(plain: bool) -> Frontend:
    """The TUI needs a terminal on both ends; anything else gets line mode."""
    if plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
        return "line"
    return "tui"


def run_session(
    frontend: Frontend,
    backend: ChatBackend,
    sandbox: Sandbox,
    first_task: str | None,
    *,
    settings: AgentSettings,
    interactive: bool = True,
    theme: str = "ponder-dark",
) -> RunFinished | None:
    """One conversation: ``first_task`` if given, then, when interactive, what the user asks.

    Line mode with a first task runs just that task (a one-liner). Returns how the last task
    ended, or None when none ran.
    """
    agent = Agent(backend, sandbox, lambda event: None, settings=settings)
    if frontend == "tui":

        def run_task(text: str, emit: Emit) -> RunFinished:
            agent.emit = emit
            return agent.run(text)

        app = PonderApp(
            run_task,
            model=backend.name,
            task=first_task,
            interactive=interactive,
            theme=theme,
            user_themes=config_dir() / "themes",
        )
        return app.run()
    agent.emit = LinePrinter(Console(highlight=False))
    if first_task is not None:
        return agent.run(first_task)
    from prompt_toolkit import PromptSession

    session: PromptSession[str] = PromptSession()
    last: RunFinished | None = None
    while True:
        try:
            task = session.prompt("› ").strip()
        except EOFError:
            return last
        if task:
            last = agent.run(task)
