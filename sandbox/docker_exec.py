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
from pathlib import Path
from typing import Any, Protocol, cast

import docker.errors
from docker import APIClient
from docker.models.containers import Container

from ponder.sandbox.archive import CHUNK, extract
from ponder.sandbox.base import ContainerGone, Halt, SandboxError
from ponder.sandbox.exec_stream import RawExec, read_exec

_HEADER = struct.Struct(">BxxxL")


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
    token: str | None = None,
) -> RawExec:
    """Run ``argv`` in the container; output bytes (stdout and stderr) go to ``on_output``
    (a runner's: up to its end marker, once it has been sent its ``token``; see
    :func:`~ponder.sandbox.exec_stream.read_exec`).

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
            if token is None:  # a runner's stdin stays open for its token
                _end_input(sock)
        read = read_exec(Frames(sock, early), deadline, on_output, cancel, token)
    finally:
        sock.close()
        if hasattr(handle, "close"):
            handle.close()
    return RawExec.of(read, lambda: _exit_code(api, created["Id"]))


def start_detached(api: APIClient, container_id: str, argv: Sequence[str], user: str = "") -> int:
    """Start ``argv`` in the container and leave it running (nothing is read from it); returns
    its process id on the host (0 when the engine does not say)."""
    try:
        created = api.exec_create(
            container_id, list(argv), stdin=False, stdout=False, stderr=False, user=user
        )
        api.exec_start(created["Id"], detach=True)
        return int(api.exec_inspect(created["Id"]).get("Pid") or 0)
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
    """Docker's multiplexed exec stream as a :class:`~ponder.sandbox.exec_stream.Transport`:
    each frame is a stream number and a length, then that many bytes."""

    def __init__(self, sock: _Stream, early: bytes = b"") -> None:
        self.sock = sock
        self._buffer = bytearray(early)

    def send_last(self, data: bytes) -> None:
        self.sock.sendall(data)
        _end_input(self.sock)

    def receive(self, timeout: float) -> list[tuple[int, bytes]] | None:
        pieces = self._whole_frames()
        if pieces:
            return pieces
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return []
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:  # the engine dropped the stream: it is over
            return None
        if not data:
            return None
        self._buffer += data
        return self._whole_frames()

    def _whole_frames(self) -> list[tuple[int, bytes]]:
        pieces = []
        buffer = self._buffer
        while len(buffer) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + size:
                break
            pieces.append((stream, bytes(buffer[_HEADER.size : _HEADER.size + size])))
            del buffer[: _HEADER.size + size]
        return pieces


def living_processes(api: APIClient, container_id: str) -> list[int]:
    """Host process ids of the container's living processes, from the engine (``docker
    top``), which no process inside can forge. A zombie is dead unless one of its threads still
    runs (a process whose first thread exited shows as one)."""
    listing = api.top(container_id, ps_args="-eLo pid,stat")
    titles = listing.get("Titles") or []
    pid, state = titles.index("PID"), titles.index("STAT")
    return sorted(
        {int(row[pid]) for row in listing.get("Processes") or [] if row[state][:1] != "Z"}
    )


def export_folder(
    container: Container,
    folder: str,
    destination: Path,
    limit: int,
    skip: Callable[[bytes], bool],
) -> None:
    """The container's ``folder`` written into the empty host folder ``destination``, read as
    hostile (:func:`~ponder.sandbox.archive.extract`), at most ``limit`` bytes."""
    try:
        stream, _ = container.get_archive(f"{folder}/.", chunk_size=CHUNK)
        extract(stream, destination, limit, skip)
    except docker.errors.DockerException as error:
        raise SandboxError(f"docker could not read the sandbox's files: {error}") from None
