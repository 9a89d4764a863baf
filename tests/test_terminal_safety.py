"""No escape sequence from the model, a command or a file name reaches the user's terminal.

The sanitizer on its own, then every path that prints a run, checked on the raw bytes a real
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

from ponder.sandbox.safe_text import safe_text

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
