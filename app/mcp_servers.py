"""Which MCP servers a session starts: ponder's config, a project's ``.mcp.json``, an editor's.

Servers in the config (``[mcp_servers.NAME]``, Codex's shape) are the user's own and start.
A project's ``.mcp.json`` (Claude Code's ``mcpServers`` shape) lives in the workspace, which the
sandbox can write, and starting a server runs its command on the host; so a project's server
starts only once the user has trusted that exact definition (``ponder mcp trust``), and a
changed definition needs trusting again. Until then the session says it was left out.

Every server starts in a folder the sandbox cannot write (:func:`~ponder.runtime.mcp_client.
server_folder`) unless its definition names a ``cwd`` (a project's, relative to the project).
A definition that runs code from the workspace (a ``cwd``, a command, an argument or an ``env``
value there) is named so: in the session's notes, in ``ponder mcp list``, and by ``ponder mcp
trust``, which trusts such a project server only once the user has read that and said yes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
from pydantic import ValidationError

from ponder.app.config import FILE, Config, McpServerSettings
from ponder.runtime.events import McpServer, McpServersStarted
from ponder.runtime.mcp_client import McpServerSpec, in_workspace
from ponder.runtime.project_docs import read_regular

if TYPE_CHECKING:
    from ponder.runtime.mcp_hub import McpHub

PROJECT_FILE = ".mcp.json"
MAX_PROJECT_FILE = 256 * 1024


def spec(name: str, settings: McpServerSettings, workspace: Path) -> McpServerSpec:
    """A relative ``cwd`` is the workspace's (a config's, as it was when ponder ran there)."""
    cwd = None
    if settings.cwd is not None:
        cwd = str(workspace / Path(settings.cwd).expanduser())
    headers = dict(settings.http_headers)
    if settings.bearer_token_env_var:
        token = os.environ.get(settings.bearer_token_env_var)
        if token:
            headers["Authorization"] = f"Bearer {token}"
    return McpServerSpec(
        name=name,
        command=settings.command,
        args=tuple(settings.args),
        env=dict(settings.env),
        cwd=cwd,
        url=settings.url,
        headers=headers,
        enabled_tools=None if settings.enabled_tools is None else frozenset(settings.enabled_tools),
        disabled_tools=frozenset(settings.disabled_tools),
        startup_timeout=settings.startup_timeout_sec,
        tool_timeout=settings.tool_timeout_sec,
        workspace=str(workspace),
    )


def workspace_code(server: McpServerSpec, workspace: Path) -> list[str]:
    """What makes a stdio server run code from the workspace, which the sandbox can write: a
    ``cwd`` there, and a command, an argument or an ``env`` value that is a path there."""
    if server.command is None:
        return []
    found = []
    if server.cwd is not None and in_workspace(server.cwd, workspace):
        found.append(f"cwd {server.cwd}")
    for word in (server.command, *server.args):
        if (Path(word).is_absolute() and in_workspace(word, workspace)) or _names(word, workspace):
            found.append(word)
    for key, value in server.env.items():
        paths = [part for part in value.split(os.pathsep) if Path(part).is_absolute()]
        if any(in_workspace(path, workspace) for path in paths) or _names(value, workspace):
            found.append(f"{key}={value}")
    return found


def _names(text: str, workspace: Path) -> bool:
    """Whether ``text`` names a path in the workspace anywhere in it (``--require=/ws/x.js``,
    ``exec(open('/ws/x.py').read())``)."""
    for root in {str(workspace), str(workspace.resolve())}:
        at = text.find(root)
        while at >= 0:
            end = at + len(root)
            if end == len(text) or text[end] in "/'\" ;:":
                return True
            at = text.find(root, at + 1)
    return False


def runs_here(server: McpServerSpec, workspace: Path) -> str | None:
    """The warning for a server that runs code from the workspace, if it does."""
    found = workspace_code(server, workspace)
    if not found:
        return None
    return (
        f"runs code from the workspace, which the sandbox can write ({', '.join(found)}): "
        "the model can change what it runs on this machine"
    )


def _looked_for_elsewhere(server: McpServerSpec, workspace: Path) -> list[str]:
    """Relative paths of a server without ``cwd`` that name something in the workspace: it
    starts in ponder's own folder, so they are looked for there instead."""
    if server.command is None or server.cwd is not None:
        return []
    words = [server.command, *(arg for arg in server.args if not arg.startswith("-"))]
    return [
        word
        for word in words
        if not Path(word).is_absolute()
        and (word.startswith(("./", "../")) or os.path.lexists(workspace / word))
    ]


def trust_file() -> Path:
    return platformdirs.user_data_path("ponder") / "mcp-trust.json"


