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


def run_with_frontend(
    frontend: Frontend,
    backend: ChatBackend,
    sandbox: Sandbox,
    task: str,
    *,
    max_steps: int,
    theme: str = "ponder-dark",
) -> RunFinished:
    settings = AgentSettings(max_steps=max_steps)
    if frontend == "line":
        printer = LinePrinter(Console(highlight=False))
        return Agent(backend, sandbox, printer, settings=settings).run(task)

    def run_task(text: str, emit: Emit) -> RunFinished:
        return Agent(backend, sandbox, emit, settings=settings).run(text)

    app = PonderApp(
        run_task,
        model=backend.name,
        task=task,
        interactive=False,
        theme=theme,
        user_themes=config_dir() / "themes",
    )
    result = app.run()
    if result is None:
        return RunFinished(reason="error", answer="", steps=0, error="the run was interrupted")
    return result


def run_session(
    frontend: Frontend,
    backend: ChatBackend,
    sandbox: Sandbox,
    first_task: str | None,
    *,
    max_steps: int,
    theme: str = "ponder-dark",
) -> RunFinished | None:
    """An interactive session: one conversation, as many tasks as the user gives."""
    settings = AgentSettings(max_steps=max_steps)
    if frontend == "tui":
        agent = Agent(backend, sandbox, lambda event: None, settings=settings)

        def run_task(text: str, emit: Emit) -> RunFinished:
            agent.emit = emit
            return agent.run(text)

        app = PonderApp(
            run_task,
            model=backend.name,
            task=first_task,
            theme=theme,
            user_themes=config_dir() / "themes",
        )
        return app.run()
    agent = Agent(backend, sandbox, LinePrinter(Console(highlight=False)), settings=settings)
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
