"""Driving a real terminal: a command runs in a tmux pane and tests read the rendered screen."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


class Pane:
    def __init__(self, session: str) -> None:
        self.session = session

    def screen(self, history: int = 0) -> str:
        args = ["tmux", "capture-pane", "-p", "-t", self.session]
        if history:
            args += ["-S", f"-{history}"]
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear; the screen shows:\n{self.screen()}")

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, *keys], check=True)


@contextmanager
def terminal(
    command: list[str], env: dict[str, str], width: int = 120, height: int = 40
) -> Iterator[Pane]:
    """Run ``command`` in a fresh tmux session; the pane stays open after it exits.

    ``env`` is the whole environment, plus a 256-colour TERM and Textual without animations
    unless it says otherwise."""
    env = {"TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none", **env}
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but tmux is not installed (install.sh --dev installs it)")
        pytest.skip("tmux is not installed")
    session = f"ponder-test-{uuid.uuid4().hex[:8]}"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    script = f"env -i {exports} {shlex.join(command)}; code=$?; echo; echo EXIT=$code; sleep 600"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", str(width), "-y", str(height), script],
        check=True,
    )
    try:
        yield Pane(session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
