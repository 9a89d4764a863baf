"""One-liners and CI: ``ponder -p`` and ``ponder exec``, run as the installed command through
plain pipes and a real terminal (pexpect), with a real Docker sandbox."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pexpect
import pytest
from conftest import PONDER
from k2text import completion, tool_call, write_script

from ponder.runtime.checkpoints import PRIVATE_FILE_LIMIT
from ponder.runtime.events import (
    ApprovalResolved,
    Checkpointed,
    CheckpointsOff,
    MessageAdded,
    ModelRetrying,
    RunFinished,
    ToolCallFinished,
    event_from_json,
)
from ponder.runtime.sessions import list_sessions, read_session

pytestmark = pytest.mark.usefixtures("sandbox_image")

ANSWER = "The log shows **one** failure."
LOOK_THEN_ANSWER = [
    completion("Look first.", tool_call("bash", 0, {"command": "echo looked"})),
    completion("Seen enough.", content=ANSWER),
]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "script.jsonl"
    write_script(path, *LOOK_THEN_ANSWER)
    return path


def run(
    *args: str, env: dict[str, str], cwd: Path, stdin: int | str | None = None
) -> subprocess.CompletedProcess[str]:
    text = stdin if isinstance(stdin, str) else None
    return subprocess.run(
        [PONDER, *args],
        input=text,
        stdin=None if text is not None else stdin,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def session_task(env: dict[str, str]) -> str:
    """The user message of the only session recorded under this test's HOME."""
    directory = Path(env["HOME"]) / ".local" / "share" / "ponder" / "sessions"
    (info,) = list_sessions(directory)
    _, events, _ = read_session(info.path)
    (user,) = [
        e.message["content"]
        for e in events
        if isinstance(e, MessageAdded) and e.message["role"] == "user"
    ]
    return str(user)


