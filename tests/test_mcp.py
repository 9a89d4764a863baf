"""MCP tools from real servers: ``mcp-server-time`` (PyPI) and the reference
``@modelcontextprotocol/server-everything`` (npm), over stdio and streamable HTTP, called by a
scripted model through ``ponder exec``; failing servers, policy, project servers, and where a
server starts (never in the workspace, unless its definition says so)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PONDER, only_one_worker
from k2text import completion, tool_call, write_script

from ponder.app.mcp_servers import workspace_code
from ponder.runtime.events import (
    Event,
    McpServersStarted,
    MessageAdded,
    ToolOutput,
    event_from_json,
)
from ponder.runtime.mcp_client import McpServerSpec

TIME_SERVER = str(Path(sys.executable).parent / "mcp-server-time")
WHERE_SERVER = """\
import os
from mcp.server import MCPServer

server = MCPServer("where")


@server.tool()
def where() -> str:
    '''The folder this server runs in.'''
    return os.getcwd()


server.run()
"""


EVERYTHING = "@modelcontextprotocol/server-everything@2026.8.31"


@pytest.fixture(scope="session")
def everything() -> str:
    """The reference MCP server from npm, installed once on this machine for every worker."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but npm is missing (Node 20 is part of the machine)")
        pytest.skip("npm is not installed")
    prefix = Path(tempfile.gettempdir()) / f"ponder-tests-{EVERYTHING.replace('/', '-')}"
    installed = prefix / "installed"  # written last: a half-done install is done again
    with only_one_worker("npm"):
        if not installed.exists():
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), EVERYTHING],
                check=True, capture_output=True, timeout=300,
            )  # fmt: skip
            installed.touch()
    return str(prefix / "node_modules" / ".bin" / "mcp-server-everything")


