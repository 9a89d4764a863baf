"""``ponder serve [GGUF]``: load a local model once and serve it on localhost (the server is
:mod:`ponder.app.model_server`, the list of running ones :mod:`ponder.app.serve_registry`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import uvicorn

from ponder.app.exit_codes import UsageError
from ponder.app.model_server import ModelServer
from ponder.app.serve_registry import entries, registry
from ponder.app.sizes import size
from ponder.model.llamacpp import LlamaCppBackend

DEFAULT_PORT = 8642
DEFAULT_KV_MEMORY = "4GiB"


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
    options = replace(config.llama, kv_slots_bytes=args.kv_memory)
    print(f"ponder serve: loading {path.name} …", file=sys.stderr, flush=True)
    backend = LlamaCppBackend(path, options)
    server = ModelServer(backend)
    entry = registry() / f"{args.port}.json"
    config_uvicorn = uvicorn.Config(
        server.app(), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off"
    )
    http = uvicorn.Server(config_uvicorn)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(json.dumps({"pid": os.getpid(), "port": args.port, "model": str(path)}))
        url = f"http://127.0.0.1:{args.port}/v1"
        print(f"ponder serve: {path.name} at {url} (model {server.model})", file=sys.stderr,
              flush=True)  # fmt: skip
        http.run()
    finally:
        entry.unlink(missing_ok=True)
        backend.close()
    return 0


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
