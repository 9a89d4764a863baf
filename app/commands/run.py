"""``ponder [PROMPT]``: run tasks in a session (TUI, line mode or headless), or heavy mode."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from ponder.app.config import NO_MODEL_HELP, Config, config_dir, config_file, load_config
from ponder.app.exit_codes import UsageError, exit_code
from ponder.app.frontends.choose import pick_frontend, run_line, unattended_decision
from ponder.app.frontends.headless import read_piped_input, run_unattended, with_piped_input
from ponder.app.frontends.line import LinePrinter
from ponder.app.frontends.output_schema import load_schema
from ponder.app.models import open_model
from ponder.app.sandboxes import copy_sandboxes
from ponder.app.session import agent_settings, checkpoint_store, history_lines, open_session
from ponder.app.slash_commands import SessionCommands
from ponder.app.wording.changes import OUTSIDE_HEADING, changes_block
from ponder.model.backend import ChatBackend
from ponder.runtime.checkpoint_store import CheckpointError, apply_patch
from ponder.runtime.checkpoints import Checkpoints
from ponder.runtime.events import Event, PathChange, RunStarted
from ponder.runtime.heavy import HeavyResult, run_heavy
from ponder.runtime.sessions import SessionRecorder, sessions_dir
from ponder.sandbox.safe_text import safe_text

Flags = Callable[[argparse.Namespace], dict[str, Any]]


def _setup(args: argparse.Namespace, flags: Flags) -> tuple[Config, Path]:
    config = load_config(flags(args))
    if not config.session.model:
        raise UsageError(NO_MODEL_HELP.format(config=config_file()))
    workspace = args.workspace.resolve()
    if not workspace.is_dir():
        raise UsageError(f"workspace {args.workspace} is not a directory")
    return config, workspace


def run_exec(args: argparse.Namespace, flags: Flags) -> int:
    """``ponder exec``: stdin is the task when the prompt is ``-``, and is read for nothing else."""
    config, workspace = _setup(args, flags)
    schema = load_schema(args.output_schema) if args.output_schema else None
    task = sys.stdin.read() if args.prompt == "-" else args.prompt
    return run_unattended(
        config,
        workspace,
        task,
        json_events=args.json,
        verbose=args.verbose,
        last_message=args.output_last_message,
        resume=args.resume,
        summary=not args.json,  # with --json the events carry it
        output_schema=schema,
    )


def known_theme(name: str) -> None:
    """UsageError for a theme that is nowhere (one whose file is broken gets a note instead)."""
    from ponder.app.frontends.tui.themes import load_themes

    user_dir = config_dir() / "themes"
    themes, _ = load_themes(user_dir)
    names = sorted(t.name for t in themes)
    if name not in names and not (user_dir / f"{name}.toml").exists():
        raise UsageError(f"no theme {name!r}; themes: {', '.join(names)} (and files in {user_dir})")


def run_tasks(args: argparse.Namespace, flags: Flags) -> int:
    config, workspace = _setup(args, flags)
    if args.heavy:
        return _heavy(args, config, workspace)
    if args.print:
        task = with_piped_input(args.prompt or "", read_piped_input())
        return run_unattended(config, workspace, task, verbose=args.verbose, resume=args.resume)
    frontend = pick_frontend(args.plain)
    if frontend == "tui" and config.session.theme is not None:
        known_theme(config.session.theme)
    with open_session(config, workspace, resume=args.resume) as session:
        commands = SessionCommands(session).commands
        history = None
        if session.resumed is not None:
            history = (session.resumed, history_lines(session.messages))
        if frontend == "line":
            finished = run_line(
                session.run,
                interrupt=session.interrupt,
                unattended=unattended_decision(config),
                first_task=args.prompt,
                commands=commands,
                workspace=workspace,
                history=history,
                model=session.model.name,
                sandbox=session.sandbox_description,
                notes=session.sandbox_notes,
            )
        else:
            from ponder.app.frontends.tui.launch import run_tui  # Textual: only the TUI pays

            finished = run_tui(
                session.run,
                interrupt=session.interrupt,
                model=session.model.name,
                first_task=args.prompt,
                theme=config.session.theme,
                sandbox=session.sandbox_description,
                notes=session.sandbox_notes,
                history=history,
                commands=commands,
                workspace=workspace,
                inline=args.inline,
            )
            finished = None  # the person ended an interactive session: that went well
    if session.tasks_run:  # after the frontend let go of the terminal
        print(f"ponder: session {session.id} · continue it with: ponder --resume {session.id}",
              file=sys.stderr)  # fmt: skip
    return exit_code(finished)


def _heavy(args: argparse.Namespace, config: Config, workspace: Path) -> int:
    if not args.prompt:
        raise UsageError("--heavy needs the task on the command line")
    assert config.session.model is not None
    remote = config.session.model.startswith("openai:")

    def new_backend() -> ChatBackend:
        assert config.session.model is not None
        return open_model(config)

    shared = new_backend()
    backends: list[ChatBackend] = [shared]

    def backend_for(number: int) -> ChatBackend:
        if not remote or number == 0:
            return shared
        backend = new_backend()
        backends.append(backend)
        return backend

    console = Console(highlight=False)
    printers: dict[int | None, LinePrinter] = {}

    def show(event: Event) -> None:
        if event.trajectory not in printers:
            printers[event.trajectory] = LinePrinter(console, interactive=False)
        printers[event.trajectory](event)

    try:
        result = run_heavy(
            args.prompt,
            args.heavy,
            backend_for=backend_for,
            sandbox_for=copy_sandboxes(config, workspace),
            emit=show,
            settings=agent_settings(config),
            concurrent=remote,
            test_command=args.test_command,
        )
    finally:
        for backend in backends:
            backend.close()
    console.print()
    if not (result.chosen and result.diff):
        print("no trajectory's changes were kept", file=sys.stderr)
        return 0
    try:
        kept = _keep(workspace, config, args.prompt, result)
    except CheckpointError as error:
        print(f"ponder: the chosen changes did not apply: {safe_text(str(error))}", file=sys.stderr)
        return 1
    print(
        f"kept the changes of trajectory {result.chosen} (session {kept.id}: `ponder diff` "
        "shows them, `ponder undo` takes them back)",
        file=sys.stderr,
    )
    block = changes_block(kept.changes, OUTSIDE_HEADING)
    if block:
        print(block, file=sys.stderr)
    return 0


@dataclass(frozen=True)
class _Kept:
    id: str
    changes: list[PathChange]


def _keep(workspace: Path, config: Config, task: str, result: HeavyResult) -> _Kept:
    """Apply the chosen trajectory's change as a checkpointed step of a session of its own, so
    that it is shown and undone like any step's."""
    recorder = SessionRecorder(
        sessions_dir(),
        {
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "workspace": str(workspace),
            "model": config.session.model or "",
        },
    )
    try:
        recorder(
            RunStarted(
                task=task,
                session_id=recorder.id,
                model=config.session.model or "",
                sandbox="docker, copy mode (heavy)",
                max_steps=config.budgets.max_steps,
                time_limit=None,
            )
        )
        with Checkpoints(workspace, recorder.id, checkpoint_store()) as checkpoints:
            checkpoints.before_step()
            apply_patch(workspace, checkpoint_store(), (result.diff or "").encode())
            step = checkpoints.checkpoint("heavy mode's chosen attempt")
        changes = step.changes if step else []
        if step is not None:
            recorder(step.event(1))
        recorder(result.finished)
    finally:
        recorder.close()
    return _Kept(recorder.id, changes)
