"""Docker hosts reached over TCP and over SSH, standing in on 127.0.0.1 for another machine.

Both forward to the local engine's socket, so a test can point DOCKER_HOST at them and watch
ponder's sandboxes work through a remote transport without any traffic leaving this machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paramiko

ENGINE_SOCKET = "/var/run/docker.sock"


LINK_DELAY_S = 0.05
"""Before each read from the engine, as a slow link would: what the engine wrote meanwhile
(an exec's response headers and its first output) then travels as one piece, which an HTTP
client reading the headers can swallow."""


def _pipe(
    recv: Callable[[int], bytes],
    send: Callable[[bytes], Any],
    eof: Callable[[], Any],
    delay: float = 0.0,
) -> None:
    with contextlib.suppress(OSError, EOFError):
        while True:
            time.sleep(delay)
            data = recv(65536)
            if not data:
                break
            send(data)
    with contextlib.suppress(OSError, EOFError):
        eof()


def _to_engine(
    recv: Callable[[int], bytes], send: Callable[[bytes], Any], eof: Callable[[], Any]
) -> None:
    """Join one client stream to a new connection to the engine, in both directions."""
    engine = socket.socket(socket.AF_UNIX)
    engine.connect(ENGINE_SOCKET)
    threading.Thread(
        target=_pipe,
        args=(recv, engine.sendall, lambda: engine.shutdown(socket.SHUT_WR)),
        daemon=True,
    ).start()
    threading.Thread(target=_pipe, args=(engine.recv, send, eof, LINK_DELAY_S), daemon=True).start()


@contextmanager
def _listening(on_connection: Callable[[socket.socket], None]) -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            on_connection(client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


@contextmanager
def tcp_docker_host() -> Iterator[str]:
    """``tcp://127.0.0.1:PORT``, forwarded byte for byte to the engine."""

    def forward(client: socket.socket) -> None:
        _to_engine(client.recv, client.sendall, lambda: client.shutdown(socket.SHUT_WR))

    with _listening(forward) as port:
        yield f"tcp://127.0.0.1:{port}"


class _DialStdio(paramiko.ServerInterface):
    """The far side of ``ssh://``: a client with the right key may run `docker system
    dial-stdio`, whose stdin and stdout become a connection to the engine (as with the real
    docker command on a remote host)."""

    def __init__(self, client_key: paramiko.PKey) -> None:
        self.client_key = client_key

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if key.asbytes() == self.client_key.asbytes():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        if command != b"docker system dial-stdio":
            return False

        def eof() -> None:
            channel.send_exit_status(0)
            channel.shutdown_write()

        _to_engine(channel.recv, channel.sendall, eof)
        return True


@contextmanager
def ssh_docker_host(home: Path) -> Iterator[str]:
    """``ssh://ponder@127.0.0.1:PORT``; the client's key and the server's host key are written
    to ``home``/.ssh, where ssh clients (paramiko included) look for them."""
    host_key = paramiko.RSAKey.generate(2048)
    client_key = paramiko.RSAKey.generate(2048)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    client_key.write_private_key_file(str(ssh_dir / "id_rsa"))
    transports: list[paramiko.Transport] = []

    def serve(client: socket.socket) -> None:
        transport = paramiko.Transport(client)
        transport.add_server_key(host_key)
        transport.start_server(threading.Event(), server=_DialStdio(client_key))  # no waiting
        transports.append(transport)

    with _listening(serve) as port:
        known = f"[127.0.0.1]:{port} {host_key.get_name()} {host_key.get_base64()}\n"
        (ssh_dir / "known_hosts").write_text(known)
        try:
            yield f"ssh://ponder@127.0.0.1:{port}"
        finally:
            for transport in transports:
                transport.close()
