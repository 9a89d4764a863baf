"""One ``docker exec`` with input, streamed output and a host-side deadline.

The docker SDK's ``exec_run`` has no timeout and cannot feed stdin, so this drives the exec API
directly: create, start with a hijacked socket, write stdin and half-close it, then read Docker's
multiplexed frames until the process ends or the deadline passes.
"""

from __future__ import annotations

import io
import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import docker.errors
from docker import APIClient

from ponder.sandbox.base import ContainerGone, Halt, SandboxError
from ponder.sandbox.scripts import ExitReport, OutputEnd

_HEADER = struct.Struct(">BxxxL")


BACKGROUND_GRACE_S = 1.0
"""How long output may stay open after the command ended (a background job holding it)."""
QUIET_AFTER_EXIT_S = 0.1
"""Once the command ended, this long without output means the rest is not ours to wait for.

(Docker itself can delay the end of every exec's stream by a second or two while a background
process holds an earlier exec's output, so waiting for the end of the stream is not enough.)"""


@dataclass(frozen=True, slots=True)
class RawExec:
    exit_code: int
    deadline_passed: bool
    """The host-side deadline passed before the command ended."""
    cancelled: bool = False
    """The caller's cancel event stopped the reading; the command is still to be swept."""
    runaways: bool = False
    """The command left so many processes behind (a fork bomb) that the runner killed its
    process group, or the reaper killed a bomb since the last command; the caller sweeps."""
    reaper_running: bool = True
    """The runner found the sandbox's reaper running (the model can kill it; it is restarted)."""


class _Stream(Protocol):
    """The exec's hijacked connection: a socket, or a paramiko channel on ``ssh://`` hosts."""

    def fileno(self) -> int: ...
    def recv(self, size: int, /) -> bytes: ...
    def sendall(self, data: bytes, /) -> Any: ...
    def close(self) -> None: ...


def _exec_stream(handle: Any) -> _Stream:
    stream = getattr(handle, "_sock", handle)
    if isinstance(stream, socket.socket) or hasattr(stream, "shutdown_write"):
        return cast(_Stream, stream)
    raise SandboxError(f"unsupported Docker transport for exec ({type(handle).__name__})")


def _read_ahead(handle: Any, stream: _Stream) -> bytes:
    """The start of the exec's output that the HTTP client read along with the response
    headers (docker-py then hands over the bare connection, and those bytes would be lost).

    It happens when the headers and the first output arrive together: over TCP and SSH links,
    or a busy engine. The client's buffered reader holds them: an ``io.BufferedReader`` over
    the socket (unix, tcp), or paramiko's channel file (ssh).
    """
    reader = getattr(getattr(getattr(handle, "_response", None), "raw", None), "_fp", None)
    reader = getattr(reader, "fp", None)
    if isinstance(reader, io.BufferedReader) and isinstance(stream, socket.socket):
        timeout = stream.gettimeout()
        stream.settimeout(0)  # take what is buffered; wait for nothing more
        try:
            return reader.read1(1 << 20) or b""
        except BlockingIOError:
            return b""
        finally:
            stream.settimeout(timeout)
    held = getattr(reader, "_rbuffer", None)  # paramiko.file.BufferedFile
    if isinstance(held, bytes) and held:
        reader._rbuffer = b""  # type: ignore[union-attr]
        return held
    return b""


def _end_input(stream: _Stream) -> None:
    """Half-close: the command sees the end of its stdin while its output still comes back."""
    if isinstance(stream, socket.socket):
        stream.shutdown(socket.SHUT_WR)
    else:
        stream.shutdown_write()  # type: ignore[attr-defined]  # paramiko.Channel