@pytest.fixture
def everything_http(everything: str) -> Iterator[str]:
    """The same server over streamable HTTP, on a free port of 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [everything, "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.terminate()
        server.wait(10)


def configure(env: dict[str, str], toml: str) -> None:
    folder = Path(env["XDG_CONFIG_HOME"]) / "ponder"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(toml)


def run_exec(
    tmp_path: Path, workspace: Path, env: dict[str, str], *steps: str, flags: tuple[str, ...] = ()
) -> tuple[subprocess.CompletedProcess[str], list[Event]]:
    script = write_script(tmp_path / "script.jsonl", *steps)
    result = subprocess.run(
        [PONDER, "exec", "--json", "go", "--model", f"scripted:{script}", "--sandbox", "local",
         *flags],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return result, [event_from_json(line) for line in result.stdout.splitlines()]


def tool_results(events: list[Event]) -> list[str]:
    return [
        str(e.message["content"])
        for e in events
        if isinstance(e, MessageAdded) and e.message["role"] == "tool"
    ]


def test_tools_of_real_servers_are_called_and_fed_back(
    tmp_path: Path, workspace: Path, user_env: dict[str, str], everything: str, everything_http: str
) -> None:
    configure(
        user_env,
        f'[mcp_servers.time]\ncommand = "{TIME_SERVER}"\n'
        f'[mcp_servers.everything]\ncommand = "{everything}"\nenabled_tools = ["echo"]\n'
        f'[mcp_servers.web]\nurl = "{everything_http}"\n',
    )
    result, events = run_exec(
        tmp_path, workspace, user_env,
        completion("What time?", tool_call("mcp__time__get_current_time", 0, {"timezone": "UTC"})),
        completion("Echo.", tool_call("mcp__everything__echo", 1, {"message": "over stdio"})),
        completion("Sum.", tool_call("mcp__web__get-sum", 2, {"a": 2, "b": 40})),
        completion("Done.", content="It is late."),
        flags=("--allow", "mcp__time", "--allow", "mcp__everything__echo", "--allow", "mcp__web"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (started,) = [e for e in events if isinstance(e, McpServersStarted)]
    tools = {server.name: (server.state, server.tools) for server in started.servers}
    assert tools["time"] == ("ready", ["get_current_time", "convert_time"])
    assert tools["everything"] == ("ready", ["echo"])  # enabled_tools holds
    assert tools["web"][0] == "ready"
    clock, echo, total = tool_results(events)
    assert json.loads(clock)["timezone"] == "UTC"
    assert echo == "Echo: over stdio"
    assert "42" in total


def test_a_server_that_does_not_start_is_reported_once_and_the_session_goes_on(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    configure(
        user_env,
        '[mcp_servers.missing]\ncommand = "/nonexistent/mcp-server"\n'
        '[mcp_servers.silent]\ncommand = "sleep"\nargs = ["60"]\nstartup_timeout_sec = 1\n',
    )
    begun = time.monotonic()
    result, events = run_exec(
        tmp_path, workspace, user_env,
        completion("Try it.", tool_call("mcp__missing__anything", 0, {})),
        completion("Fine.", content="Did without."),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - begun < 30  # the silent server is given up on, not waited for
    (started,) = [e for e in events if isinstance(e, McpServersStarted)]
    failed = {server.name: server.error or "" for server in started.servers}
    assert "No such file" in failed["missing"] or "not found" in failed["missing"].lower()
    assert failed["silent"] == "did not start within 1 s"
    (answer,) = tool_results(events)
    assert "no tool named `mcp__missing__anything`" in answer


def test_policy_asks_by_default_and_deny_rules_hold(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    configure(user_env, f'[mcp_servers.time]\ncommand = "{TIME_SERVER}"\n')
    steps = (
        completion("What time?", tool_call("mcp__time__get_current_time", 0, {"timezone": "UTC"})),
        completion("Oh.", content="Could not."),
    )
    _, events = run_exec(tmp_path, workspace, user_env, *steps)
    (refused,) = tool_results(events)  # auto mode asks; nobody is there to say yes
    assert "nobody to give it" in refused
    _, events = run_exec(tmp_path, workspace, user_env, *steps, flags=("--deny", "mcp__time"))
    (refused,) = tool_results(events)
    assert refused.startswith("Denied by a rule: `mcp__time__get_current_time` matches")


def test_a_projects_servers_start_only_once_trusted(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """A .mcp.json in the workspace (which the sandbox can write) runs a command on the host:
    it needs the user's word first, and again when it changes."""
    definition = {"mcpServers": {"clock": {"command": TIME_SERVER, "args": []}}}
    (workspace / ".mcp.json").write_text(json.dumps(definition))
    steps = (completion("Done.", content="ok"),)
    _, events = run_exec(tmp_path, workspace, user_env, *steps)
    (started,) = [e for e in events if isinstance(e, McpServersStarted)]
    assert started.servers == []
    assert "server clock not started until you trust it" in started.notes[0]
    trusted = subprocess.run(
        [PONDER, "mcp", "trust"], cwd=workspace, env=user_env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert f"clock: trusted ({TIME_SERVER})" in trusted.stdout
    mistyped = subprocess.run(
        [PONDER, "mcp", "trust", "clokc"], cwd=workspace, env=user_env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert mistyped.returncode == 2
    assert "no server named clokc" in mistyped.stderr
    assert "(it has: clock)" in mistyped.stderr
    _, events = run_exec(tmp_path, workspace, user_env, *steps)
    (started,) = [e for e in events if isinstance(e, McpServersStarted)]
    assert [(s.name, s.state) for s in started.servers] == [("clock", "ready")]
    definition["mcpServers"]["clock"]["args"] = ["--local-timezone", "UTC"]
    (workspace / ".mcp.json").write_text(json.dumps(definition))
    _, events = run_exec(tmp_path, workspace, user_env, *steps)
    (started,) = [e for e in events if isinstance(e, McpServersStarted)]
    assert started.servers == []  # changed: not trusted any more


def plant(workspace: Path, marker: Path) -> None:
    """What the model could write in the workspace to run code on the host through a server:
    a package named like the server's module, and a ``python`` for a ``PATH`` that has the
    workspace's ``bin`` in it. Each writes ``marker`` (outside the workspace) when it runs."""
    package = workspace / "mcp_server_time"
    package.mkdir()
    planted = f"open({str(marker)!r}, 'a').write('planted package imported\\n')\n"
    (package / "__init__.py").write_text(planted)
    (package / "__main__.py").write_text(planted)
    (workspace / "bin").mkdir()
    python = workspace / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho planted python ran >> '{marker}'\nexit 1\n")
    python.chmod(0o755)


def mcp_started(events: list[Event]) -> McpServersStarted:
    (started,) = [e for e in events if isinstance(e, McpServersStarted)]
    return started


def test_servers_start_outside_the_workspace(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """``python -m mcp_server_time`` from the user's own config, with a same-named package and
    a ``python`` planted in the workspace (and the workspace's ``bin`` on the user's PATH): the
    real server starts, in ponder's own empty folder, and nothing planted runs."""
    marker = tmp_path / "planted-ran"
    plant(workspace, marker)
    where = tmp_path / "servers" / "where.py"
    where.parent.mkdir()
    where.write_text(WHERE_SERVER)
    data = tmp_path / "home" / ".local" / "share"
    user_env["XDG_DATA_HOME"] = str(data)
    venv_bin = str(Path(sys.executable).parent)
    user_env["PATH"] = os.pathsep.join([str(workspace / "bin"), venv_bin, user_env["PATH"]])
    configure(
        user_env,
        '[mcp_servers.time]\ncommand = "python"\nargs = ["-m", "mcp_server_time"]\n'
        f'[mcp_servers.where]\ncommand = "{sys.executable}"\nargs = ["{where}"]\n',
    )
    result, events = run_exec(
        tmp_path, workspace, user_env,
        completion("What time?", tool_call("mcp__time__get_current_time", 0, {"timezone": "UTC"})),
        completion("Where?", tool_call("mcp__where__where", 1, {})),
        completion("Done.", content="It is late."),
        flags=("--allow", "mcp__time", "--allow", "mcp__where"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    started = mcp_started(events)
    assert [(s.name, s.state) for s in started.servers] == [("time", "ready"), ("where", "ready")]
    assert started.notes == []  # nothing of theirs is in the workspace
    clock, folder = tool_results(events)
    assert json.loads(clock)["timezone"] == "UTC"  # the real server answered
    assert not marker.exists(), marker.read_text()
    private = data / "ponder" / "mcp-cwd"
    assert Path(folder) == private.resolve()
    assert private.stat().st_mode & 0o777 == 0o700
    assert list(private.iterdir()) == []


def test_a_cwd_the_config_names_is_honoured_and_flagged(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """The user chose the folder, so the server starts there (its relative script is found),
    and since it is in the workspace the session says the sandbox can write what it runs."""
    (workspace / "tools").mkdir()
    (workspace / "tools" / "where.py").write_text(WHERE_SERVER)
    configure(
        user_env,
        f'[mcp_servers.where]\ncommand = "{sys.executable}"\nargs = ["where.py"]\n'
        'cwd = "tools"\n',  # relative: the workspace's
    )
    result, events = run_exec(
        tmp_path, workspace, user_env,
        completion("Where?", tool_call("mcp__where__where", 0, {})),
        completion("Done.", content="There."),
        flags=("--allow", "mcp__where"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    started = mcp_started(events)
    assert [(s.name, s.state) for s in started.servers] == [("where", "ready")]
    (folder,) = tool_results(events)
    assert Path(folder) == (workspace / "tools").resolve()
    (note,) = started.notes
    assert note == (
        f"MCP server where runs code from the workspace, which the sandbox can write "
        f"(cwd {workspace / 'tools'}): the model can change what it runs on this machine"
    )
    listed = subprocess.run(
        [PONDER, "mcp", "list"], cwd=workspace, env=user_env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert "where: " in listed.stdout
    assert "runs code from the workspace, which the sandbox can write" in listed.stdout


def test_trusting_a_project_server_that_runs_in_the_workspace_takes_a_yes(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """A project server that must run in the workspace says so (``"cwd": "."``); ``ponder mcp
    trust`` tells the user it runs code the sandbox can write, and without a yes (no terminal
    here, so ``--yes``) leaves it untrusted. One without ``cwd`` is trusted as before, told
    that it starts elsewhere, and indeed does not find its script there."""
    (workspace / "where.py").write_text(WHERE_SERVER)
    definition = {
        "mcpServers": {
            "here": {"command": sys.executable, "args": ["where.py"], "cwd": "."},
            "elsewhere": {"command": sys.executable, "args": ["where.py"]},
        }
    }
    (workspace / ".mcp.json").write_text(json.dumps(definition))

    def ponder_mcp(*args: str) -> str:
        done = subprocess.run(
            [PONDER, "mcp", *args], cwd=workspace, env=user_env, capture_output=True, text=True,
            timeout=60, check=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        return done.stdout

    warning = (
        f"runs code from the workspace, which the sandbox can write (cwd {workspace}): "
        "the model can change what it runs on this machine"
    )
    here, elsewhere = ponder_mcp("trust").splitlines()
    assert here == (
        f"here: not trusted: it {warning}; to trust it anyway, answer yes in a terminal or run "
        "`ponder mcp trust --yes here`"
    )
    assert elsewhere.startswith(f"elsewhere: trusted ({sys.executable} where.py); it starts in ")
    assert "so where.py will not be found" in elsewhere
    steps = (completion("Where?", tool_call("mcp__here__where", 0, {})), completion("Done."))
    _, events = run_exec(tmp_path, workspace, user_env, *steps, flags=("--allow", "mcp__here"))
    started = mcp_started(events)
    assert [(s.name, s.state) for s in started.servers] == [("elsewhere", "failed")]
    assert "server here not started until you trust it" in started.notes[0]

    here, _ = ponder_mcp("trust", "--yes").splitlines()
    assert here == f"here: trusted ({sys.executable} where.py); it {warning}"
    _, events = run_exec(tmp_path, workspace, user_env, *steps, flags=("--allow", "mcp__here"))
    started = mcp_started(events)
    assert {s.name: s.state for s in started.servers} == {"elsewhere": "failed", "here": "ready"}
    assert started.notes == [f"MCP server here {warning}"]
    (folder,) = tool_results(events)
    assert Path(folder) == workspace.resolve()


def test_a_workspace_path_inside_an_argument_is_named(tmp_path: Path) -> None:
    # A path in the workspace need not be a word of its own: `--require=/ws/x.js`,
    # NODE_OPTIONS, `python -c "exec(open('/ws/x.py').read())"` all run workspace code.
    ws = tmp_path / "ws"
    ws.mkdir()
    server = McpServerSpec(
        name="s",
        command="node",
        args=(f"--require={ws}/hook.js", "-e", f"exec(open('{ws}/x.py').read())"),
        env={"NODE_OPTIONS": f"--require {ws}/x.js", "OTHER": f"{tmp_path}/wsx/a"},
    )
    assert workspace_code(server, ws) == [
        f"--require={ws}/hook.js",
        f"exec(open('{ws}/x.py').read())",
        f"NODE_OPTIONS=--require {ws}/x.js",
    ]


def test_resources_links_and_progress_reach_the_model_and_the_screen(
    tmp_path: Path, workspace: Path, user_env: dict[str, str], everything: str
) -> None:
    """Issue 24, 11: embedded resources and links became `[resource content left out]`, and
    a long call's progress was never asked for."""
    configure(user_env, f'[mcp_servers.everything]\ncommand = "{everything}"\n')
    result, events = run_exec(
        tmp_path, workspace, user_env,
        completion("Read.", tool_call("mcp__everything__get-resource-reference", 0,
                                      {"resourceType": "Text", "resourceId": 1})),
        completion("Links.", tool_call("mcp__everything__get-resource-links", 1, {"count": 2})),
        completion("Wait.", tool_call("mcp__everything__trigger-long-running-operation", 2,
                                      {"duration": 1, "steps": 3})),
        completion("Done.", content="ok"),
        flags=("--allow", "mcp__everything"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    resource, links, _ = tool_results(events)
    assert '<resource uri="demo://resource/dynamic/text/1">\nResource 1: ' in resource
    assert "left out" not in resource
    assert links.count("[resource link demo://") == 2
    progress = [e.text for e in events if isinstance(e, ToolOutput) and e.call_id.endswith(":2")]
    assert len(progress) == 3  # one note per step, shown as the call's live output


FRAGILE_SERVER = """\
import os
import time
from mcp.server import MCPServer

server = MCPServer("fragile")


@server.tool()
def crash() -> str:
    '''Ends the server.'''
    os._exit(1)


@server.tool()
def slow() -> str:
    '''Takes longer than its timeout.'''
    time.sleep(3)
    return "late"


@server.tool()
def pid() -> str:
    '''The server's process id.'''
    return str(os.getpid())


server.run()
"""


def test_a_server_that_crashes_is_started_again(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """Issue 24, 11: a server that died stayed dead for the rest of the session."""
    fragile = tmp_path / "fragile.py"
    fragile.write_text(FRAGILE_SERVER)
    configure(
        user_env,
        f'[mcp_servers.fragile]\ncommand = "{sys.executable}"\nargs = ["{fragile}"]\n'
        "tool_timeout_sec = 1\n",
    )
    result, events = run_exec(
        tmp_path, workspace, user_env,
        completion("Pid.", tool_call("mcp__fragile__pid", 0, {})),
        completion("Slow.", tool_call("mcp__fragile__slow", 1, {})),
        completion("Pid.", tool_call("mcp__fragile__pid", 2, {})),
        completion("Crash.", tool_call("mcp__fragile__crash", 3, {})),
        completion("Again.", tool_call("mcp__fragile__pid", 4, {})),
        completion("Done.", content="ok"),
        flags=("--allow", "mcp__fragile"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    before, refused, same, crashed, after = tool_results(events)
    assert refused.startswith("Error:")  # too slow: an error of the call, not a crash
    assert "restarted" not in refused
    assert same == before
    assert "the server was restarted: call it again if still needed" in crashed
    assert after.isdigit()
    assert after != before  # a new process answers


def test_mcp_list_starts_the_servers_and_shows_their_tools(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """Issue 24, 11: `ponder mcp list` showed no tools and started nothing, so a server whose
    command is missing failed only at the first task, with a raw FileNotFoundError."""
    configure(
        user_env,
        f'[mcp_servers.time]\ncommand = "{TIME_SERVER}"\n'
        '[mcp_servers.uv]\ncommand = "uvx-not-installed"\nargs = ["mcp-server-time"]\n',
    )
    definition = {"mcpServers": {"clock": {"command": TIME_SERVER, "args": []}}}
    (workspace / ".mcp.json").write_text(json.dumps(definition))
    listed = subprocess.run(
        [PONDER, "mcp", "list"], cwd=workspace, env=user_env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert listed.returncode == 1  # one of them does not start
    assert listed.stdout.splitlines() == [
        f"time: {TIME_SERVER} (config)",
        "  started: 2 tools: get_current_time, convert_time",
        "uv: uvx-not-installed mcp-server-time (config)",
        "  FAILED to start: command not found: uvx-not-installed (is it installed, and on PATH?)"
        f" (its stderr: {Path(user_env['HOME'])}/.local/state/ponder/log/mcp.log)",
        f"clock: {TIME_SERVER} (.mcp.json, not trusted: ponder mcp trust)",
    ]
