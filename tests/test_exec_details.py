"""What CI jobs ask of ``ponder exec``: the session id to continue from, the run's usage and
cost, and a final answer as JSON that matches a schema."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import PONDER
from k2text import completion, tool_call, write_script

from ponder.app.config import Config, load_config
from ponder.app.models import open_model
from ponder.app.session_options import SessionOptions
from ponder.runtime.events import MessageAdded, RunFinished, RunStarted, event_from_json

LOOK = completion("Look first.", tool_call("bash", 0, {"command": "echo looked"}))


def ponder_exec(
    workspace: Path, env: dict[str, str], script: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PONDER, "exec", *args, "--model", f"scripted:{script}", "--sandbox", "local"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_the_session_id_usage_and_cost_let_ci_continue_and_count(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    config = Path(user_env["XDG_CONFIG_HOME"]) / "ponder" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        '[models."first.jsonl"]\ninput_per_million = 2.0\noutput_per_million = 10.0\n'
    )
    first = write_script(tmp_path / "first.jsonl", LOOK, completion("Seen.", content="Looked."))
    result = ponder_exec(workspace, user_env, first, "--json", "look")
    assert result.returncode == 0, result.stderr
    events = [event_from_json(line) for line in result.stdout.splitlines()]
    started, finished = events[0], events[-1]
    assert isinstance(started, RunStarted)
    assert isinstance(finished, RunFinished)
    assert started.session_id
    usage = finished.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.wall_s > 0
    expected = (usage.prompt_tokens * 2.0 + usage.completion_tokens * 10.0) / 1e6
    assert usage.cost_usd == pytest.approx(expected)
    assert "ponder: session" not in result.stderr  # with --json the events carry it all
    result = ponder_exec(workspace, user_env, first, "look")  # for a person: one line at the end
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("ponder: session ")
    assert " · 2 steps · " in summary
    assert "continue with: ponder exec --resume " in summary
    assert summary.split(" · ")[-2].startswith("$")
    # The id continues the conversation from another CI step.
    follow = write_script(tmp_path / "follow.jsonl", completion("Again.", content="Still fine."))
    result = ponder_exec(
        workspace, user_env, follow, "--json", "--resume", started.session_id, "and now?"
    )
    assert result.returncode == 0, result.stderr
    events = [event_from_json(line) for line in result.stdout.splitlines()]
    assert events[0].session_id == started.session_id  # type: ignore[union-attr]
    said = [e.message["content"] for e in events if isinstance(e, MessageAdded)]
    assert said[0] == "and now?"  # the earlier messages are the context, not repeated
    assert events[-1].usage.cost_usd is None  # type: ignore[union-attr]  # no prices for it


SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"enum": ["pass", "fail"]}, "count": {"type": "integer"}},
    "required": ["verdict", "count"],
}


def test_an_output_schema_gets_validated_json_or_a_failure(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    wrong_then_right = write_script(
        tmp_path / "retry.jsonl",
        completion("Answer.", content='{"verdict": "maybe", "count": 1}'),
        completion("Fix it.", content='```json\n{"verdict": "pass", "count": 3}\n```'),
    )
    result = ponder_exec(workspace, user_env, wrong_then_right, "--output-schema", str(schema),
                         "judge")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"verdict": "pass", "count": 3}
    never = write_script(
        tmp_path / "never.jsonl", *[completion("Prose.", content="It passed.")] * 3
    )
    result = ponder_exec(workspace, user_env, never, "--output-schema", str(schema), "judge")
    assert result.returncode == 1
    assert "does not match --output-schema (it is not JSON" in result.stderr
    # The README's promise: a wrong answer goes back to the model twice (three answers in all).
    streamed = ponder_exec(
        workspace, user_env, never, "--json", "--output-schema", str(schema), "j"
    )
    assert streamed.stdout.count('"type":"run_started"') == 3
    # Issue 24, 3: the stream says each answer was refused, and the failure is final.
    events = [json.loads(line) for line in streamed.stdout.splitlines()]
    rejected = [e["retrying"] for e in events if e["type"] == "answer_rejected"]
    assert rejected == [True, True, False]
    assert events[-1]["type"] == "answer_rejected"
    assert streamed.returncode == 1
    assert "does not match --output-schema" in streamed.stderr  # a CI log says why
    # The summary counts all three tries, not only the last.
    assert "· 3 steps ·" in result.stderr
    listed = subprocess.run([PONDER, "sessions"], cwd=workspace, env=user_env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert listed.stdout.splitlines()[0].split("\t")[2] == "error"  # not "answered"
    schema.write_text('{"type": 12}')
    result = ponder_exec(workspace, user_env, never, "--output-schema", str(schema), "judge")
    assert result.returncode == 2
    assert "is not a JSON Schema" in result.stderr


def test_the_model_table_sets_a_servers_context_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(  # context_window: the name older configs used
        'model = "openai:http://127.0.0.1:9/v1#kimi-k2-thinking"\n'
        "[models.kimi-k2-thinking]\ncontext_window = 131072\n"
    )
    monkeypatch.setenv("PONDER_CONFIG", str(config_file))
    backend = open_model(load_config())
    try:
        assert (backend.context_size, backend.context_source) == (131072, "configured")
    finally:
        backend.close()


def test_a_server_that_does_not_say_its_context_gets_a_stated_assumption() -> None:
    # Nothing listens on port 9: the server cannot say, so ponder assumes, and says so.
    backend = open_model(Config(session=SessionOptions(model="openai:http://127.0.0.1:9/v1#m")))
    try:
        assert backend.context_size == 262_144
        assert backend.context_source.startswith("assumed: neither the configuration nor")
    finally:
        backend.close()