def run_exec(
    api: APIClient,
    container_id: str,
    argv: Sequence[str],
    *,
    stdin: bytes | None,
    deadline: float,
    on_output: Callable[[bytes], None],
    environment: dict[str, str] | None = None,
    user: str = "",
    cancel: Halt | None = None,
) -> RawExec:
    """Run ``argv`` in the container; output bytes (stdout and stderr) go to ``on_output``.

    ``deadline`` is a ``time.monotonic()`` value; past it the stream is abandoned and the result
    says so (the in-container ``timeout`` normally ends the command well before).
    """
    try:
        created = api.exec_create(
            container_id,
            list(argv),
            stdin=stdin is not None,
            stdout=True,
            stderr=True,
            tty=False,
            environment=environment,
            user=user,
        )
        handle = api.exec_start(created["Id"], socket=True)
    except docker.errors.NotFound:
        raise ContainerGone("the sandbox container is gone") from None
    except docker.errors.APIError as exc:
        if exc.status_code == 409:  # "container ... is not running"
            raise ContainerGone(f"the sandbox container stopped ({exc.explanation})") from None
        raise SandboxError(f"docker exec failed: {exc.explanation or exc}") from None
    sock = _exec_stream(handle)
    early = _read_ahead(handle, sock)
    try:
        if stdin is not None:
            sock.sendall(stdin)
            _end_input(sock)
        frames = Frames(deadline, on_output, cancel)
        ended = frames.read(sock, early)
    finally:
        sock.close()
        if hasattr(handle, "close"):
            handle.close()
    report = frames.report
    if frames.cancelled:
        return RawExec(exit_code=-1, deadline_passed=False, cancelled=True)
    if report.exit_code is not None:
        return RawExec(
            report.exit_code,
            deadline_passed=False,
            runaways=report.killed_runaways,
            reaper_running=report.reaper_running,
        )
    if not ended:
        return RawExec(exit_code=-1, deadline_passed=True)
    return RawExec(exit_code=_exit_code(api, created["Id"]), deadline_passed=False)


def start_detached(api: APIClient, container_id: str, argv: Sequence[str], user: str = "") -> None:
    """Start ``argv`` in the container and leave it running (nothing is read from it)."""
    try:
        created = api.exec_create(
            container_id, list(argv), stdin=False, stdout=False, stderr=False, user=user
        )
        api.exec_start(created["Id"], detach=True)
    except docker.errors.NotFound:
        raise ContainerGone("the sandbox container is gone") from None
    except docker.errors.APIError as exc:
        raise SandboxError(f"docker exec failed: {exc.explanation or exc}") from None


def _exit_code(api: APIClient, exec_id: str) -> int:
    # The stream can close a moment before the daemon records the exit code.
    for _ in range(50):
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        time.sleep(0.02)
    raise SandboxError("docker did not report the command's exit code")


class Frames:
    """Docker's multiplexed stream: stdout goes to ``on_output``; stderr is watched for the
    runner's exit marker. Once the marker and the end of the output (:data:`END_OF_OUTPUT`,
    which can come after the marker) are both in, output gets :data:`BACKGROUND_GRACE_S` to
    close."""

    def __init__(
        self,
        deadline: float,
        on_output: Callable[[bytes], None],
        cancel: Halt | None,
    ) -> None:
        self.deadline = deadline
        self.output = OutputEnd(on_output)
        self.cancel = cancel
        self.cancelled = False
        self.report = ExitReport()

    @property
    def ended(self) -> bool:
        return self.report.exit_code is not None and self.output.seen

    def read(self, sock: _Stream, early: bytes = b"") -> bool:
        """Read until EOF (True) or the deadline (False); ``early`` is what was read already."""
        try:
            return self._read(sock, early)
        finally:
            self.output.close()

    def _read(self, sock: _Stream, early: bytes) -> bool:
        buffer = bytearray()
        self._take(buffer, early)
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.cancel is not None and self.cancel.is_set():
                self.cancelled = True
                return False
            ended = self.ended
            wait = QUIET_AFTER_EXIT_S if ended else 0.2
            ready, _, _ = select.select([sock], [], [], min(remaining, wait))
            if not ready:
                if ended:
                    return False
                continue
            data = sock.recv(65536)
            if not data:
                return True
            self._take(buffer, data)

    def _take(self, buffer: bytearray, data: bytes) -> None:
        """Add ``data`` to ``buffer`` and hand on every whole frame in it."""
        ended = self.ended
        buffer += data
        while len(buffer) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + size:
                break
            payload = bytes(buffer[_HEADER.size : _HEADER.size + size])
            del buffer[: _HEADER.size + size]
            if stream == 2:
                if self.report.exit_code is None:
                    self.report.feed(payload)
            elif payload:
                self.output.feed(payload)
        if not ended and self.ended:  # both ends are in: background output gets a grace
            self.deadline = min(self.deadline, time.monotonic() + BACKGROUND_GRACE_S)
