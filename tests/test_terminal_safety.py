"""No escape sequence from the model, a command or a file name reaches the user's terminal,
and no file name prints a line of its own.

The sanitizers on their own, then every path that prints a run, checked on the raw bytes a real
terminal (a pty) receives: line mode, ``-p`` and ``-v``, ``exec --json``, export and the TUI.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pexpect
import pytest
from conftest import PONDER
from k2text import completion, tool_call, write_script
from tmux import terminal

from ponder.app.completion import workspace_files
from ponder.app.wording.for_display import for_display
from ponder.runtime.events import Checkpointed, FileEdited, FilesAttached, ToolCallStarted
from ponder.sandbox.safe_text import safe_name, safe_text

TITLE = "\x1b]0;PWNED-TITLE\x07"
CLIPBOARD = "\x1b]52;c;UFdORUQ=\x07"  # OSC 52: put "PWNED" on the clipboard
CLEAR = "\x1b[2J"
DOUBLED = "\x1b\x1b[m]0;DOUBLED\x07"  # survived the old one-pass cleaner as a title change
C1 = "\x9b2J\x9d0;C1-TITLE\x9c"
HOSTILE = TITLE + CLIPBOARD + CLEAR + DOUBLED + C1
RAW_MARKERS = [b"\x1b]0;", b"\x1b]52;", b"\x1b[2J", b"\xc2\x9b", b"\xc2\x9d", b"\x1b]0;DOUBLED"]
"""What must never arrive raw (the TUI itself sends other sequences, so these are specific)."""


def test_every_control_is_shown_not_run() -> None:
    assert safe_text("\x1b[1;31mred\x1b[0m\x1b[K") == "red"  # styling only: dropped
    assert safe_text(TITLE) == "␛]0;PWNED-TITLE␇"
    assert safe_text(DOUBLED) == "␛]0;DOUBLED␇"
    assert safe_text("\x9b31m") == "␛[31m"  # a C1 CSI is ESC [
    assert safe_text("rm -rf ~ \r ls") == "rm -rf ~ ␍ ls"  # a redraw cannot hide a command
    assert safe_text("a\r\nb\tc\x7f") == "a\nb\tc␡"
    assert safe_text("evil\u202etxt.exe") == "evil⟨U+202E⟩txt.exe"
    for text in (HOSTILE, "\x1b\x1b\x1b[[m", "x\x1b", "\x1b[", "é☕\x00"):
        once = safe_text(text)
        assert safe_text(once) == once  # idempotent
        assert not any((ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in once)


def hostile_script(path: Path) -> Path:
    """A model whose reasoning, command, command output, file name and answer all carry
    escape sequences."""
    name = f"notes{TITLE}.txt"
    command = f"printf '%b' '{HOSTILE.encode('unicode_escape').decode()}' > '{name}'; cat '{name}'"
    return write_script(
        path,
        completion(f"Think {HOSTILE}", tool_call("bash", 0, {"command": command})),
        completion(
            "Edit.",
            tool_call("create_file", 1, {"path": f"edit{CLEAR}.py", "file_text": HOSTILE}),
        ),
        completion(f"Answer {CLIPBOARD}", content=f"done {HOSTILE}"),
    )


def in_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> bytes:
    """Everything a terminal receives from ``ponder ARGS``, raw."""
    child = pexpect.spawn(PONDER, args, env=env, cwd=str(cwd), timeout=120, dimensions=(50, 160))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return bytes(child.before)


def assert_clean(received: bytes) -> None:
    for marker in RAW_MARKERS:
        assert marker not in received, (marker, received[-2000:])


@pytest.mark.usefixtures("sandbox_image")
@pytest.mark.parametrize("mode", [["--plain"], ["-p", "-v"]])
def test_line_mode_and_one_liners_show_no_raw_sequence(
    mode: list[str], tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    script = hostile_script(tmp_path / "model.jsonl")
    received = in_a_terminal(
        [*mode, "--model", f"scripted:{script}", "go"], user_env | {"TERM": "xterm"}, workspace
    )
    assert_clean(received)
    assert "␛]0;PWNED-TITLE␇".encode() in received  # shown, visibly
    assert b"done " in received


@pytest.mark.usefixtures("sandbox_image")
def test_json_events_escape_c1_controls_and_export_is_clean(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    script = hostile_script(tmp_path / "model.jsonl")
    ran = subprocess.run(
        [PONDER, "exec", "--json", "--model", f"scripted:{script}", "go"],
        env=user_env, cwd=workspace, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert re.search(rb"\x1b|\xc2[\x80-\x9f]", ran.stdout) is None  # no ESC, no C1 control
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    answer = events[-1]["answer"]
    assert answer == f"done {HOSTILE}"  # the JSON itself keeps the exact text

    listing = subprocess.run(
        [PONDER, "sessions"], env=user_env, cwd=workspace, capture_output=True, check=True
    )
    session_id = listing.stdout.split(b"\t", 1)[0].decode()
    exported = in_a_terminal(["export", session_id], user_env, workspace)
    assert_clean(exported)
    assert "␛]52;c;UFdORUQ=␇".encode() in exported
    diff = in_a_terminal(["diff"], user_env, workspace)  # file names and contents
    assert_clean(diff)
    assert b'"a/edit\\033[2J.py"' in diff  # git quotes such names itself


@pytest.mark.usefixtures("sandbox_image")
def test_the_tui_shows_no_raw_sequence(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    script = hostile_script(tmp_path / "model.jsonl")
    env = user_env | {"TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"}
    child = pexpect.spawn(
        PONDER, ["--model", f"scripted:{script}", "go"], env=env, cwd=str(workspace),
        timeout=120, dimensions=(50, 160),
    )  # fmt: skip
    received = b""
    try:
        child.expect("done ", timeout=120)
        received += bytes(child.before) + bytes(child.after)
        child.sendcontrol("q")
        child.expect(pexpect.EOF, timeout=60)
        received += bytes(child.before)
    finally:
        child.close(force=True)
    assert_clean(received)
    assert (workspace / f"notes{TITLE}.txt").exists()  # the file is as the model made it


FORGED = "✓ exit 0 fake.txt"
"""The second line of a file name, made to read like ponder's line for a command that ended well."""
CREATED = f"x\n{FORGED}"
SHOWN = "x␊✓ exit 0 fake.txt"
"""How ``CREATED`` is shown: on one line, the newline visible."""
TOUCHED = "y␊✓ exit 0 fake.txt"
"""How the name the model's command makes is shown."""


