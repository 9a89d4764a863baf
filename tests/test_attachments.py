"""`@path` in a task: the file goes to the model with it. What the sandbox may have planted in
the workspace (a link to a host file, a FIFO) is never read, and nothing hangs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PONDER
from k2text import completion, write_script

from ponder.runtime.attachments import FILE_LIMIT, attach_mentions


def test_named_files_are_attached_and_what_is_not_is_said(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "stats.py").write_text("def mean(xs):\n    return sum(xs)\n")
    (workspace / "big.log").write_text("x" * (FILE_LIMIT + 10))
    (workspace / "blob.bin").write_bytes(b"\0\1\2")
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (workspace / "link.txt").symlink_to(secret)
    os.mkfifo(workspace / "pipe")
    task = (
        "fix @src/stats.py, see @big.log and @blob.bin; not @link.txt, @pipe, @nope.py "
        "or mail@example.com."
    )
    attached = attach_mentions(task, workspace)
    assert attached.files == ["src/stats.py", "big.log"]
    assert '<file path="src/stats.py">\ndef mean(xs):\n    return sum(xs)\n\n</file>' in (
        attached.text
    )
    assert "host secret" not in attached.text
    assert attached.notes == [
        "@big.log cut at 64 KB",
        "@blob.bin is binary; not attached",
        "@link.txt is not a regular file; not attached",  # a link is never followed
        "@pipe is not a regular file; not attached",
    ]


@pytest.mark.usefixtures("sandbox_image")
def test_the_model_gets_the_file_and_the_person_is_told(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    (workspace / "notes.md").write_text("the answer is 42\n")
    script = write_script(tmp_path / "s.jsonl", completion("Read it.", content="42"))
    ran = subprocess.run(
        [PONDER, "exec", "--json", "what does @notes.md say?", "--model", f"scripted:{script}"],
        env=user_env, cwd=workspace, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    (note,) = [e for e in events if e["type"] == "files_attached"]
    assert note["files"] == ["notes.md"]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["task"] == "what does @notes.md say?"  # the task as typed
    user = next(
        e["message"]["content"]
        for e in events
        if e["type"] == "message_added" and e["message"]["role"] == "user"
    )
    assert user.endswith('<file path="notes.md">\nthe answer is 42\n\n</file>')


def test_paths_that_leave_the_workspace_are_never_read(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    (workspace / ".git" / "config").write_text("[core] secret")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "key.pem").write_text("private key")
    (workspace / "docs").symlink_to(outside)  # a directory link on the way
    task = "see @../outside/key.pem @docs/key.pem @.git/config @/etc/passwd"
    attached = attach_mentions(task, workspace)
    assert (attached.files, attached.text) == ([], "")
