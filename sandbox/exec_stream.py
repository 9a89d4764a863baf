"""Reading a command's output until it has ended, for every sandbox backend.

The runner script (:func:`~ponder.sandbox.scripts.runner`) writes the command's output on its
stdout, ending with the command's own :func:`~ponder.sandbox.scripts.end_marker`, and its exit
marker on its stderr. Once both are in, the command has ended, whatever background jobs still hold
the streams; the reader waits :data:`QUIET_AFTER_EXIT_S` more for the streams to close and leaves. A
backend only says how chunks arrive: a :class:`Transport` (Docker's multiplexed socket, two pipes of
a local process).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ponder.sandbox.base import Halt
from ponder.sandbox.scripts import ExitReport, OutputEnd, end_marker, token_line

STDOUT, STDERR = 1, 2
BACKGROUND_GRACE_S = 1.0
"""How long the streams may stay open after the command ended (a background job holding them)."""
QUIET_AFTER_EXIT_S = 0.1
"""Once the command ended, this long without data means the rest is not ours to wait for.

(Docker itself can delay the end of every exec's stream by a second or two while a background
process holds an earlier exec's output, so waiting for the end of the stream is not enough.)"""


class Transport(Protocol):
    def receive(self, timeout: float) -> list[tuple[int, bytes]] | None:
        """What arrived within ``timeout`` seconds, as (:data:`STDOUT` or :data:`STDERR`, data)
        pieces in order; an empty list when nothing did; None once both streams are closed."""
        ...

    def send_last(self, data: bytes) -> None:
        """Write ``data`` to the process's stdin, then close it."""
        ...


@dataclass
class ExecRead:
    """How the reading of one command ended."""

    report: ExitReport = field(default_factory=ExitReport)
    """The runner's exit marker, when it came (exit code, what it left running)."""
    closed: bool = False
    """Both streams reached their end."""
    deadline_passed: bool = False
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class RawExec:
    """What running the runner gave, before it is judged (:mod:`ponder.sandbox.command_runs`)."""

    exit_code: int
    """-1 when the command's end was not seen (cancelled, or its deadline passed)."""
    deadline_passed: bool
    """The host-side deadline passed before the command ended."""
    cancelled: bool = False
    """The caller's cancel event stopped the reading; the command is still to be swept."""
    runaways: bool = False
    """The command left so many processes behind (a fork bomb) that the runner killed its
    process group, or the reaper killed a bomb since the last command; the caller sweeps."""
    reaper_running: bool = True
    """The runner found the sandbox's reaper running (the model can kill it; it is restarted)."""

    @classmethod
    def of(cls, read: ExecRead, exit_code: Callable[[], int]) -> RawExec:
        """The outcome of ``read``; ``exit_code`` asks the process's own code when the streams
        closed without the runner's exit marker (a script of ponder's, not a runner)."""
        report = read.report
        if read.cancelled:
            return cls(exit_code=-1, deadline_passed=False, cancelled=True)
        if report.exit_code is not None:
            return cls(
                report.exit_code,
                deadline_passed=False,
                runaways=report.killed_runaways,
                reaper_running=report.reaper_running,
            )
        if not read.closed:
            return cls(exit_code=-1, deadline_passed=True)
        return cls(exit_code=exit_code(), deadline_passed=False)


def read_exec(
    transport: Transport,
    deadline: float,
    on_output: Callable[[bytes], None],
    cancel: Halt | None = None,
    token: str | None = None,
) -> ExecRead:
    """Read until the command has ended (or ``deadline``, a ``time.monotonic()`` value, passes,
    or ``cancel`` is set); output bytes go to ``on_output``. A runner's ``token`` is sent it
    once its exit marker came, and its end marker (:func:`~ponder.sandbox.scripts.end_marker`)
    is left out of the output (None: a script of ponder's, read until its streams close)."""
    result = ExecRead()
    output = OutputEnd(on_output, end_marker(token) if token is not None else None)
    sent = token is None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result.deadline_passed = result.report.exit_code is None
                return result
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                return result
            ended = result.report.exit_code is not None and output.seen
            pieces = transport.receive(min(remaining, QUIET_AFTER_EXIT_S if ended else 0.2))
            if pieces is None:
                result.closed = True
                return result
            if not pieces and ended:
                return result
            for stream, data in pieces:
                if stream == STDERR:
                    if result.report.exit_code is None:
                        result.report.feed(data)
                elif data:
                    output.feed(data)
            if not sent and result.report.exit_code is not None:
                sent = True
                with contextlib.suppress(OSError):  # a runner gone already: its output is over
                    transport.send_last(token_line(token or ""))
            if not ended and result.report.exit_code is not None and output.seen:
                deadline = min(deadline, time.monotonic() + BACKGROUND_GRACE_S)
    finally:
        output.close()
