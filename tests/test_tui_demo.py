"""``ponder demo`` on a real terminal plays in the TUI, then prints the diff."""

from __future__ import annotations

import pytest
from conftest import PONDER
from tmux import terminal


@pytest.mark.usefixtures("sandbox_image")
def test_demo_plays_in_the_tui(user_env: dict[str, str]) -> None:
    with terminal([PONDER, "demo"], user_env) as pane:
        screen = pane.wait_for("press q to quit", timeout=90)
        assert "Thought for" in screen  # each step's reasoning, folded once it is over
        assert "3 passed" in screen
        assert "step 6/20" in screen
        pane.send("q")
        pane.wait_for("EXIT=0", timeout=30)
        after = pane.screen(history=200)
        assert "+        return (ordered[middle - 1] + ordered[middle]) / 2" in after
        assert "The fixed copy is at" in after
