"""Line mode: the prompt-toolkit prompt fed through a pipe, then `ponder --plain` in a real
terminal (pexpect) with a real sandbox, its slash commands and an approval prompt."""

from __future__ import annotations

import io
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import PONDER
from k2text import SLEEP_THEN_ANSWER, completion, tool_call, write_script
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from ponder.app.frontends.line_prompt import LinePrompt

ENTER = "\r"  # what the Enter key sends; "\n" is ctrl+j, a new line in the prompt
ALT_ENTER = "\x1b\r"  # a new line within the message


@pytest.fixture
def user_home(user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HOME", user_env["HOME"])  # the history file goes to the test's HOME
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    return


def type_slowly(pipe: PipeInput, *keys: str) -> threading.Thread:
    def type_keys() -> None:
        for key in keys:
            time.sleep(0.3)
            pipe.send_text(key)

    thread = threading.Thread(target=type_keys)
    thread.start()
    return thread


@pytest.mark.usefixtures("user_home")
def test_the_prompt_sends_lines_keeps_new_lines_and_completes(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "stats.py").write_text("")
    with create_pipe_input() as pipe:
        prompt = LinePrompt({"diff": lambda _: ""}, tmp_path, input=pipe, output=DummyOutput())
        pipe.send_text("fix the bug" + ENTER)
        assert prompt.read() == "fix the bug"
        pipe.send_text("first line\x1b" + ENTER + "second line" + ENTER)  # alt+enter
        assert prompt.read() == "first line\nsecond line"
        # Completion happens between keys, so these are typed with pauses, like a person would.
        typing = type_slowly(pipe, "look at @sr", "\t", "\t", ENTER)
        assert prompt.read() == "look at @src/stats.py"
        typing.join()
        typing = type_slowly(pipe, "/di", "\t", ENTER)
        assert prompt.read() == "/diff"
        typing.join()
        pipe.send_text("\x1b[A" + ENTER)  # up: the last entry again
        assert prompt.read() == "/diff"


def test_slash_commands_print_their_result(tmp_path: Path) -> None:
    console = Console(record=True, width=100)
    prompt = LinePrompt(
        {"diff": lambda _: "no changes yet", "undo": lambda _: 1 / 0},  # type: ignore[dict-item, misc]
        tmp_path,
        input=None,
    )
    assert prompt.command("/diff", console) is None
    assert prompt.command("/undo", console) is None
    assert prompt.command("/nope", console) is None
    assert prompt.command("/help", console) is None
    assert prompt.command("/quit", console) == "quit"
    printed = console.export_text()
    assert "no changes yet" in printed
    assert "/undo failed: division by zero" in printed
    assert "unknown command /nope" in printed
    assert "/diff" in printed
    assert "/quit" in printed


def plain_session(script: Path, workspace: Path, user_env: dict[str, str]) -> pexpect.spawn:
    """`ponder --plain` in a real terminal (a pty), on a scripted model, in ``workspace``."""
    return pexpect.spawn(
        PONDER,
        ["--plain", "--model", f"scripted:{script}"],
        env={**user_env, "TERM": "xterm-256color"},
        cwd=str(workspace),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )


@pytest.mark.usefixtures("sandbox_image")
def test_a_plain_session_in_a_terminal(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    script = tmp_path / "script.jsonl"
    lines = [
        completion("Write it.", tool_call("bash", 0, {"command": "echo hello > note.txt"})),
        completion("Done.", content="Wrote note.txt."),
        completion("Publish.", tool_call("bash", 1, {"command": "git push origin main"})),
        completion("Denied.", content="I did not push."),
    ]
    write_script(script, *lines)
    child = plain_session(script, workspace, user_env)
    # Issue 24, 18: it opens with where it works and its keys, not a bare prompt.
    child.expect_exact("ponder · scripted:script.jsonl · docker, bind mode, network off")
    child.expect_exact("Ctrl+C interrupts · Ctrl+D quits")  # (the lines wrap at 120 columns)
    child.expect_exact("›")
    child.send("write a note" + ENTER)
    child.expect_exact("Wrote note.txt.")
    child.expect_exact("›")
    child.send("/diff" + ENTER)
    child.expect_exact("+hello")
    child.expect_exact("›")
    child.send("now push it" + ENTER)
    child.expect_exact("[y]es / [a]lways allow `git push` / [n]o / [m]essage:")
    child.send("m" + ENTER)
    child.expect_exact("message to the model:")
    child.send("not today" + ENTER)
    child.expect_exact("I did not push.")
    child.expect_exact("›")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (workspace / "note.txt").read_text() == "hello\n"


@pytest.mark.usefixtures("sandbox_image")
def test_ctrl_c_stops_a_running_command_and_the_session_goes_on(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    script = write_script(tmp_path / "script.jsonl", *SLEEP_THEN_ANSWER)
    child = plain_session(script, workspace, user_env)
    child.expect_exact("›")
    child.send("wait a while" + ENTER)
    child.expect_exact("sleep 300")
    child.send("carry on" + ENTER)
    child.expect_exact("queued: carry on")
    child.sendintr()
    child.expect_exact("✗ interrupted", timeout=15)  # not the command's 300 s
    child.expect_exact("interrupted; the session goes on with the next message")
    # What was queued comes back to the prompt unsent (Ctrl-C sent it at once; Esc in the TUI
    # keeps it too): Enter sends it.
    child.expect_exact("› carry on")
    child.send(ENTER)
    child.expect_exact("task: carry on")
    child.expect_exact("Stopped waiting.")
    child.expect_exact("›")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.usefixtures("sandbox_image")
def test_piped_line_mode_keeps_long_lines_whole(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    long = "echo " + "x" * 150
    script = write_script(
        tmp_path / "s.jsonl",
        completion("Ok.", tool_call("bash", 0, {"command": long})),
        completion("Ok.", content="word " * 40),
    )
    ran = subprocess.run(
        [PONDER, "--plain", "--model", f"scripted:{script}"], input="go\n", env=user_env,
        cwd=workspace, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert f"▶ bash $ {long}" in lines  # not cut at 80 columns
    assert ("word " * 40).strip() in [line.strip() for line in lines]


@pytest.mark.usefixtures("sandbox_image")
def test_a_message_typed_while_a_task_runs_is_shown_queued_and_sent_after_it(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 24, 14: a message typed during a task was invisible until it was sent. It is
    shown as queued when its Enter is pressed; an approval asked meanwhile still reads its
    own answer, not the queue."""
    script = write_script(
        tmp_path / "script.jsonl",
        completion("Wait.", tool_call("bash", 0, {"command": "sleep 3"})),
        completion("Publish.", tool_call("bash", 1, {"command": "git push origin main"})),
        completion("Done.", content="first done."),
        completion("Ok.", content="second done."),
    )
    child = plain_session(script, workspace, user_env)
    child.logfile_read = seen = io.StringIO()
    child.expect_exact("›")
    child.send("first" + ENTER)
    child.expect_exact("sleep 3")
    child.send("second task" + ALT_ENTER + "its second line" + ENTER)  # while the command runs
    child.expect_exact("queued: second task")  # at once, not when the task ends
    child.expect_exact("[y]es / [a]lways allow `git push` / [n]o / [m]essage:")
    child.send("n" + ENTER)
    child.expect_exact("first done.")
    child.expect_exact("task: second task  (+ 1 more line)")  # one message, sent by itself
    child.expect_exact("second done.")
    child.expect_exact("›")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert seen.getvalue().count("queued:") == 1  # the approval's answer was not queued


def test_keys_typed_ahead_become_text_and_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    """What waits on the terminal when a prompt starts: keys (arrows, a terminal's colour
    reply, C1 and bidirectional controls) are dropped, Alt+Enter is a new line within a
    message, Enter ends one, and what follows the last Enter stays for the prompt."""
    import os
    import pty

    from ponder.app.frontends.terminal_input import typed_ahead

    main, side = pty.openpty()
    with os.fdopen(side, "r") as terminal:
        monkeypatch.setattr("sys.stdin", terminal)
        os.write(main, "go\x1b[A\u009b31m\u202e!\x1b]11;rgb:0/0/0\x07\x1b\rmore\rhal".encode())
        os.write(main, b"f")
        typed = typed_ahead()
    os.close(main)
    assert typed.lines == ["go!\nmore"]
    assert typed.rest == "half"


def test_an_approvals_message_may_follow_m_on_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """`m no pushing please` re-asked silently; the message is taken as typed (its case too)."""
    from ponder.app.frontends.line import ask_in_line_mode
    from ponder.runtime.events import ApprovalRequested

    request = ApprovalRequested(call_id="c", name="bash", kind="execute", summary="git push",
                                reason="it pushes", prefix="git push")  # fmt: skip
    answers = iter(["maybe", "m No pushing, please"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    answer = ask_in_line_mode(Console(file=io.StringIO()), request)
    assert (answer.decision, answer.message) == ("deny", "No pushing, please")
