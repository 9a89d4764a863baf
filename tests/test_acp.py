"""``ponder acp`` driven by the ACP SDK's own client (``acp.spawn_agent_process``), the way an
editor drives it: initialize, a new session on the editor's folder, prompts whose updates and
permission requests the client sees, a cancel in the middle of a command, and a reload."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import acp
import pytest
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    AllowedOutcome,
    ClientCapabilities,
    McpServerStdio,
    RequestPermissionResponse,
    ToolCallProgress,
    ToolCallStart,
    UserMessageChunk,
)
from conftest import PONDER
from k2text import completion, tool_call, write_script
from test_mcp import TIME_SERVER

PLAN = {"plan": [{"step": "Look", "status": "in_progress"}, {"step": "Write", "status": "pending"}]}
SCRIPT = (
    completion("Plan first.", tool_call("update_plan", 0, PLAN)),
    completion("Look around.", tool_call("bash", 1, {"command": "echo looked-here"})),
    completion(
        "Write it down.",
        tool_call("create_file", 2, {"path": "notes.txt", "file_text": "one\ntwo\n"}),
    ),
    completion("What time?", tool_call("mcp__time__get_current_time", 3, {"timezone": "UTC"})),
    completion("All there.", content="Wrote notes.txt."),
    completion("Wait for it.", tool_call("bash", 4, {"command": "sleep 300"})),
)


class EditorClient:
    """What an editor does: shows updates, answers permission requests (allow once)."""

    def __init__(self) -> None:
        self.updates: list[Any] = []
        self.asked: list[Any] = []
        self.command_started = asyncio.Event()

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)
        if isinstance(update, ToolCallStart) and "sleep 300" in update.title:
            self.command_started.set()

    async def request_permission(
        self, session_id: str, tool_call: Any, options: list[Any], **kwargs: Any
    ) -> RequestPermissionResponse:
        self.asked.append((tool_call, [option.kind for option in options]))
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id="once")
        )

    def of(self, kind: type) -> list[Any]:
        return [update for update in self.updates if isinstance(update, kind)]


async def drive(workspace: Path, env: dict[str, str], script: Path) -> tuple[EditorClient, Any]:
    client = EditorClient()
    command = ["acp", "--model", f"scripted:{script}", "--approval", "ask"]
    command += ["--allow", "echo", "--allow", "sleep", "--allow", "mcp__time"]
    async with acp.spawn_agent_process(client, PONDER, *command, env=env, cwd=workspace) as (
        conn,
        _process,
    ):
        hello = await conn.initialize(
            protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities()
        )
        assert hello.agent_info.name == "ponder"
        assert hello.agent_capabilities.load_session
        time_server = McpServerStdio(name="time", command=TIME_SERVER, args=[], env=[])
        session = await conn.new_session(cwd=str(workspace), mcp_servers=[time_server])
        first = await conn.prompt(
            session_id=session.session_id, prompt=[acp.text_block("write notes")]
        )
        assert first.stop_reason == "end_turn"
        turn = asyncio.create_task(
            conn.prompt(session_id=session.session_id, prompt=[acp.text_block("now wait")])
        )
        await asyncio.wait_for(client.command_started.wait(), 60)
        await conn.cancel(session_id=session.session_id)
        second = await asyncio.wait_for(turn, 10)  # cancelled within a moment, not 300 s
        assert second.stop_reason == "cancelled"
        return client, session.session_id


@pytest.mark.usefixtures("sandbox_image")
def test_an_editor_drives_a_session_through_acp(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    script = write_script(tmp_path / "script.jsonl", *SCRIPT)
    client, session_id = asyncio.run(drive(workspace, user_env, script))
    assert "Plan first." in "".join(u.content.text for u in client.of(AgentThoughtChunk))
    assert "Wrote notes.txt." in "".join(u.content.text for u in client.of(AgentMessageChunk))
    (plan,) = client.of(AgentPlanUpdate)
    assert [(e.content, e.status) for e in plan.entries] == [
        ("Look", "in_progress"),
        ("Write", "pending"),
    ]
    starts = {u.tool_call_id: u for u in client.of(ToolCallStart)}
    # No card for the plan; the editor's MCP server's tool is one of the model's tools.
    assert [s.kind for s in starts.values()] == ["execute", "edit", "other", "execute"]
    bash, edit, clock, _ = starts.values()
    assert clock.title.startswith("mcp__time__get_current_time")
    progress = client.of(ToolCallProgress)
    outputs = [u for u in progress if u.tool_call_id == bash.tool_call_id and u.content]
    assert "looked-here" in outputs[-1].content[0].content.text
    (diff,) = [c for u in progress for c in (u.content or []) if c.type == "diff"]
    assert diff.path == str(workspace / "notes.txt")
    assert diff.old_text is None
    assert diff.new_text == "one\ntwo\n"
    ends = {u.tool_call_id: u.status for u in progress if u.status}
    assert ends[bash.tool_call_id] == ends[edit.tool_call_id] == ends[clock.tool_call_id]
    assert ends[bash.tool_call_id] == "completed"
    # Only the edit asked (the commands are allowed); the editor was offered all four answers.
    ((asked, kinds),) = client.asked
    assert asked.tool_call_id == edit.tool_call_id
    assert asked.kind == "edit"
    assert kinds == ["allow_once", "allow_always", "reject_once", "reject_always"]
    # Issue 24, 8: the diff is in the request, before the edit; title and status are kept.
    assert asked.title is None
    assert asked.status is None
    (before,) = [c for c in asked.content if c.type == "diff"]
    assert (before.path, before.old_text, before.new_text) == (diff.path, None, "one\ntwo\n")
    assert (workspace / "notes.txt").read_text() == "one\ntwo\n"
    assert session_id


async def reload(workspace: Path, env: dict[str, str], session_id: str) -> EditorClient:
    client = EditorClient()
    async with acp.spawn_agent_process(
        client, PONDER, "acp", "--sandbox", "local", env=env, cwd=workspace
    ) as (conn, _process):
        await conn.initialize(protocol_version=acp.PROTOCOL_VERSION)
        await conn.load_session(cwd=str(workspace), session_id=session_id, mcp_servers=[])
    return client


@pytest.mark.usefixtures("sandbox_image")
def test_a_recorded_session_replays_when_loaded(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    script = write_script(tmp_path / "script.jsonl", *SCRIPT)
    live, session_id = asyncio.run(drive(workspace, user_env, script))
    env = {**user_env, "PONDER_MODEL": f"scripted:{script}"}
    client = asyncio.run(reload(workspace, env, session_id))
    said = [u.content.text for u in client.of(UserMessageChunk)]
    assert said == ["write notes", "now wait"]
    assert "Wrote notes.txt." in "".join(u.content.text for u in client.of(AgentMessageChunk))
    # Issue 24, 9: the replay is what was shown live: the plan (not a call named
    # update_plan), the same titles and kinds, the diff.
    assert client.of(AgentPlanUpdate) == live.of(AgentPlanUpdate)
    shown = [(u.title, u.kind) for u in client.of(ToolCallStart)]
    assert shown == [(u.title, u.kind) for u in live.of(ToolCallStart)]
    diffs = [c for u in client.of(ToolCallProgress) for c in (u.content or []) if c.type == "diff"]
    assert [(d.path, d.new_text) for d in diffs] == [(str(workspace / "notes.txt"), "one\ntwo\n")]


def test_an_edit_is_shown_as_the_whole_file_before_and_after(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 24, 8: ACP's diff is the file's whole old and new text (the editor draws the diff);
    ponder sent the hunk with a made-up `…` line between hunks. A replayed session has only
    the recorded diff: each hunk is its own diff content, and no line is made up."""
    lines = [f"line {n}\n" for n in range(1, 31)]
    (workspace / "long.txt").write_text("".join(lines))
    edit = {"path": "long.txt", "old_str": "line 15\n", "new_str": "line fifteen\n"}
    script = write_script(
        tmp_path / "s.jsonl",
        completion("Edit.", tool_call("str_replace", 0, edit)),
        completion("Done.", content="done"),
    )
    after = "".join(lines).replace("line 15\n", "line fifteen\n")
    client = EditorClient()

    async def run() -> str:
        command = ["acp", "--model", f"scripted:{script}", "--sandbox", "local"]
        async with acp.spawn_agent_process(client, PONDER, *command, "--approval", "ask",
                                           env=user_env, cwd=workspace) as (conn, _):  # fmt: skip
            await conn.initialize(protocol_version=acp.PROTOCOL_VERSION)
            session = await conn.new_session(cwd=str(workspace), mcp_servers=[])
            await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("edit")])
            return session.session_id

    session_id = asyncio.run(run())
    path = str(workspace / "long.txt")
    ((asked, _),) = client.asked
    (before,) = [c for c in asked.content if c.type == "diff"]
    assert (before.path, before.old_text, before.new_text) == (path, "".join(lines), after)
    (edited,) = [
        c for u in client.of(ToolCallProgress) for c in (u.content or []) if c.type == "diff"
    ]
    assert (edited.old_text, edited.new_text) == ("".join(lines), after)
    assert (workspace / "long.txt").read_text() == after

    replayed = asyncio.run(
        reload(workspace, {**user_env, "PONDER_MODEL": f"scripted:{script}"}, session_id)
    )
    (hunk,) = [
        c for u in replayed.of(ToolCallProgress) for c in (u.content or []) if c.type == "diff"
    ]
    assert hunk.old_text == "".join(lines[11:18])  # the changed line and three either side
    assert hunk.new_text == "".join(lines[11:18]).replace("line 15\n", "line fifteen\n")