def test_a_name_is_one_line_with_every_control_shown() -> None:
    assert safe_name(CREATED) == SHOWN
    assert safe_name("a\tb\r\x1b[31mc\u202ed\x9b") == "a␉b␍␛[31mc⟨U+202E⟩d␛["  # nothing dropped
    assert safe_name(SHOWN) == SHOWN


def test_events_show_names_on_one_line() -> None:
    diff = f"--- a/{CREATED}\n+++ b/{CREATED}\n@@ -1 +1 @@\n-a\n+b\n"
    edited = for_display(FileEdited(call_id="c", path=CREATED, diff=diff))
    assert edited.path == SHOWN
    assert edited.diff == f"--- a/{SHOWN}\n+++ b/{SHOWN}\n@@ -1 +1 @@\n-a\n+b\n"
    created = for_display(
        FileEdited(call_id="c", path=CREATED, diff=f"--- /dev/null\n+++ b/{CREATED}\n")
    )
    assert created.diff == f"--- /dev/null\n+++ b/{SHOWN}\n"
    assert for_display(Checkpointed(step=1, commit="c", files=[CREATED])).files == [SHOWN]
    assert for_display(FilesAttached(files=[CREATED])).files == [SHOWN]
    call = ToolCallStarted(
        step=1, call_id="c", name="view", arguments={"path": CREATED, "other": "a\nb"}
    )
    assert for_display(call).arguments == {"path": SHOWN, "other": "a\nb"}  # text keeps lines


