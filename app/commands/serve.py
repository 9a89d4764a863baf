"""``ponder serve [GGUF]``: load a local model once and serve it on localhost (the server is
:mod:`ponder.app.model_server`, the list of running ones :mod:`ponder.app.serve_registry`)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import uvicorn

from ponder.app.exit_codes import UsageError
from ponder.app.http_guard import loopback
from ponder.app.model_server import ModelServer
from ponder.app.serve_registry import entries, registry
from ponder.app.sizes import size
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.options import LlamaOptions

DEFAULT_PORT = 8642
DEFAULT_KV_MEMORY = "4GiB"
KEY_VARIABLE = "PONDER_SERVE_API_KEY"
SHUTDOWN_S = 3
"""When stopped, the seconds answers still running get before they are cancelled."""


def parser() -> argparse.ArgumentParser:
    from ponder.app.help_examples import examples
    from ponder.app.settings import add_flags

    result = argparse.ArgumentParser(
        prog="ponder serve",
        **examples("serve"),
        description="Hold a local GGUF warm and serve it as an OpenAI-compatible API on "
        "localhost; ponder's llamacpp: runs of the same file use it. --status shows the "
        "running servers.",
    )
    result.add_argument("gguf", nargs="?", type=Path, help="default: the configured llamacpp:")
    result.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    result.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1; any other needs --api-key)",
    )
    result.add_argument(
        "--api-key",
        default=os.environ.get(KEY_VARIABLE),
        help=f"a key every request must send (Authorization: Bearer KEY); default ${KEY_VARIABLE}",
    )
    result.add_argument(
        "--kv-memory",
        type=size,
        default=DEFAULT_KV_MEMORY,
        help=f"memory for other conversations' KV caches (default {DEFAULT_KV_MEMORY})",
    )
    result.add_argument("--status", action="store_true", help="show the running servers")
    for title, where, classes in serving_groups():  # how the model loads; runs set the rest
        add_flags(result, title, where, *classes)
    return result


def serving_groups() -> list[tuple[str, str, tuple[type, ...]]]:
    from ponder.app.cli import setting_groups

    return [group for group in setting_groups() if group[1] == "llama"]


def run(argv: list[str]) -> int:
    from ponder.app.config import load_config
    from ponder.app.settings import given_flags

    args = parser().parse_args(argv)
    if args.status:
        return _status()
    config = load_config(given_flags(args, serving_groups()))
    if args.gguf is None:
        if not (config.session.model or "").startswith("llamacpp:"):
            raise UsageError("give a GGUF to serve (or configure a llamacpp: model)")
        args.gguf = Path(config.session.model.partition(":")[2])  # type: ignore[union-attr]
    path = args.gguf.expanduser().resolve()
    if not path.is_file():
        raise UsageError(f"no model file {args.gguf}")
    if args.api_key is not None and not (args.api_key.isascii() and args.api_key.isprintable()):
        raise UsageError("--api-key: use printable ASCII (HTTP headers carry nothing else)")
    if not loopback(args.host) and not args.api_key:
        raise UsageError(
            f"--host {args.host} lets other machines in: give --api-key (or ${KEY_VARIABLE})"
        )
    listening = _listen(args.host, args.port)  # a busy port is found before minutes of loading
    try:
        return _serve(path, args, replace(config.llama, kv_slots_bytes=args.kv_memory), listening)
    finally:
        listening.close()


def _serve(
    path: Path, args: argparse.Namespace, options: LlamaOptions, listening: socket.socket
) -> int:
    print(f"ponder serve: loading {path.name} …", file=sys.stderr, flush=True)
    backend = LlamaCppBackend(path, options)
    server = ModelServer(backend)
    app = server.app(args.host, args.api_key)
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", timeout_graceful_shutdown=SHUTDOWN_S
    )
    http = uvicorn.Server(config)
    left = 0
    # ponder's own runs find a server of the same GGUF here; one that asks for a key or listens
    # elsewhere is for clients that are told where it is and how to sign in.
    entry = registry() / f"{args.port}.json" if args.api_key is None else None
    try:
        if entry is not None and loopback(args.host):
            entry.parent.mkdir(parents=True, exist_ok=True)
            entry.write_text(
                json.dumps({"pid": os.getpid(), "port": args.port, "model": str(path)})
            )
        shown = f"[{args.host}]" if ":" in args.host else args.host
        url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else shown}:{args.port}/v1"
        print(f"ponder serve: {path.name} at {url} (model {server.model})", file=sys.stderr,
              flush=True)  # fmt: skip
        left = asyncio.run(_until_hung_up(http, listening, server))
    finally:
        if entry is not None:
            entry.unlink(missing_ok=True)
        backend.close()
    if left:
        raise SystemExit(128 + left)
    return 0


async def _until_hung_up(
    http: uvicorn.Server, listening: socket.socket, server: ModelServer
) -> int:
    """Serve until stopped; the signal that stopped it (0: Ctrl-C or SIGTERM, which uvicorn
    takes itself). A hang-up is taken on the loop too: ponder's SystemExit, raised wherever
    the main thread happened to be, could land inside a request, where uvicorn logs it and
    serves on (the server outlived its terminal). Answers under way end at once, with their
    streams closed as at a limit (:data:`SHUTDOWN_S` is the bound if one does not)."""
    loop = asyncio.get_running_loop()
    left = 0

    def hang_up() -> None:
        nonlocal left
        left = signal.SIGHUP
        http.should_exit = True

    taken = signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN  # nohup: serve on
    if taken:
        loop.add_signal_handler(signal.SIGHUP, hang_up)

    async def stop_answers() -> None:
        while not http.should_exit:
            await asyncio.sleep(0.1)
        server.stop_all()

    stopping = asyncio.create_task(stop_answers())
    try:
        await http.serve(sockets=[listening])
    finally:
        stopping.cancel()
        if taken:
            loop.remove_signal_handler(signal.SIGHUP)
    return left


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening (uvicorn serves on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        listening.listen(128)
    except OSError as error:
        listening.close()
        if error.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} is in use (another ponder serve? `ponder serve --status`); "
                "choose another with --port"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return listening


def _status() -> int:
    found = False
    for _, entry in entries():
        found = True
        url = f"http://127.0.0.1:{int(entry['port'])}"
        try:
            metrics = httpx.get(f"{url}/metrics", timeout=2.0).json()
        except (httpx.HTTPError, ValueError):
            print(f"{url}: pid {entry['pid']}, {entry['model']} (not answering)")
            continue
        rss = metrics.get("rss_bytes") or 0
        decode = metrics.get("decode_tokens_per_s")
        print(
            f"{url}/v1: {metrics['model']} · {metrics['requests']} requests, "
            f"{metrics['waiting']} waiting · {metrics['cached_conversations']} cached "
            f"conversations ({metrics['kv_saved_bytes'] / 2**20:.0f} MiB) · "
            f"{rss / 2**30:.1f} GiB resident" + (f" · decode {decode:.1f} t/s" if decode else "")
        )
    if not found:
        print("no ponder serve is running")
    return 0