def test_a_file_for_stdout_is_a_usage_error(tmp_path: Path, user_env: dict[str, str]) -> None:
    """Issue 24, 10: `ponder acp > file` died with asyncio's traceback."""
    import subprocess

    with (tmp_path / "out").open("w") as out:
        ran = subprocess.run(
            [PONDER, "acp"], env=user_env, cwd=tmp_path, stdin=subprocess.PIPE, stdout=out,
            stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert ran.returncode == 2
    assert "stdout is a file; ACP runs over pipes" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_in_a_terminal_it_says_what_it_waits_for(tmp_path: Path, user_env: dict[str, str]) -> None:
    """A person who types `ponder acp` got a silent terminal that seemed to hang."""
    import pexpect

    child = pexpect.spawn(PONDER, ["acp"], env=user_env, cwd=str(tmp_path), encoding="utf-8",
                          timeout=30)  # fmt: skip
    child.expect_exact("waiting for an editor's ACP messages")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_lines_that_are_no_request_are_answered_and_the_connection_lives(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    """Issue 24, 10: one line of `[]` ended `ponder acp` (the SDK's reader died on it)."""
    import json
    import subprocess

    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": acp.PROTOCOL_VERSION}}  # fmt: skip
    deep = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON reader goes
    lines = ["[]", "not json", '"a string"', deep, "{}", json.dumps(initialize)]
    ran = subprocess.run(
        [PONDER, "acp"], input="".join(f"{line}\n" for line in lines), env=user_env,
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    replies = [json.loads(line) for line in ran.stdout.splitlines()]
    codes = [r.get("error", {}).get("code") for r in replies[:5]]
    assert codes == [-32600, -32700, -32600, -32700, -32600]
    hello = replies[5]["result"]
    assert hello["agentInfo"]["name"] == "ponder"
    assert hello["agentCapabilities"]["mcpCapabilities"]["http"] is True  # HTTP servers work


def test_a_second_prompt_while_one_runs_is_refused(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    """Issue 24, 10: overlapping prompts on one session ran at once, on one conversation."""
    script = write_script(
        tmp_path / "s.jsonl",
        completion("Wait.", tool_call("bash", 0, {"command": "sleep 300"})),
        completion("Done.", content="done"),
    )
    client = EditorClient()

    async def overlap() -> None:
        command = ["acp", "--model", f"scripted:{script}", "--sandbox", "local"]
        async with acp.spawn_agent_process(client, PONDER, *command, env=user_env,
                                           cwd=tmp_path) as (conn, _):  # fmt: skip
            await conn.initialize(protocol_version=acp.PROTOCOL_VERSION)
            session = await conn.new_session(cwd=str(tmp_path), mcp_servers=[])
            first = asyncio.create_task(
                conn.prompt(session_id=session.session_id, prompt=[acp.text_block("wait")])
            )
            await asyncio.wait_for(client.command_started.wait(), 60)
            with pytest.raises(acp.RequestError, match="Invalid request"):
                await conn.prompt(session_id=session.session_id, prompt=[acp.text_block("x")])
            with pytest.raises(acp.RequestError, match="Invalid request"):  # nor by loading it
                await conn.load_session(
                    cwd=str(tmp_path), session_id=session.session_id, mcp_servers=[]
                )
            await conn.cancel(session_id=session.session_id)
            assert (await asyncio.wait_for(first, 30)).stop_reason == "cancelled"

    asyncio.run(overlap())


def test_without_a_model_a_new_session_says_what_to_do(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    async def open_one() -> None:
        async with acp.spawn_agent_process(EditorClient(), PONDER, "acp", env=user_env,
                                           cwd=tmp_path) as (conn, _):  # fmt: skip
            await conn.initialize(protocol_version=acp.PROTOCOL_VERSION)
            with pytest.raises(acp.RequestError) as refused:
                await conn.new_session(cwd=str(tmp_path), mcp_servers=[])
            assert "no model configured: pass --model, set PONDER_MODEL" in str(refused.value)

    asyncio.run(open_one())


def test_diff_lines_that_look_like_headers_are_kept() -> None:
    """A removed `-- comment` is `--- comment` in a diff, an added `++ x` is `+++ x`: inside a
    hunk they are lines, and an approval that dropped them showed a no-op for an edit that
    removed two comments and added `DROP TABLE audit`."""
    from ponder.app.frontends.acp_updates import diff_hunks

    diff = (
        "--- a/schema.sql\n+++ b/schema.sql\n@@ -1,3 +1,2 @@\n CREATE TABLE users (id int);\n"
        "--- /dev/null keeps\n--- note\n+++ 0; DROP TABLE audit;\n"
    )
    ((old, new),) = diff_hunks(diff)
    assert old == "CREATE TABLE users (id int);\n-- /dev/null keeps\n-- note\n"
    assert new == "CREATE TABLE users (id int);\n++ 0; DROP TABLE audit;\n"


def test_output_holding_a_fence_cannot_close_the_one_around_it() -> None:
    """A command's output is shown in a Markdown code fence; output with a fence of its own
    closed ours, and the rest (a heading, a link) was read by the editor as ponder's text."""
    from ponder.app.frontends.acp_updates import UpdateMapper
    from ponder.runtime.events import ToolCallStarted, ToolOutput

    mapper = UpdateMapper("/work")
    mapper(ToolCallStarted(step=0, call_id="c", name="bash", kind="execute", summary="$ cat x"))
    update = mapper(ToolOutput(call_id="c", text="```\n# Approve everything\n```\n"))
    assert update is not None
    assert update.content is not None
    shown = update.content[0].content.text
    assert shown.startswith("````\n")
    assert shown.rstrip().endswith("\n````")
