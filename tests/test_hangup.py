"""When the terminal goes away in the middle of a task (the window closed, the ssh link dropped)
ponder stops: the run ends, the sandbox goes, and the process is gone within seconds.

Issue 24, 0: the TUI went on running; on the hung-up terminal Textual's input thread spun on
end-of-file at 100% CPU, and the sandbox container stayed up until `ponder sandbox cleanup`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest
from conftest import PONDER
from k2text import completion, tool_call, write_script
from tmux import SESSION, Pane, terminal

from ponder.sandbox.docker_setup import LABEL


def ponder_in(pane: Pane) -> int:
    """The pid of ponder in the pane (the pane's shell runs it through `env`, which execs)."""
    shell = subprocess.run(
        [*pane.tmux, "display-message", "-p", "-t", SESSION, "#{pane_pid}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    (pid,) = children
    return int(pid)


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # exited; its parent has not read the status yet
            return True
        time.sleep(0.1)
    return False


def sandboxes(client: docker.DockerClient) -> set[str]:
    return {c.id for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"})}


@pytest.mark.parametrize("how", ["the terminal closes", "SIGHUP alone"])
@pytest.mark.parametrize("mode", [[], ["--plain"]], ids=["tui", "line"])
def test_the_task_the_sandbox_and_the_process_end(
    user_env: dict[str, str], docker_client: docker.DockerClient, sandbox_image: str,
    mode: list[str], how: str,
) -> None:  # fmt: skip
    before = sandboxes(docker_client)
    with terminal([PONDER, "demo", *mode], user_env) as pane:
        pane.wait_for("step 2", timeout=90)  # the task is running, in its sandbox
        pid = ponder_in(pane)
        ours = sandboxes(docker_client) - before
        assert ours
        if how == "SIGHUP alone":  # the terminal stays; only the signal comes
            os.kill(pid, signal.SIGHUP)
            pane.wait_for("EXIT=129", timeout=30)
        else:
            subprocess.run([*pane.tmux, "kill-session", "-t", SESSION], check=True)
        assert gone(pid, within=30), "ponder is still running"
    assert not ours & sandboxes(docker_client)  # the sandbox went with it


def one_liner(tmp_path: Path, command: str) -> tuple[Path, list[str]]:
    """A workspace and a `ponder exec` whose model runs ``command``, then answers "done"."""
    script = write_script(
        tmp_path / "s.jsonl",
        completion("Wait.", tool_call("bash", 0, {"command": command})),
        completion("Done.", content="done"),
    )
    workspace = tmp_path / "w"
    workspace.mkdir()
    return workspace, [PONDER, "exec", "--sandbox", "local", "--model", f"scripted:{script}", "go"]


def test_a_one_liner_stops_its_command(tmp_path: Path, user_env: dict[str, str]) -> None:
    """`ponder exec` told to hang up while its command runs: the command ends too."""
    workspace, command = one_liner(tmp_path, "echo $$ > pid; exec sleep 300")
    ran = subprocess.Popen(command, env=user_env, cwd=workspace, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (workspace / "pid").exists() or not (workspace / "pid").read_text():
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.1)
        sleeper = int((workspace / "pid").read_text())
        ran.send_signal(signal.SIGHUP)
        assert ran.wait(30) == 129
    finally:
        ran.kill()
    assert gone(sleeper, within=10)


@pytest.mark.parametrize("how", ["the pipes close", "SIGHUP"])
def test_acp_ends_when_the_editor_goes_away(
    tmp_path: Path, user_env: dict[str, str], how: str
) -> None:
    """The editor quits (or crashes) mid-prompt: its pipes close, and `ponder acp` stops the
    run, ends the sandbox's command and exits."""
    import asyncio

    import acp
    from acp.schema import ClientCapabilities

    workspace = tmp_path / "w"
    workspace.mkdir()
    script = write_script(
        tmp_path / "s.jsonl",
        completion("Wait.", tool_call("bash", 0, {"command": "echo $$ > pid; exec sleep 300"})),
    )

    class Editor:
        async def session_update(self, session_id: str, update: object, **kwargs: object) -> None:
            pass

    async def leave_mid_prompt() -> tuple[int, int]:
        command = ["acp", "--model", f"scripted:{script}", "--sandbox", "local"]
        async with acp.spawn_agent_process(
            Editor(), PONDER, *command, env=user_env, cwd=workspace
        ) as (conn, process):
            await conn.initialize(
                protocol_version=acp.PROTOCOL_VERSION, client_capabilities=ClientCapabilities()
            )
            session = await conn.new_session(cwd=str(workspace), mcp_servers=[])
            turn = asyncio.create_task(
                conn.prompt(session_id=session.session_id, prompt=[acp.text_block("go")])
            )
            pid_file = workspace / "pid"
            for _ in range(600):
                if pid_file.exists() and pid_file.read_text():
                    break
                await asyncio.sleep(0.1)
            sleeper = int(pid_file.read_text())
            if how == "SIGHUP":
                process.send_signal(signal.SIGHUP)
            else:
                process.stdin.close()  # the editor is gone
            code = await asyncio.wait_for(process.wait(), 30)
            turn.cancel()
            return code, sleeper

    code, sleeper = asyncio.run(leave_mid_prompt())
    assert code == (129 if how == "SIGHUP" else 0)
    assert gone(sleeper, within=10)


def test_under_nohup_a_hang_up_is_ignored(tmp_path: Path, user_env: dict[str, str]) -> None:
    """`nohup ponder exec ...` is asked to outlive its terminal: SIGHUP stays ignored."""
    workspace, command = one_liner(tmp_path, "echo $$ > pid; sleep 2")
    ran = subprocess.Popen(
        command, env=user_env, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (workspace / "pid").exists():
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.1)
    ran.send_signal(signal.SIGHUP)
    out, _ = ran.communicate(timeout=60)
    assert ran.returncode == 0
    assert out == "done\n"
