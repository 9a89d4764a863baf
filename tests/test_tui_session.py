"""`ponder` in a real terminal (tmux) with a real sandbox: a task, an approval answered with a
key, a slash command, and leaving with ctrl+q."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import PONDER
from k2text import SLEEP_THEN_ANSWER, completion, tool_call, write_script
from tmux import terminal


@pytest.mark.usefixtures("sandbox_image")
def test_a_task_with_an_approval_in_the_tui(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    script = tmp_path / "script.jsonl"
    lines = [
        completion("Write it down.", tool_call("bash", 0, {"command": "echo hi > note.txt"})),
        completion("Then publish.", tool_call("bash", 1, {"command": "git push origin main"})),
        completion("Denied, so stop.", content="Wrote note.txt; did not push."),
    ]
    write_script(script, *lines)
    command = [PONDER, "--model", f"scripted:{script}", "--workspace", str(workspace)]
    with terminal(command, user_env) as pane:
        pane.wait_for("scripted:script.jsonl")
        pane.send("write a note then push", "Enter")
        pane.wait_for("bash needs approval")
        screen = pane.wait_for("[n] deny")
        assert "git push origin main" in screen
        pane.send("n")
        screen = pane.wait_for("Wrote note.txt; did not push.")
        assert "denied" in screen
        pane.send("/diff", "Enter")
        pane.wait_for("+hi")
        pane.send("C-q")
        pane.wait_for("EXIT=0", timeout=30)
    assert (workspace / "note.txt").read_text() == "hi\n"


@pytest.mark.usefixtures("sandbox_image")
def test_inline_mode_leaves_the_transcript_in_the_terminal(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "script.jsonl"
    rows = "\n\n".join(f"row {n}" for n in range(40))  # more than the inline frame holds
    write_script(
        script,
        completion("Count.", tool_call("bash", 0, {"command": "echo counted; exit 3"})),
        completion("Easy.", content=f"It is 42.\n\n{rows}"),
    )
    command = [PONDER, "--inline", "--model", f"scripted:{script}", "what is it?"]
    with terminal(command, user_env, height=30) as pane:
        pane.wait_for("row 39")
        pane.send("C-q")
        pane.wait_for("EXIT=0", timeout=30)
        scrollback = pane.screen(history=500)
        assert "› what is it?" in scrollback  # the whole transcript, not the last frame
        assert "It is 42." in scrollback
        assert "row 0\n" in scrollback
        # Issue 24, 17: the call keeps its tool's name, its output, and how it ended.
        assert "▶ bash $ echo counted; exit 3\ncounted\n\n✗ exit 3 · " in scrollback


@pytest.mark.usefixtures("sandbox_image")
def test_esc_stops_a_running_command_and_the_session_goes_on(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    script = write_script(tmp_path / "script.jsonl", *SLEEP_THEN_ANSWER)
    command = [PONDER, "--model", f"scripted:{script}", "--workspace", str(workspace)]
    with terminal(command, user_env) as pane:
        pane.wait_for("scripted:script.jsonl")
        pane.send("wait a while", "Enter")
        pane.wait_for("sleep 300")
        pane.send("Escape")
        pane.wait_for("✗ interrupted", timeout=15)  # not the command's 300 s
        pane.wait_for("scripted:script.jsonl · interrupted")
        pane.send("carry on", "Enter")
        pane.wait_for("Stopped waiting.")
        pane.send("C-q")
        pane.wait_for("EXIT=0", timeout=30)


@pytest.mark.usefixtures("sandbox_image")
def test_esc_while_an_approval_waits_stops_the_run(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    script = write_script(
        tmp_path / "script.jsonl",
        completion("Publish.", tool_call("bash", 0, {"command": "git push origin main"})),
        completion("Later.", content="Carried on."),
    )
    command = [PONDER, "--model", f"scripted:{script}", "--workspace", str(workspace)]
    with terminal(command, user_env) as pane:
        pane.wait_for("scripted:script.jsonl")
        pane.send("push it", "Enter")
        pane.wait_for("[n] deny")
        pane.send("Escape")
        screen = pane.wait_for("scripted:script.jsonl · interrupted", timeout=5)
        assert "no longer asked: the run was interrupted" in screen
        pane.send("C-q")  # the last task was interrupted, but the session ended as wished
        pane.wait_for("EXIT=0", timeout=30)


def test_an_unknown_theme_is_a_usage_error(user_env: dict[str, str], tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.jsonl", completion("Easy.", content="It is 42."))
    command = [PONDER, "--model", f"scripted:{script}"]
    with terminal(command, {**user_env, "PONDER_THEME": "nope"}) as pane:
        screen = pane.wait_for("EXIT=2", timeout=30)
        assert "no theme 'nope'; themes: " in screen


@pytest.mark.parametrize("mode", [[], ["--plain"]], ids=["tui", "line"])
def test_what_is_typed_while_ponder_starts_is_kept(
    tmp_path: Path, user_env: dict[str, str], mode: list[str]
) -> None:
    """Issue 24, 2: keys typed in the second ponder takes to start were lost (the TUI), or
    their Enter became a new line (line mode). A message ended with Enter is sent; what
    follows it waits in the prompt."""
    script = write_script(
        tmp_path / "s.jsonl",
        completion("Ok.", content="first answer"),
        completion("Ok.", content="second answer"),
    )
    command = [PONDER, *mode, "--sandbox", "local", "--model", f"scripted:{script}"]
    with terminal(command, user_env) as pane:
        pane.send("hello there", "Enter", "half typed")  # before ponder is up
        pane.wait_for("first answer")
        # The prompt comes back a moment after the answer, with the text typed after Enter.
        screen = pane.wait_until(lambda shown: "half typed" in shown.partition("first answer")[2])
        # Issue 24, 17: the local sandbox's warning follows the greeting (it was printed
        # before it, glued to the echoed keys; the TUI's screen then hid it).
        assert screen.index("scripted:s.jsonl") < screen.index("warning: ponder is running")
        assert "hello there" in screen.split("first answer")[0]
        assert "second answer" not in screen
        pane.send("Enter")
        pane.wait_for("second answer")
