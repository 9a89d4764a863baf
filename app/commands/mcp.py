"""``ponder mcp list|trust [NAME ...]``: the MCP servers a session would start, and trusting a
project's (the policy itself is :mod:`ponder.app.mcp_servers`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ponder.app.config import McpServerSettings, load_config
from ponder.app.exit_codes import UsageError
from ponder.app.help_examples import examples
from ponder.app.mcp_servers import (
    PROJECT_FILE,
    fingerprint,
    mcp_hub,
    mcp_log,
    project_servers,
    runs_here,
    session_servers,
    spec,
    trust,
    trusted_fingerprints,
)
from ponder.runtime.mcp_client import ServerState
from ponder.sandbox.safe_text import safe_name, safe_text


def parser() -> argparse.ArgumentParser:
    """``ponder mcp list|trust [NAME ...]``."""
    parser = argparse.ArgumentParser(
        prog="ponder mcp",
        **examples("mcp"),
        description="MCP servers: `list` shows the config's and this folder's .mcp.json servers; "
        "`trust [NAME ...]` lets this folder's .mcp.json servers start (all, or those named). "
        "A project's server runs its command on this machine, so read it before you trust it; "
        "one that runs code from this folder (its cwd, a command or path here) is trusted only "
        "once you say yes to that.",
    )
    commands = parser.add_subparsers(
        dest="action", metavar="COMMAND", required=True, help="list or trust"
    )
    listing = commands.add_parser(
        "list",
        help="the servers, started as a session would start them, with their tools",
        **examples("mcp list"),
        description="The config's servers and this folder's .mcp.json servers, each started as "
        "a session would start it: its tools, or why it did not start.",
    )
    trusting = commands.add_parser(
        "trust",
        help="let this folder's .mcp.json servers start",
        **examples("mcp trust"),
        description="Let this folder's .mcp.json servers start (all, or those named). A "
        "server that runs code from this folder is trusted only once you say yes to that.",
    )
    trusting.add_argument("names", nargs="*", default=[], help="only these servers")
    # The options go before the command word or after it (`ponder mcp --workspace D list`, as
    # it was before list and trust were commands); after it, SUPPRESS keeps what came before.
    yes = "also trust servers that run code from this folder, without asking"
    parser.add_argument("--workspace", type=Path, default=Path.cwd(), help="default: here")
    parser.add_argument("--yes", action="store_true", help=f"with trust: {yes}")
    trusting.add_argument("--yes", action="store_true", default=argparse.SUPPRESS, help=yes)
    for command in (listing, trusting):
        command.add_argument(
            "--workspace", type=Path, default=argparse.SUPPRESS, help="default: here"
        )
    return parser


def _confirm(yes: bool) -> Callable[[str, str], bool]:
    """Whether to trust a server that runs code from the workspace: --yes, or the user's word."""

    def ask(name: str, warning: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            return False
        print(safe_text(f"{name} {warning}."))
        try:
            return input(f"trust {safe_text(name)} anyway? [y/N] ").strip().lower() in ("y", "yes")
        except EOFError:
            return False

    return ask


def _print_server(
    name: str, settings: McpServerSettings, state: str, workspace: Path, started: ServerState | None
) -> None:
    """One server: what it runs, where it is defined, and how its start went."""
    what = settings.url or " ".join([settings.command or "", *settings.args])
    warning = runs_here(spec(name, settings, workspace), workspace)
    if warning:
        state += f"; it {warning}"
    print(safe_name(f"{name}: {what} ({state})"))  # each part one line: a server's words
    if started is not None and started.state == "ready":  # (its tools, its errors) included
        tools = ", ".join(tool.name for tool in started.tools)
        print(f"  started: {len(started.tools)} tools: {safe_name(tools[:300])}")
    elif started is not None:
        print(f"  FAILED to start: {safe_name(started.error or '')} (its stderr: {mcp_log()})")


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    workspace = args.workspace.resolve()
    if args.action == "trust":
        found, problem = project_servers(workspace)
        if problem:
            raise UsageError(safe_text(problem))
        unknown = [name for name in args.names if name not in found]
        if unknown:
            have = ", ".join(found) or "none"
            where = workspace / PROJECT_FILE
            said = f"no server named {', '.join(unknown)} in {where} (it has: {have})"
            raise UsageError(safe_text(said))  # the names come from the workspace
        lines = trust(workspace, args.names, _confirm(args.yes))
        print("\n".join(safe_text(line) for line in lines) or f"no servers in {PROJECT_FILE}")
        return 0
    config = load_config({})
    specs, _ = session_servers(config, workspace)
    with mcp_hub(specs) as hub:  # started as a session would start them: do they, with what?
        started = dict(hub.servers) if hub else {}
    for name, mine in config.mcp_servers.items():
        state = "config" if mine.enabled else "config, disabled"
        _print_server(name, mine, state, workspace, started.get(name) if mine.enabled else None)
    found, problem = project_servers(workspace)
    trusted = trusted_fingerprints()
    for name, (definition, settings) in found.items():
        if isinstance(settings, str):
            print(safe_text(f"{name}: {json.dumps(definition)[:200]} (unusable: {settings})"))
            continue
        known = fingerprint(workspace, name, definition) in trusted
        state = f"{PROJECT_FILE}, {'trusted' if known else 'not trusted: ponder mcp trust'}"
        own = config.mcp_servers.get(name)
        ours = started.get(name) if own is None or not own.enabled else None
        _print_server(name, settings, state, workspace, ours)
    if problem:
        print(safe_text(problem))
    if not config.mcp_servers and not found and not problem:
        print(f"no MCP servers: none in the config ([mcp_servers]) or in {PROJECT_FILE} here")
    return 1 if any(state.state == "failed" for state in started.values()) else 0