def fingerprint(workspace: Path, name: str, definition: Any) -> str:
    """What trusting a project server means: this workspace, this name, this definition."""
    text = json.dumps([str(workspace), name, definition], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def trusted_fingerprints() -> set[str]:
    try:
        return set(json.loads(trust_file().read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def project_servers(
    workspace: Path,
) -> tuple[dict[str, tuple[Any, McpServerSettings | str]], str | None]:
    """The workspace's ``.mcp.json`` servers: name -> (definition, settings or why unusable);
    and why the file itself is unusable, if it is."""
    text = read_regular(workspace / PROJECT_FILE, MAX_PROJECT_FILE)
    if text is None:
        return {}, None
    try:
        servers = json.loads(text).get("mcpServers", {})
        assert isinstance(servers, dict)
    except (ValueError, AttributeError, AssertionError):
        return {}, f"{PROJECT_FILE} is not a JSON object with an mcpServers object"
    found: dict[str, tuple[Any, McpServerSettings | str]] = {}
    for name, definition in servers.items():
        try:
            settings = _from_claude_shape(definition)
            FILE.model_validate({"mcp_servers": {name: settings.model_dump()}})
            found[str(name)] = (definition, settings)
        except (ValidationError, TypeError, ValueError) as error:
            found[str(name)] = (definition, str(error).splitlines()[0])
    return found, None


def _from_claude_shape(definition: Any) -> McpServerSettings:
    if not isinstance(definition, dict):
        raise TypeError("a server must be a JSON object")
    if definition.get("type") in ("http", "sse") or "url" in definition:
        return McpServerSettings(
            url=definition.get("url"), http_headers=definition.get("headers", {})
        )
    return McpServerSettings(
        command=definition.get("command"),
        args=definition.get("args", []),
        env=definition.get("env", {}),
        cwd=definition.get("cwd"),
    )


def session_servers(
    config: Config, workspace: Path, extra: Sequence[McpServerSpec] = ()
) -> tuple[list[McpServerSpec], list[str]]:
    """The servers to start, and a note for each project server left out (and why) and for
    each server that runs code from the workspace."""
    specs = {name: spec(name, s, workspace) for name, s in config.mcp_servers.items() if s.enabled}
    notes = []
    found, problem = project_servers(workspace)
    if problem:
        notes.append(problem)
    trusted = trusted_fingerprints()
    for name, (definition, settings) in found.items():
        if name in specs:
            continue  # the user's own config wins
        if isinstance(settings, str):
            notes.append(f"{PROJECT_FILE}: server {name} is unusable ({settings})")
        elif fingerprint(workspace, name, definition) not in trusted:
            notes.append(
                f"{PROJECT_FILE}: server {name} not started until you trust it "
                "(`ponder mcp trust` in this folder)"
            )
        else:
            specs[name] = spec(name, settings, workspace)
    for server in extra:
        specs[server.name] = replace(server, workspace=server.workspace or str(workspace))
    for server in specs.values():
        warning = runs_here(server, workspace)
        if warning:
            notes.append(f"MCP server {server.name} {warning}")
    return list(specs.values()), notes


def trust(
    workspace: Path, names: list[str], confirm: Callable[[str, str], bool] = lambda *_: False
) -> list[str]:
    """Trust the project's servers (all, or those named); what was trusted, as lines to show.
    One that runs code from the workspace is trusted only if ``confirm(name, warning)``."""
    found, problem = project_servers(workspace)
    if problem:
        raise ValueError(problem)
    trusted = trusted_fingerprints()
    shown = []
    for name, (definition, settings) in found.items():
        if names and name not in names:
            continue
        if isinstance(settings, str):
            shown.append(f"{name}: unusable, not trusted ({settings})")
            continue
        server = spec(name, settings, workspace)
        what = settings.url or " ".join([settings.command or "", *settings.args])
        warning = runs_here(server, workspace)
        known = fingerprint(workspace, name, definition) in trusted
        if warning and not known and not confirm(name, warning):
            shown.append(
                f"{name}: not trusted: it {warning}; to trust it anyway, answer yes in a "
                f"terminal or run `ponder mcp trust --yes {name}`"
            )
            continue
        trusted.add(fingerprint(workspace, name, definition))
        line = f"{name}: trusted ({what})"
        if warning:
            line += f"; it {warning}"
        elsewhere = _looked_for_elsewhere(server, workspace)
        if elsewhere:
            line += (
                f"; it starts in a folder of ponder's own, not here, so {', '.join(elsewhere)} "
                'will not be found: if it must run here, give it "cwd": "." (it then runs code '
                "the sandbox can write)"
            )
        shown.append(line)
    path = trust_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(trusted)))
    return shown


def mcp_log() -> Path:
    """Where MCP servers' stderr goes (what a server said before it failed)."""
    return platformdirs.user_log_path("ponder") / "mcp.log"


@contextmanager
def mcp_hub(specs: list[McpServerSpec]) -> Iterator[McpHub | None]:
    """The started servers (None without any); their stderr goes to a log file."""
    if not specs:
        yield None
        return
    log = mcp_log()
    log.parent.mkdir(parents=True, exist_ok=True)
    from ponder.runtime.mcp_hub import McpHub  # asyncio and the SDK: only sessions with servers

    with log.open("a") as errlog:
        hub = McpHub(specs, errlog)
        try:
            hub.start()
            yield hub
        finally:
            hub.close()


def mcp_event(hub: McpHub | None, notes: Sequence[str]) -> McpServersStarted:
    servers = [
        McpServer(
            name=name,
            state="ready" if state.state == "ready" else "failed",
            tools=[tool.name for tool in state.tools],
            error=state.error,
        )
        for name, state in (hub.servers.items() if hub else [])
    ]
    return McpServersStarted(servers=servers, notes=list(notes))
