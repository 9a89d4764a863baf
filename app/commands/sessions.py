"""``ponder sessions``, ``ponder export ID``, ``ponder undo`` and ``ponder diff``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ponder.app.exit_codes import UsageError
from ponder.app.frontends.export import to_markdown
from ponder.app.help_examples import examples
from ponder.app.session import checkpoint_store, diff_text
from ponder.app.wording.changes import OUTSIDE_HEADING, changes_block, describe_undo
from ponder.runtime.checkpoints import Checkpoints
from ponder.runtime.events import event_to_json
from ponder.runtime.sessions import (
    SessionInfo,
    find_session,
    list_sessions,
    read_session,
    skipped_warning,
)
from ponder.sandbox.safe_text import safe_text


def parser(command: str) -> argparse.ArgumentParser:
    descriptions = {
        "sessions": "List saved sessions, newest first.",
        "export": "Print a session as Markdown or JSON.",
        "undo": "Put the workspace back as it was before the last step that changed files.",
        "diff": "Show everything a session changed in the workspace.",
    }
    parser = argparse.ArgumentParser(
        prog=f"ponder {command}", description=descriptions[command], **examples(command)
    )
    if command == "export":
        parser.add_argument("id", help="session id (or its beginning)")
        parser.add_argument("--format", choices=["md", "json"], default="md", help="default md")
    elif command in ("undo", "diff"):
        parser.add_argument("--workspace", type=Path, default=Path.cwd(), help="default: here")
        parser.add_argument("--session", help="default: the latest session of the workspace")
    else:
        parser.add_argument("--workspace", type=Path, help="only sessions of this folder (. here)")
        parser.add_argument("--limit", type=int, default=20, help="newest N (default 20; 0 all)")
        parser.add_argument("--all", action="store_true", help="also sessions that ran no task")
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def run(argv: list[str]) -> int:
    command = argv[0]
    args = parser(command).parse_args(argv[1:])
    if command == "sessions":
        return _list(args)
    if command == "export":
        return _export(args.id, args.format)
    with _checkpoints(args.workspace, args.session) as checkpoints:
        if command == "undo":
            undone = checkpoints.undo()
            print(describe_undo(undone))
            return 0 if undone.restored or undone.removed else 1
        diff = checkpoints.diff()
    if sys.stdout.isatty():
        text = diff_text(diff, limit=None)
        print(text if text else "no changes")
    else:  # the patch byte for byte as git wrote it (`git apply` takes it); the rest to stderr
        sys.stdout.flush()
        sys.stdout.buffer.write(diff.patch)
        block = changes_block(diff.changes, OUTSIDE_HEADING, limit=None)
        if block:
            print(block, file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    sessions = [s for s in list_sessions() if s.task or args.all]
    if args.workspace is not None:
        where = str(args.workspace.resolve())
        sessions = [s for s in sessions if s.workspace == where]
    if args.limit:
        sessions = sessions[: args.limit]
    if args.json:
        for info in sessions:
            fields = ("id", "created", "status", "workspace", "model", "task")
            print(json.dumps({name: getattr(info, name) for name in fields}))
        return 0
    if not sessions:
        print("no sessions yet" if args.workspace is None else f"no sessions in {args.workspace}")
        return 0
    rows = [
        [_field(text) for text in (info.id, info.created, info.status, info.workspace)]
        + [_field(info.headline())]
        for info in sessions
    ]
    if not sys.stdout.isatty():  # for scripts: one tab-separated line per session
        for row in rows:
            print("\t".join(row))
        return 0
    table = Table(box=None)
    table.add_column("id", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("workspace", overflow="ellipsis")
    table.add_column("task", overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(field) for field in row))
    Console(highlight=False).print(table)
    return 0


def _field(text: str) -> str:
    """A field of the session list: one line without tabs, made safe to print."""
    return safe_text(text.replace("\t", " ").replace("\n", " "))


def _export(session_id: str, fmt: str) -> int:
    info = find_session(session_id)
    if info is None:
        raise UsageError(f"no session matches {session_id!r}; see `ponder sessions`")
    header, events, skipped = read_session(info.path)
    if skipped:
        print(f"ponder: warning: {skipped_warning(info.path, skipped)}", file=sys.stderr)
    if fmt == "json":
        print(
            json.dumps(
                {"session": header, "events": [json.loads(event_to_json(e)) for e in events]}
            )
        )
    else:
        print(to_markdown(header, events), end="")
    return 0


def _session_for(workspace: Path, session_id: str | None) -> SessionInfo:
    if session_id is not None:
        info = find_session(session_id)
        if info is None:
            raise UsageError(f"no session matches {session_id!r}; see `ponder sessions`")
        return info
    for info in list_sessions():
        if Path(info.workspace) == workspace:
            return info
    raise UsageError(f"no ponder session has worked in {workspace}")


def _checkpoints(workspace: Path, session_id: str | None) -> Checkpoints:
    workspace = workspace.resolve()
    info = _session_for(workspace, session_id)
    return Checkpoints(Path(info.workspace), info.id, checkpoint_store(), create=False)
