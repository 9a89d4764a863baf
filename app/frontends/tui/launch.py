"""Running the TUI: from the keys typed while ponder started to the terminal's hang-up.

Only an interactive session imports this (and Textual with it); one-liners and headless runs
never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from ponder.app.completion import history_file, workspace_files
from ponder.app.config import config_dir
from ponder.app.frontends.choose import welcome
from ponder.app.frontends.terminal_input import Typed, enter_as_newline, typed_ahead
from ponder.app.frontends.tui.app import Command, PonderApp, RunTask
from ponder.app.frontends.tui.themes import remember_theme, remembered_theme
from ponder.app.sandboxes import warn
from ponder.app.slash_commands import SLOW
from ponder.runtime.events import RunFinished


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
    notes: Sequence[str] = (),
) -> RunFinished | None:
    """The TUI; ``theme`` None is the one last chosen with /theme; the sandbox's ``notes``
    follow the greeting (a session that greets nobody, the demo, prints them first)."""
    keys = "Esc interrupts · Ctrl+Q quits"
    if not interactive:
        warn(notes)

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
        welcome=[welcome(model, sandbox, workspace, keys), *(f"warning: {n}" for n in notes)],
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
