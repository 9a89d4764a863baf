"""Session files restore a run, even one killed mid-command; the session commands on top."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PONDER
from k2text import completion, tool_call, write_script

from ponder.model.messages import Message
from ponder.runtime.events import MessageAdded, RunStarted, ToolOutput
from ponder.runtime.sessions import (
    INTERRUPTED_RESULT,
    SessionRecorder,
    list_sessions,
    read_session,
    restore_messages,
)


def test_a_session_file_restores_the_conversation(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, {"workspace": "/w", "model": "m"})
    messages = [Message(role="system", content="sys"), Message(role="user", content="fix it")]
    assistant = Message.from_openai(
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "Look first.",
            "tool_calls": [
                {
                    "id": "functions.bash:0",
                    "type": "function",
                    "function": {"name": "bash", "arguments": '{"command": "ls"}'},
                },
                {
                    "id": "functions.view:1",
                    "type": "function",
                    "function": {"name": "view", "arguments": '{"path": "."}'},
                },
            ],
        }
    )
    messages.append(assistant)
    messages.append(
        Message(role="tool", content="a.py", tool_call_id="functions.bash:0", name="bash")
    )
    recorder(RunStarted(task="fix it", model="m", sandbox="s", max_steps=3))
    for message in messages:
        recorder(MessageAdded(message=message.to_openai()))
    recorder(ToolOutput(call_id="functions.view:1", text="partial"))
    recorder.close()
    with recorder.path.open("a") as handle:
        handle.write('{"type": "tool_out')  # a write a SIGKILL cut short

    header, events, _ = read_session(recorder.path)
    assert header["workspace"] == "/w"
    restored = restore_messages(events)
    assert restored[:4] == messages
    # The call the session died in is answered, so the conversation can go on.
    assert restored[4] == Message(
        role="tool", content=INTERRUPTED_RESULT, tool_call_id="functions.view:1", name="view"
    )
    (info,) = list_sessions(tmp_path)
    assert (info.id, info.task, info.status) == (recorder.id, "fix it", "incomplete")


def test_a_torn_session_resumes_with_everything_before_the_damage(tmp_path: Path) -> None:
    recorder = SessionRecorder(tmp_path, {"workspace": "/w", "model": "m"})
    recorder(RunStarted(task="fix it", model="m", sandbox="s", max_steps=3))
    recorder(MessageAdded(message={"role": "user", "content": "fix it"}))
    recorder.close()
    with recorder.path.open("a") as handle:
        handle.write('{"type": "message_added", "message": {"role": "assis')  # SIGKILL here

    resumed = SessionRecorder(tmp_path, {}, recorder.id)  # what --resume does
    resumed(MessageAdded(message={"role": "user", "content": "go on"}))
    resumed.close()
    with recorder.path.open("a") as handle:
        handle.write("garbage \x00 that is not JSON\n[1, 2]\n")
    resumed = SessionRecorder(tmp_path, {}, recorder.id)
    resumed(MessageAdded(message={"role": "user", "content": "and finish"}))
    resumed.close()

    header, events, skipped = read_session(recorder.path)
    assert header["workspace"] == "/w"
    assert skipped == 3  # the torn line, the garbage line and the list
    contents = [m.content for m in restore_messages(events)]
    assert contents == ["fix it", "go on", "and finish"]
    (info,) = list_sessions(tmp_path)
    assert (info.id, info.task) == (recorder.id, "fix it")


def test_one_bad_file_never_hides_the_other_sessions(tmp_path: Path) -> None:
    good = SessionRecorder(tmp_path, {"workspace": "/w", "model": "m"}, "20260101-000000-aaaaaa")
    good(RunStarted(task="the good one", model="m", sandbox="s", max_steps=3))
    good.close()
    (tmp_path / "20260102-000000-bbbbbb.jsonl").write_text("[1,2]\n")
    (tmp_path / "20260103-000000-cccccc.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "20260104-000000-dddddd.jsonl").write_text('{"type": "session", "id": "../../x"}\n')

    listed = {info.id: info for info in list_sessions(tmp_path)}
    assert listed["20260101-000000-aaaaaa"].task == "the good one"
    assert set(listed) == {
        "20260101-000000-aaaaaa",
        "20260102-000000-bbbbbb",
        "20260103-000000-cccccc",
        "20260104-000000-dddddd",  # named by its file, never by the id written inside it
    }
    with pytest.raises(ValueError, match="not a session id"):
        SessionRecorder(tmp_path, {}, "../../x")


def ponder(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PONDER, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.usefixtures("sandbox_image")
def test_resume_after_sigkill_then_export_undo_and_diff(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    first = write_script(
        tmp_path / "first.jsonl",
        completion("Note it.", tool_call("bash", 0, {"command": "echo one > one.txt"})),
        completion("Wait.", tool_call("bash", 1, {"command": "sleep 120"})),
    )
    killed = subprocess.Popen(
        [PONDER, "--plain", "--model", f"scripted:{first}", "first task"],
        env=user_env,
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    data = Path(user_env["HOME"]) / ".local" / "share" / "ponder" / "sessions"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        files = list(data.glob("*.jsonl"))
        if files and "sleep 120" in files[0].read_text():
            break
        time.sleep(0.2)
    else:
        pytest.fail("the session never reached the long command")
    time.sleep(0.5)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert (workspace / "one.txt").read_text() == "one\n"

    second = write_script(
        tmp_path / "second.jsonl",
        completion("Back.", tool_call("bash", 2, {"command": "echo two > two.txt && cat one.txt"})),
        completion("Done.", content="resumed and finished"),
    )
    resumed = ponder(
        "--plain",
        "--resume",
        "--model",
        f"scripted:{second}",
        "second task",
        env=user_env,
        cwd=workspace,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed and finished" in resumed.stdout

    listing = ponder("sessions", env=user_env, cwd=workspace)
    ((session_id, _, status, where, task),) = [
        line.split("\t") for line in listing.stdout.splitlines()
    ]
    assert (status, where, task) == ("answered", str(workspace), "first task")
    exported = json.loads(
        ponder("export", session_id, "--format", "json", env=user_env, cwd=workspace).stdout
    )
    messages = [e["message"] for e in exported["events"] if e["type"] == "message_added"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["first task", "second task"]
    assert exported["events"][0]["type"] == "run_started"
    markdown = ponder("export", session_id, env=user_env, cwd=workspace).stdout
    assert "## Task\n\nfirst task" in markdown
    assert "echo two > two.txt" in markdown

    diff = ponder("diff", env=user_env, cwd=workspace).stdout
    assert "+one" in diff
    assert "+two" in diff
    undone = ponder("undo", env=user_env, cwd=workspace)
    assert undone.returncode == 0, undone.stderr
    assert not (workspace / "two.txt").exists()
    assert (workspace / "one.txt").exists()


@pytest.mark.usefixtures("sandbox_image")
def test_ponder_diff_round_trips_through_git_apply(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """`ponder diff > p.diff; ponder undo; git apply p.diff` gives back the session's change:
    a file without a final newline, a rename, a new file and a binary file last."""
    (workspace / "note.txt").write_text("keep")
    (workspace / "old.txt").write_text("line\n" * 10)
    (workspace / "z.bin").write_bytes(b"\x00\x01zz")
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    subprocess.run(["git", "add", "-A"], cwd=workspace, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"],
                   cwd=workspace, check=True)  # fmt: skip
    change = (
        "printf 'changed' > note.txt; mv old.txt new.txt; printf 'fresh' > added.txt; "
        "printf '\\000\\007zz' > z.bin"
    )
    script = write_script(
        tmp_path / "s.jsonl",
        completion("Change.", tool_call("bash", 0, {"command": change})),
        completion("Done.", content="ok"),
    )
    ran = ponder("--plain", "--model", f"scripted:{script}", "go", env=user_env, cwd=workspace)
    assert ran.returncode == 0, ran.stderr
    after = {p.name: p.read_bytes() for p in workspace.iterdir() if p.is_file()}
    patch = tmp_path / "p.diff"
    with patch.open("wb") as out:
        subprocess.run([PONDER, "diff"], env=user_env, cwd=workspace, stdout=out, check=True)
    assert patch.read_bytes().endswith(b"\n\n")  # a binary patch ends with an empty line
    assert ponder("undo", env=user_env, cwd=workspace).returncode == 0
    assert (workspace / "z.bin").read_bytes() == b"\x00\x01zz"
    subprocess.run(["git", "apply", str(patch)], cwd=workspace, check=True)
    assert {p.name: p.read_bytes() for p in workspace.iterdir() if p.is_file()} == after


def test_resume_without_an_id_goes_on_with_this_workspace_s_session(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    """Not the newest session anywhere: the newest one of the workspace it is run in."""
    user_env["PONDER_SANDBOX"] = "local"  # sessions, not the sandbox: no engine needed
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    for workspace, word in ((here, "apple"), (there, "pear")):
        script = write_script(tmp_path / f"{word}.jsonl", completion("Ok.", content=f"{word}!"))
        ran = ponder("--plain", "--model", f"scripted:{script}", f"remember {word}",
                     env=user_env, cwd=workspace)  # fmt: skip
        assert ran.returncode == 0, ran.stderr
    echo = write_script(tmp_path / "echo.jsonl", completion("Ok.", content="again"))
    resumed = ponder("--plain", "--resume", "--model", f"scripted:{echo}", "and now?",
                     env=user_env, cwd=here)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    said = resumed.stdout + resumed.stderr
    assert said.count("resuming session") == 1  # once, with the conversation (it was twice)
    assert ": remember apple" in resumed.stdout
    assert "› remember apple" in resumed.stdout  # the conversation so far, then the new task
    assert "  apple!" in resumed.stdout
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    none = ponder("--plain", "--resume", "--model", f"scripted:{echo}", "x", env=user_env,
                  cwd=elsewhere)  # fmt: skip
    assert none.returncode == 2
    assert f"no session in {elsewhere} to resume" in none.stderr
    # Codex's shape for one-liners: `exec resume --last PROMPT` (the prompt is not an id).
    again = ponder("exec", "resume", "--last", "and now?", "--model", f"scripted:{echo}",
                   env=user_env, cwd=here)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert ": remember apple" in again.stderr
    assert again.stdout == "again\n"


def test_the_session_list_is_one_line_each_and_filters(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    user_env["PONDER_SANDBOX"] = "local"  # sessions, not the sandbox: no engine needed
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    script = write_script(tmp_path / "s.jsonl", completion("Ok.", content="ok"))
    piped = "".join(f"line {n} of a pasted file\n" for n in range(17))
    ran = subprocess.run(
        [PONDER, "-p", "--model", f"scripted:{script}", "summarise"], input=piped,
        env=user_env, cwd=here, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    plain = ponder("--plain", "--model", f"scripted:{script}", "x", env=user_env, cwd=there)
    assert plain.returncode == 0
    # Leaving an interactive session says how to come back to it.
    assert "continue it with: ponder --resume " in plain.stderr.splitlines()[-1]
    data = Path(user_env["HOME"]) / ".local" / "share" / "ponder" / "sessions"
    SessionRecorder(data, {"workspace": str(here)}).close()  # a TUI opened and left: no task

    listing = ponder("sessions", env=user_env, cwd=here).stdout.splitlines()
    assert len(listing) == 2  # one line each; the empty session is left out
    assert listing[1].split("\t")[4].endswith("…")  # the 17 lines became one
    assert len(ponder("sessions", "--all", env=user_env, cwd=here).stdout.splitlines()) == 3
    mine = ponder("sessions", "--workspace", ".", "--json", env=user_env, cwd=here).stdout
    (record,) = [json.loads(line) for line in mine.splitlines()]
    assert record["workspace"] == str(here)
    assert record["task"].startswith("summarise")
    assert len(ponder("sessions", "--limit", "1", env=user_env, cwd=here).stdout.splitlines()) == 1
    # The beginning of several ids (the help's own `ponder export 2026`) names them all.
    everything = ponder("sessions", "--all", env=user_env, cwd=here).stdout.splitlines()
    ids = [line.split("\t")[0] for line in everything]  # all three: made in one second or not
    shared = os.path.commonprefix(ids)  # noqa: RUF071 (ids, not paths: character by character)
    ran = subprocess.run(
        [PONDER, "export", shared], env=user_env, cwd=here, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 2
    assert f"{shared!r} begins 3 sessions' ids" in ran.stderr
    assert all(session_id in ran.stderr for session_id in ids)
