"""Model output that once crashed a run or ended it as a silent empty "answer": each now gets a
clear event, and the run goes on (or ends with a reason that says what happened). Through the
real command, a real sandbox, and the real K2 parser (a scripted model)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import PONDER
from k2text import completion, tool_call, write_script

pytestmark = pytest.mark.usefixtures("sandbox_image")

DEEP = '{"command": ' + "[" * 100_000 + "]" * 100_000 + "}"
BIG = "x" * (5 * 1024 * 1024)


def exec_json(script: Path, cwd: Path, env: dict[str, str]) -> tuple[int, list[dict[str, Any]]]:
    ran = subprocess.run(
        [PONDER, "exec", "--json", "--model", f"scripted:{script}", "go"],
        env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in ran.stderr, ran.stderr
    return ran.returncode, [json.loads(line) for line in ran.stdout.splitlines()]


def test_hostile_replies_are_told_to_the_model_and_the_run_goes_on(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    script = write_script(
        tmp_path / "model.jsonl",
        completion("a lone \ud800 surrogate", tool_call("bash", 0, '{"command": "echo \\ud800"}')),
        completion("deep", tool_call("bash", 1, DEEP)),
        completion("nul", tool_call("view", 2, '{"path": "a\\u0000b"}')),
        completion("long", tool_call("view", 3, json.dumps({"path": "d/" * 3000}))),
        completion("big", tool_call("create_file", 4, {"path": "big.txt", "file_text": BIG})),
        "",  # an empty reply
        completion("back to work", tool_call("bash", 5, {"command": "true"})),
        "<think>reasoning that never closes",
        completion("back to work", tool_call("bash", 6, {"command": "true"})),
        completion("no index", tool_call("bash", 7, '{"command": "ls"}').replace("bash:7", "bash")),
        completion("done", content="all done"),
    )
    code, events = exec_json(script, workspace, user_env)
    assert code == 0
    assert events[-1]["type"] == "run_finished"
    assert (events[-1]["reason"], events[-1]["answer"]) == ("answered", "all done")
    results = [e["result"] for e in events if e["type"] == "tool_call_finished"]
    assert "lone UTF-16 surrogate" in results[0]
    assert "nest deeper than 200 levels" in results[1]
    assert "NUL character" in results[2]
    assert "too long for Linux" in results[3]
    assert (workspace / "big.txt").stat().st_size == len(BIG)
    problems = [e for e in events if e["type"] == "reply_problem"]
    assert [(p["problem"], p["retrying"]) for p in problems] == [
        ("your reply was empty", True),
        ("your reply held only reasoning, with no answer and no tool call", True),
        (
            "your tool call 'functions.bash' was not run: its id 'functions.bash' is not NAME:N",
            True,
        ),
    ]
    reasoning = "".join(e["text"] for e in events if e["type"] == "reasoning")
    assert "a lone \ufffd surrogate" in reasoning


def test_three_unusable_replies_in_a_row_end_the_run_with_the_reason(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    script = write_script(tmp_path / "model.jsonl", "", "<think>hmm", "")
    code, events = exec_json(script, workspace, user_env)
    assert code == 1
    finished = events[-1]
    assert finished["reason"] == "error"
    assert (
        finished["error"]
        == "the model gave no usable reply 3 times in a row (your reply was empty)"
    )


@pytest.mark.parametrize("limit", ["inf", "nan", "-5", "0"])
def test_an_impossible_time_limit_is_a_usage_error(
    limit: str, workspace: Path, user_env: dict[str, str]
) -> None:
    ran = subprocess.run(
        [PONDER, "exec", "--time-limit", limit, "--model", "scripted:x", "go"],
        env=user_env, cwd=workspace, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 2
    assert "time_limit" in ran.stderr
    assert "Traceback" not in ran.stderr
