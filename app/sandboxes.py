"""Opening the sandbox a session runs in, building the default image when it is missing."""

from __future__ import annotations

import sys
from pathlib import Path

from ponder.sandbox.docker_sandbox import DockerSandbox, connect
from ponder.sandbox.image import DEFAULT_IMAGE, build_default_image


def _progress(line: str) -> None:
    print(f"[sandbox image] {line}", file=sys.stderr, flush=True)


def ensure_image(image: str) -> None:
    """Build the default image when it is missing (other images must already exist)."""
    if image == DEFAULT_IMAGE:
        build_default_image(connect(), tag=image, log=_progress)


def open_sandbox(workspace: Path, *, image: str, network: bool) -> DockerSandbox:
    ensure_image(image)
    sandbox = DockerSandbox(workspace, image, network=network)
    sandbox.start()
    return sandbox