def test_print_mode_answers_on_stdout_and_reads_piped_input(
    script: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    piped = "FAILED tests/test_x.py::test_one\n1 failed, 3 passed\n"
    result = run(
        "-p", "why did it fail?", "--model", f"scripted:{script}",
        env=user_env, cwd=workspace, stdin=piped,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"
    assert result.stderr == ""
    task = session_task(user_env)
    assert task.startswith("why did it fail?\n")
    assert piped.rstrip() in task
    # With -v the person sees the prompt and how much was piped, not the whole log again.
    shown = run(
        "-p", "-v", "why did it fail?", "--model", f"scripted:{script}",
        env=user_env, cwd=workspace, stdin=piped,
    ).stderr  # fmt: skip
    assert "task: why did it fail?  (+ 6 more lines)" in shown
    assert "1 failed, 3 passed" not in shown


def test_print_mode_verbose_shows_the_work_on_stderr(
    script: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    result = run(
        "-p", "-v", "look", "--model", f"scripted:{script}",
        env=user_env, cwd=workspace, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"
    assert "$ echo looked" in result.stderr
    assert "Look first." in result.stderr


def test_a_one_liner_points_at_ponder_undo_not_a_slash_command(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    long_line = "x" * 150
    made = write_script(
        tmp_path / "made.jsonl",
        completion("Make it.", tool_call("bash", 0, {"command": f"echo {long_line} > made.txt"})),
        completion("Made.", content="made"),
    )
    result = run(
        "-p", "-v", "make it", "--sandbox", "local", "--model", f"scripted:{made}",
        env=user_env, cwd=workspace, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "made.txt (`ponder undo` takes it back)" in result.stderr
    assert "/undo" not in result.stderr  # a one-liner takes no slash commands
    assert f"$ echo {long_line} > made.txt" in result.stderr  # into a pipe: not wrapped at 80


def test_print_mode_never_waits_on_a_terminal_or_a_closed_stdin(
    script: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    # A terminal on stdin: nothing is typed, and ponder must not wait for it.
    child = pexpect.spawn(
        PONDER,
        ["-p", "look", "--model", f"scripted:{script}"],
        env=user_env,
        cwd=str(workspace),
        encoding="utf-8",
        timeout=60,
    )
    child.expect_exact(ANSWER)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    # No stdin at all (closed before ponder starts).
    closed = subprocess.run(
        f"exec 0<&- && {PONDER} -p look --model scripted:{script}",
        shell=True,
        env=user_env,
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert closed.returncode == 0, closed.stderr
    assert closed.stdout == ANSWER + "\n"


def test_exec_json_is_the_event_stream(
    script: Path, workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    last = tmp_path / "last.md"
    result = run(
        "exec", "--json", "--output-last-message", str(last), "look",
        "--model", f"scripted:{script}", env=user_env, cwd=workspace, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [event_from_json(line) for line in result.stdout.splitlines()]
    assert events[0].type == "run_started"
    assert events[-1].model_copy(update={"usage": None}) == RunFinished(
        reason="answered", answer=ANSWER, steps=2
    )
    (call,) = [e for e in events if isinstance(e, ToolCallFinished)]
    assert call.result.startswith("looked\n")
    assert last.read_text() == ANSWER + "\n"


def test_exec_reads_the_task_from_stdin_only_when_asked(
    script: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    result = run(
        "exec", "-", "--model", f"scripted:{script}",
        env=user_env, cwd=workspace, stdin="the task, from a file\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"
    assert session_task(user_env) == "the task, from a file\n"


def test_exec_exit_codes(
    script: Path, workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    model = ["--model", f"scripted:{script}"]
    # 1: the task did not finish (the step limit came first).
    stopped = run("exec", "look", "--max-steps", "1", *model, env=user_env, cwd=workspace)
    assert stopped.returncode == 1
    assert stopped.stdout == ""
    assert "stopped after 1 step (--max-steps)" in stopped.stderr
    # 2: a usage error.
    assert run("exec", env=user_env, cwd=workspace).returncode == 2
    missing = run("exec", "look", "--model", "scripted:/nope.jsonl", env=user_env, cwd=workspace)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
    # 75: the backend cannot be reached (a closed port on this machine), so retry later.
    config = Path(user_env["XDG_CONFIG_HOME"]) / "ponder" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[openai]\nmax_retries = 1\n")
    unreachable = run(
        "exec", "--json", "look", "--model", "openai:http://127.0.0.1:9/v1#m",
        env=user_env, cwd=workspace,
    )  # fmt: skip
    assert unreachable.returncode == 75, unreachable.stderr
    events = [event_from_json(line) for line in unreachable.stdout.splitlines()]
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    assert (finished.reason, finished.retryable) == ("error", True)
    (retry,) = [e for e in events if isinstance(e, ModelRetrying)]  # told while it waited
    assert (retry.attempt, retry.attempts, retry.delay_s) == (1, 2, 1.0)
    assert "cannot reach http://127.0.0.1:9/v1" in retry.error
    line_mode = run(
        "--plain", "look", "--model", "openai:http://127.0.0.1:9/v1#m", env=user_env, cwd=workspace
    )
    assert "model: attempt 1 of 2 failed: cannot reach" in line_mode.stdout
    assert "trying again in 1 s" in line_mode.stdout


def test_exec_interrupted_by_ctrl_c_exits_130(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "slow.jsonl"
    slow = completion("Wait.", tool_call("bash", 0, {"command": "echo started; sleep 300"}))
    write_script(script, slow)
    child = subprocess.Popen(
        [PONDER, "exec", "--json", "wait", "--model", f"scripted:{script}"],
        env=user_env,
        cwd=workspace,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if '"tool_output"' in line:
            break
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 130
    finished = event_from_json(out.splitlines()[-1])
    assert isinstance(finished, RunFinished)
    assert finished.reason == "interrupted"


def test_exec_denies_what_needs_a_person(workspace: Path, user_env: dict[str, str]) -> None:
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    script = workspace.parent / "push.jsonl"
    lines = [
        completion("Publish.", tool_call("bash", 0, {"command": "git push origin main"})),
        completion("Cannot.", content="Not allowed to push."),
    ]
    write_script(script, *lines)
    result = run(
        "exec", "--json", "push it", "--model", f"scripted:{script}",
        env=user_env, cwd=workspace, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [event_from_json(line) for line in result.stdout.splitlines()]
    (resolved,) = [e for e in events if isinstance(e, ApprovalResolved)]
    assert (resolved.decision, resolved.by) == ("deny", "policy")
    (call,) = [e for e in events if isinstance(e, ToolCallFinished)]
    assert not call.ok


def test_a_reader_that_goes_away_stops_the_run(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "long.jsonl"
    slow = completion("Wait.", tool_call("bash", 0, {"command": "sleep 300"}))
    write_script(script, slow)
    shell = f"{PONDER} exec --json wait --model scripted:{script} </dev/null | head -1"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        env=user_env,
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,  # far less than the command would take: the run must stop by itself
        check=False,
    )
    assert json.loads(result.stdout)["type"] == "run_started"
    assert "Traceback" not in result.stderr


def test_exec_json_on_a_terminal_is_still_plain_json(
    script: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    child = pexpect.spawn(
        PONDER,
        ["exec", "--json", "look", "--model", f"scripted:{script}"],
        env={**user_env, "TERM": "xterm-256color"},
        cwd=str(workspace),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    lines = child.before.replace("\r\n", "\n").strip().split("\n")
    assert "\x1b" not in child.before  # no colours or cursor codes in the event stream
    last = event_from_json(lines[-1])
    assert last.model_copy(update={"usage": None}) == RunFinished(
        reason="answered", answer=ANSWER, steps=2
    )


def test_without_checkpoints_the_task_goes_on_and_says_why(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """Checkpoints are a safety net: a folder too big to walk at every step (a home directory)
    has none from the start, with the reason, and the task still runs to its end. Nothing a
    step writes turns them off (issue 22, 6): a flood of files is simply checkpointed."""
    big = tmp_path / "big"  # a home directory, say
    big.mkdir()
    for index in range(PRIVATE_FILE_LIMIT + 1):
        (big / f"f{index}").touch()
    answer = write_script(tmp_path / "a.jsonl", completion("Easy.", content="42"))
    at_start = run(
        "exec", "--json", "--model", f"scripted:{answer}", "what?", env=user_env, cwd=big
    )
    assert at_start.returncode == 0, at_start.stderr
    events = [event_from_json(line) for line in at_start.stdout.splitlines()]
    (off,) = [e for e in events if isinstance(e, CheckpointsOff)]
    assert "more than 20,000 files" in off.reason
    assert isinstance(events[-1], RunFinished)
    assert events[-1].reason == "answered"

    floods = write_script(  # a folder that is no project grows past what a start allows
        tmp_path / "b.jsonl",
        completion(
            "Oops.",
            tool_call(
                "bash",
                0,
                {"command": "mkdir m && (cd m && seq 20001 | xargs touch); echo x > f.txt"},
            ),
        ),
        completion("Done anyway.", content="Wrote f.txt."),
    )
    mid_task = run(
        "exec", "--json", "--model", f"scripted:{floods}", "write f", env=user_env, cwd=workspace
    )
    assert mid_task.returncode == 0, mid_task.stderr
    events = [event_from_json(line) for line in mid_task.stdout.splitlines()]
    assert not [e for e in events if isinstance(e, CheckpointsOff)]
    (step,) = [e for e in events if isinstance(e, Checkpointed)]
    assert step.files == ["f.txt", "m/"]  # a flooded folder is one line
    assert [c.count for c in step.changes] == [1, 20_001]
    assert (workspace / "f.txt").read_text() == "x\n"


def test_text_framed_for_the_model_is_not_shown_to_the_person(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """Issue 24, 17: `-v` printed "Here's the result of running `cat -n` ..." and the edit
    tool's advice to the model; the person sees the file's lines and the diff."""
    (workspace / "notes.txt").write_text("alpha\nbeta\n")
    script = write_script(
        tmp_path / "s.jsonl",
        completion("Look.", tool_call("view", 0, {"path": "notes.txt"})),
        completion("Fix.", tool_call("str_replace", 1,
                                     {"path": "notes.txt", "old_str": "beta", "new_str": "gamma"})),
        completion("Done.", content="done"),
    )  # fmt: skip
    result = run(
        "-p", "-v", "fix", "--sandbox", "local", "--model", f"scripted:{script}",
        env=user_env, cwd=workspace, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert re.search(r"^ +1 +alpha$", result.stderr, re.M)  # the file as viewed
    assert "+gamma" in result.stderr  # the edit as a diff
    assert "Here's the result" not in result.stderr
    assert "Review the changes" not in result.stderr
    (info,) = list_sessions(Path(user_env["HOME"]) / ".local" / "share" / "ponder" / "sessions")
    events = read_session(info.path)[1]
    (viewed,) = [e for e in events if isinstance(e, ToolCallFinished) and e.name == "view"]
    assert viewed.result.startswith("Here's the result of running `cat -n`")  # the model's
    assert viewed.for_person.startswith("     1\talpha")


def test_a_log_of_ponders_own_output_in_the_workspace_is_not_a_change(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """`ponder -p -v ... 2> err.txt` in the project: err.txt is ponder's own writing, not the
    session's change; it blocked `ponder undo` ("err.txt changed since this session's last
    step") and filled `ponder diff`."""
    (workspace / "hello.py").write_text("print('helo')\n")
    script = write_script(
        tmp_path / "s.jsonl",
        completion("Look.", tool_call("view", 0, {"path": "hello.py"})),
        completion("Fix.", tool_call("str_replace", 1,
                                     {"path": "hello.py", "old_str": "helo", "new_str": "hello"})),
        completion("Done.", content="fixed"),
    )  # fmt: skip
    command = [PONDER, "-p", "-v", "fix it", "--sandbox", "local", "--model", f"scripted:{script}"]
    with (workspace / "err.txt").open("w") as err, (workspace / "ans.txt").open("w") as out:
        ran = subprocess.run(command, env=user_env, cwd=workspace, stdout=out, stderr=err,
                             stdin=subprocess.DEVNULL, timeout=60, check=False)  # fmt: skip
    assert ran.returncode == 0, (workspace / "err.txt").read_text()
    log = (workspace / "err.txt").read_text()
    assert "checkpoint" in log
    assert "err.txt" not in log  # no checkpoint names it
    diff = run("diff", env=user_env, cwd=workspace)
    assert "hello.py" in diff.stdout
    assert "err.txt" not in diff.stdout
    assert "ans.txt" not in diff.stdout
    undone = run("undo", env=user_env, cwd=workspace)
    assert undone.returncode == 0, undone.stderr
    assert (workspace / "hello.py").read_text() == "print('helo')\n"
