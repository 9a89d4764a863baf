"""Which ``ponder serve`` processes run on this machine, and which model each holds.

A running server writes one JSON file (its pid, port and model file) into the runtime folder and
removes it when it stops; one that died is forgotten the next time the folder is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import platformdirs


def registry() -> Path:
    """Where running servers say which model they hold (one JSON file per port)."""
    return platformdirs.user_state_path("ponder") / "serve"


def entries() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(registry().glob("*.json")):
        try:
            entry = json.loads(path.read_text())
            os.kill(int(entry["pid"]), 0)
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # a server that died without cleaning up
            continue
        yield path, entry


def running_server(model_path: Path) -> str | None:
    """The base URL of a live ``ponder serve`` holding ``model_path``, if one answers."""
    wanted = str(model_path.expanduser().resolve())
    for _, entry in entries():
        if entry.get("model") != wanted:
            continue
        url = f"http://127.0.0.1:{int(entry['port'])}"
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return url
        except httpx.HTTPError:
            continue
    return None
