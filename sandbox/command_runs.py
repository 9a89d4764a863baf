"""One command's run, from start to :class:`ExecResult`, the same for every backend.

A backend says how it starts the runner script and reads it (:meth:`CommandRunner._run_runner`),
how it kills what a command left behind (:meth:`CommandRunner._sweep`) and where a long output
is kept (:meth:`CommandRunner._keep_log`). What the outcome means is decided here once: when a
command timed out or was interrupted, the exit code of a stopped command, when to sweep, and
which notice the person sees.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable
from typing import Self

from ponder.sandbox import scripts
from ponder.sandbox.base import ExecResult, Halt, OutputCallback
from ponder.sandbox.disk_guard import DiskGuard, guarded
from ponder.sandbox.exec_stream import RawExec
from ponder.sandbox.output import LiveCapture

KILLED = 137
"""The exit code of a command killed by a signal 9 (the disk guard, the timeout's kill)."""
TIMEOUT_EXIT = 124
"""The exit code ``timeout`` gives a command it stopped."""
TIMEOUT_SLACK_S = 0.5
"""A command that ends with a timeout's code this close to its limit was stopped by it."""


class CommandRunner(scripts.ScriptedFiles):
    """The ``exec`` of a sandbox backend: the runner script, the disk guard, the sweep and the
    log of a long output, around the backend's own way of running a process. A sandbox is a
    context manager: started on entry, stopped on exit."""

    _disk_guard: DiskGuard | None = None
    _jobs_stopped: str | None = None
    """Set by the disk guard when it stopped background jobs between commands; the next
    command's notice says so."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @abstractmethod
    def _run_runner(
        self, command: str, timeout: float, sink: Callable[[bytes], None], exec_id: str, halt: Halt
    ) -> RawExec:
        """Run ``command`` through :func:`~ponder.sandbox.scripts.runner` (with a fresh end
        token), its output bytes to ``sink``, until it ends or ``halt`` is set."""

    @abstractmethod
    def _sweep(self, exec_id: str) -> None:
        """Kill what the command ``exec_id`` left running, daemons that left its group
        included."""

    @abstractmethod
    def _keep_log(self, exec_id: str, data: bytes) -> str:
        """Keep a command's whole output where the model can read it; the path it has there."""

    def _backend_notice(self, code: int, timed_out: bool) -> str | None:
        """What this backend alone can tell about how a command ended (out of memory, ...)."""
        return None

    def exec(
        self,
        command: str,
        timeout: float,
        on_output: OutputCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        return self._exec(command, timeout, on_output, cancel)

    def _exec(
        self,
        command: str,
        timeout: float,
        on_output: OutputCallback | None,
        cancel: threading.Event | None,
        notice: str | None = None,
    ) -> ExecResult:
        exec_id = uuid.uuid4().hex[:12]
        capture = LiveCapture(on_output)
        started = time.monotonic()
        with guarded(self._disk_guard, cancel) as (halt, stopped):
            raw = self._run_runner(command, timeout, capture.add, exec_id, halt)
        elapsed = time.monotonic() - started
        jobs_stopped, self._jobs_stopped = self._jobs_stopped, None
        interrupted = raw.cancelled and not stopped
        timed_out = not (interrupted or stopped) and (
            raw.deadline_passed
            or (raw.exit_code in (TIMEOUT_EXIT, KILLED) and elapsed >= timeout - TIMEOUT_SLACK_S)
        )
        code = KILLED if stopped else raw.exit_code
        if timed_out or raw.runaways or raw.cancelled:
            self._sweep(exec_id)
        log_path = self._keep_log(exec_id, capture.full_output()) if capture.truncated else None
        if notice is None and stopped:
            notice = stopped[0]
        if notice is None and jobs_stopped:
            notice = f"between commands, background jobs were {jobs_stopped}"
        if notice is None and raw.runaways:
            notice = scripts.RUNAWAY_NOTICE.format(n=scripts.RUNAWAY_PROCESSES)
        result = ExecResult(
            exit_code=code,
            output=capture.text(log_path),
            timed_out=timed_out,
            elapsed=elapsed,
            total_bytes=capture.total,
            truncated=capture.truncated,
            log_path=log_path,
            notice=notice or self._backend_notice(code, timed_out),
            interrupted=interrupted,
        )
        capture.close()
        return result
