"""One ``docker exec`` with input, streamed output and a host-side deadline.

The docker SDK's ``exec_run`` has no timeout and cannot feed stdin, so this drives the exec API
directly: create, start with a hijacked socket, write stdin and half-close it, then read Docker's
multiplexed frames until the process ends or the deadline passes.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import docker.errors
from docker import APIClient

from ponder.sandbox.base import SandboxError

_HEADER = struct.Struct(">BxxxL")


@dataclass(frozen=True, slots=True)
class RawExec:
    exit_code: int
    deadline_passed: bool
    """The host-side deadline passed before the output stream ended."""


def _raw_socket(handle: Any) -> socket.socket:
    sock = getattr(handle, "_sock", handle)
    if not isinstance(sock, socket.socket):
        raise SandboxError(f"unsupported Docker transport for exec ({type(handle).__name__})")
    return sock


def run_exec(
    api: APIClient,
    container_id: str,
    argv: Sequence[str],
    *,
    stdin: bytes | None,
    deadline: float,
    on_output: Callable[[bytes], None],
    environment: dict[str, str] | None = None,
    workdir: str | None = None,
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
            workdir=workdir,
        )
        handle = api.exec_start(created["Id"], socket=True)
    except docker.errors.NotFound:
        raise SandboxError("the sandbox container is gone (removed or stopped)") from None
    except docker.errors.APIError as exc:
        raise SandboxError(f"docker exec failed: {exc.explanation or exc}") from None
    sock = _raw_socket(handle)
    try:
        if stdin is not None:
            sock.sendall(stdin)
            sock.shutdown(socket.SHUT_WR)
        finished = _read_frames(sock, deadline, on_output)
    finally:
        sock.close()
        if hasattr(handle, "close"):
            handle.close()
    if not finished:
        return RawExec(exit_code=-1, deadline_passed=True)
    exit_code = _exit_code(api, created["Id"])
    return RawExec(exit_code=exit_code, deadline_passed=False)


def _exit_code(api: APIClient, exec_id: str) -> int:
    # The stream can close a moment before the daemon records the exit code.
    for _ in range(50):
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        time.sleep(0.02)
    raise SandboxError("docker did not report the command's exit code")


def _read_frames(sock: socket.socket, deadline: float, on_output: Callable[[bytes], None]) -> bool:
    """Read until EOF (True) or the deadline (False)."""
    buffer = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], min(remaining, 1.0))
        if not ready:
            continue
        data = sock.recv(65536)
        if not data:
            return True
        buffer += data
        while len(buffer) >= _HEADER.size:
            _stream, size = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + size:
                break
            payload = bytes(buffer[_HEADER.size : _HEADER.size + size])
            del buffer[: _HEADER.size + size]
            if payload:
                on_output(payload)
