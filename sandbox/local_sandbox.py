"""The local backend: commands run on this machine, in the workspace itself. Nothing is isolated.

For machines without Docker, and only when chosen (``--sandbox local``). It runs the same scripts
as the Docker backend (timeouts, working directory and variables carried over, file edits
confined to the workspace by path), each command in its own process group, which is killed
whole when the command times out.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ponder.sandbox import scripts
from ponder.sandbox.base import (
    Halt,
    SandboxError,
)
from ponder.sandbox.command_runs import CommandRunner
from ponder.sandbox.disk_guard import DiskGuard, DiskLimits
from ponder.sandbox.environment import COMMAND_ENV
from ponder.sandbox.exec_stream import STDERR, STDOUT, RawExec, read_exec
from ponder.sandbox.leftovers import private_tempdir

SANDBOX_ID_VARIABLE = "PONDER_SANDBOX_ID"
WARNING = (
    "ponder is running commands directly on this machine (--sandbox local): nothing is "
    "isolated, and the model can read and change anything this user can."
)


class LocalSandbox(CommandRunner):
    def __init__(
        self,
        workspace: Path,
        environment: dict[str, str] | None = None,
        disk: DiskLimits | None = None,
    ) -> None:
        self.workspace = workspace.resolve()
        self._disk = disk
        self._disk_guard = None
        self.notes: list[str] = [WARNING]
        """What the person should know about this sandbox: that it is none."""
        self._state: Path | None = None
        self._environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **(environment or {}),
            **COMMAND_ENV,
            SANDBOX_ID_VARIABLE: uuid.uuid4().hex,
        }

    @property
    def description(self) -> str:
        return "local (no isolation)"

    @property
    def workdir(self) -> str:
        return str(self.workspace)

    def start(self) -> None:
        if not self.workspace.is_dir():
            raise SandboxError(f"workspace {self.workspace} is not a directory")
        if self._disk is not None and self._disk_guard is None:
            self._disk_guard = DiskGuard(self.workspace, self._disk, on_trip=self._stop_jobs)
        if self._state is None:
            self._state = private_tempdir("ponder-local-")
            home = self._state / "home"
            home.mkdir()
            self._environment["HOME"] = str(home)

    def stop(self) -> None:
        # What its commands started ends with the sandbox, as a container's processes do (a
        # command still running when ponder is told to stop, a job left in the background).
        self._kill_processes()
        if self._disk_guard is not None:
            self._disk_guard.close()
            self._disk_guard = None
        if self._state is not None:
            shutil.rmtree(self._state, ignore_errors=True)
            self._state = None

    def background_jobs(self) -> bool:
        """Processes on this machine that carry this sandbox's id in their environment (a
        process can drop it: without isolation, this is the best that can be told)."""
        processes = self._processes()
        return processes is None or bool(processes)

    def _processes(self) -> list[int] | None:
        """Living processes that carry this sandbox's id; None without /proc."""
        marker = f"{SANDBOX_ID_VARIABLE}={self._environment[SANDBOX_ID_VARIABLE]}".encode()
        try:
            pids = [int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit()]
        except OSError:
            return None
        found = []
        for pid in pids:
            try:
                environment = Path(f"/proc/{pid}/environ").read_bytes()
                state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b") ", 1)[-1][:1]
            except OSError:
                continue
            if state != b"Z" and marker in environment.split(b"\0"):
                found.append(pid)
        return found

    def _stop_jobs(self, reason: str) -> None:
        """The disk guard tripped: kill every process this sandbox's commands started."""
        self._jobs_stopped = reason
        self._kill_processes()

    def _kill_processes(self) -> None:
        for pid in self._processes() or []:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    @property
    def _state_dir(self) -> str:
        if self._state is None:
            raise SandboxError("the sandbox is not running")
        return str(self._state)

    def _run(
        self,
        argv: list[str],
        stdin: bytes | None,
        timeout: float,
        sink: Callable[[bytes], None],
        extra_env: dict[str, str] | None = None,
        cancel: Halt | None = None,
        token: str | None = None,
    ) -> RawExec:
        """Run ``argv`` in its own process group.

        Like the Docker backend it watches stderr for the runner's exit marker, so a background
        job holding stdout does not keep it waiting; past the deadline the group is killed.
        """
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.workspace,
            env={**self._environment, **(extra_env or {})},
            start_new_session=True,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        if stdin:
            process.stdin.write(stdin)
            process.stdin.flush()
        if token is None:  # a runner's stdin stays open for its token
            process.stdin.close()
        deadline = time.monotonic() + timeout + scripts.KILL_GRACE_S + 5
        pipes = _Pipes(process.stdin, process.stdout.fileno(), process.stderr.fileno())
        with contextlib.closing(pipes):
            read = read_exec(pipes, deadline, sink, cancel, token)
        raw = RawExec.of(read, process.wait)
        if raw.cancelled or raw.deadline_passed:
            self._kill_group(process.pid)
        process.stdout.close()
        process.stderr.close()
        process.wait()
        return raw

    @staticmethod
    def _kill_group(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    def _run_runner(
        self, command: str, timeout: float, sink: Callable[[bytes], None], exec_id: str, halt: Halt
    ) -> RawExec:
        return self._run(
            ["bash", "--noprofile", "--norc", "-c", scripts.runner(timeout, self._state_dir)],
            scripts.runner_input(scripts.command_script(command, self.workdir, self._state_dir)),
            timeout,
            sink,
            {scripts.EXEC_ID_VARIABLE: exec_id},
            halt,
            scripts.end_token(),
        )

    def _sweep(self, exec_id: str) -> None:
        argv = ["bash", "--noprofile", "--norc", "-c", scripts.sweep_script(), "sweep", exec_id]
        self._run(argv, None, 30, lambda data: None)

    def _keep_log(self, exec_id: str, data: bytes) -> str:
        path = Path(self._state_dir) / f"{exec_id}.log"
        path.write_bytes(data)
        return str(path)

    def _run_file_script(self, argv: list[str], data: bytes | None, path: str) -> tuple[int, bytes]:
        received = bytearray()
        raw = self._run(argv, data, 60, received.extend)
        if raw.deadline_passed:
            raise SandboxError(f"reading or writing {path} timed out")
        return raw.exit_code, bytes(received)


class _Pipes:
    """A local process's stdin, stdout and stderr as a
    :class:`~ponder.sandbox.exec_stream.Transport`."""

    def __init__(self, stdin: IO[bytes], stdout: int, stderr: int) -> None:
        self._stdin = stdin
        self._streams = {stdout: STDOUT, stderr: STDERR}
        self._selector = selectors.DefaultSelector()
        for fd in self._streams:
            self._selector.register(fd, selectors.EVENT_READ)

    def send_last(self, data: bytes) -> None:
        try:
            self._stdin.write(data)
        finally:
            self._stdin.close()

    def close(self) -> None:
        self._selector.close()
        if not self._stdin.closed:
            with contextlib.suppress(OSError):
                self._stdin.close()

    def receive(self, timeout: float) -> list[tuple[int, bytes]] | None:
        if not self._selector.get_map():
            return None
        pieces = []
        for key, _ in self._selector.select(timeout):
            data = os.read(key.fd, 65536)
            if data:
                pieces.append((self._streams[key.fd], data))
            else:
                self._selector.unregister(key.fd)
        if not pieces and not self._selector.get_map():
            return None
        return pieces