def test_completion_leaves_out_names_with_a_newline(tmp_path: Path) -> None:
    (tmp_path / CREATED).write_text("")
    (tmp_path / "plain.txt").write_text("")
    assert workspace_files(tmp_path) == ["plain.txt"]


def names_script(path: Path) -> Path:
    """A model that makes two files whose names' second line is ``FORGED``: one with
    create_file, one with bash (its command spells the check mark in escapes, so only the name
    holds the forged text)."""
    touch = "touch \"$(printf 'y\\n\\xe2\\x9c\\x93 exit 0 fake.txt')\""
    return write_script(
        path,
        completion("Create.", tool_call("create_file", 0, {"path": CREATED, "file_text": "hi\n"})),
        completion("Touch.", tool_call("bash", 1, {"command": touch})),
        completion("Done.", content="Made them."),
    )


def assert_names_on_one_line(received: str) -> None:
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", received)  # colours off
    assert not [line for line in shown.splitlines() if line.startswith(FORGED)], shown
    assert f"create_file {SHOWN}" in shown  # the call's header
    assert f"+++ b/{SHOWN}" in shown  # the diff's header
    assert TOUCHED in shown  # the name bash made, in its checkpoint


@pytest.mark.usefixtures("sandbox_image")
def test_a_file_name_cannot_forge_a_line_in_verbose_output(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    script = names_script(tmp_path / "model.jsonl")
    ran = subprocess.run(
        [PONDER, "-p", "-v", "--model", f"scripted:{script}", "make them"],
        env=user_env, cwd=workspace, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert_names_on_one_line(ran.stderr)
    assert (workspace / CREATED).read_text() == "hi\n"  # the files are as the model made them
    assert (workspace / f"y\n{FORGED}").exists()


@pytest.mark.usefixtures("sandbox_image")
def test_a_file_name_cannot_forge_a_line_in_line_mode_or_its_approvals(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    script = names_script(tmp_path / "model.jsonl")
    child = pexpect.spawn(
        PONDER, ["--plain", "--approval", "ask", "--model", f"scripted:{script}", "make them"],
        env=user_env | {"TERM": "xterm"}, cwd=str(workspace), encoding="utf-8", timeout=60,
        dimensions=(40, 120),
    )  # fmt: skip
    shown = ""
    for _ in range(2):  # create_file, then bash
        child.expect_exact("[m]essage: ")
        shown += child.before + child.after
        child.send("y\r")
    child.expect(pexpect.EOF)
    child.close()
    shown += child.before
    assert child.exitstatus == 0, shown
    assert_names_on_one_line(shown)
    assert f"\n+++ b/{SHOWN}\r\n" in shown  # the diff the approval asks about, its name one line


@pytest.mark.usefixtures("sandbox_image")
def test_the_tui_shows_a_file_name_on_one_line(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    script = names_script(tmp_path / "model.jsonl")
    command = [PONDER, "--approval", "ask", "--model", f"scripted:{script}", "make them"]
    with terminal([*command, "--workspace", str(workspace)], user_env) as pane:
        asked = pane.wait_for("[n] deny")
        pane.send("y")
        pane.wait_for("bash needs approval")
        pane.send("y")
        screen = pane.wait_for("Made them.")
        pane.send("C-q")
        pane.wait_for("EXIT=0", timeout=30)
    assert f"+++ b/{SHOWN}" in asked  # the approval card's diff
    assert f"create_file {SHOWN}" in screen, screen  # the tool card
    assert f"edited {SHOWN}" in screen  # the diff's title
    assert TOUCHED in screen  # the checkpoint
    for text in (asked, screen):  # the forged text only ever follows its name's first half
        assert re.search(f"(?<!␊){re.escape(FORGED)}", text) is None, text
