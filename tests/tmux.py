"""Driving a real terminal: a command runs in a tmux pane and tests read the rendered screen."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

SESSION = "ponder-test"
"""The one session on each terminal's own server."""


class Pane:
    def __init__(self, tmux: list[str]) -> None:
        self.tmux = tmux
        """``tmux`` and the options that reach this pane's own server."""

    def screen(self, history: int = 0) -> str:
        args = [*self.tmux, "capture-pane", "-p", "-t", SESSION]
        if history:
            args += ["-S", f"-{history}"]
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

    def wait_for(self, text: str, timeout: float = 60) -> str:
        return self.wait_until(lambda screen: text in screen, repr(text), timeout)

    def wait_until(
        self, shows: Callable[[str], bool], what: str = "the screen", timeout: float = 60
    ) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if shows(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{what} did not appear; the screen shows:\n{self.screen()}")

    def send(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", SESSION, *keys], check=True)


@contextmanager
def terminal(
    command: list[str], env: dict[str, str], width: int = 120, height: int = 40
) -> Iterator[Pane]:
    """Run ``command`` in a tmux server of its own; the pane stays open after it exits.

    ``env`` is the whole environment, plus a 256-colour TERM and Textual without animations
    unless it says otherwise. A shared server exits when its last session is killed, and a
    session started in that moment fails ("server exited unexpectedly", 9 in 300 tries here),
    so each terminal has its own server, on a socket in a folder of its own."""
    env = {"TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none", **env}
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but tmux is not installed (install.sh --dev installs it)")
        pytest.skip("tmux is not installed")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    script = f"env -i {exports} {shlex.join(command)}; code=$?; echo; echo EXIT=$code; sleep 600"
    with tempfile.TemporaryDirectory(prefix="ponder-tmux-") as folder:
        tmux = ["tmux", "-S", f"{folder}/socket"]
        size = ["-x", str(width), "-y", str(height)]
        subprocess.run([*tmux, "new-session", "-d", "-s", SESSION, *size, script], check=True)
        try:
            yield Pane(tmux)
        finally:
            subprocess.run([*tmux, "kill-server"], check=False)
