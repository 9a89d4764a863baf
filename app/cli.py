"""The ``ponder`` command: parsing and dispatch; exit codes for every outcome.

Everything heavy (Textual, the docker SDK, llama.cpp, pydantic) is imported only once the
command line has been read, so ``ponder --help`` and usage errors answer at once.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from ponder.app.exit_codes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_RETRYABLE,
    EXIT_USAGE,
    UsageError,
)
from ponder.app.help_examples import examples


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        from ponder.app.commands.doctor import versions

        print("\n".join(versions()))
        parser.exit()


def main_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ponder",
        **examples(""),
        description="A terminal coding agent for thinking models. Every command runs in a "
        "Docker sandbox. Other commands: ponder exec (headless, for CI); ponder acp (for "
        "editors: Zed, Toad); ponder mcp list|trust (MCP servers); ponder serve "
        "[GGUF] (a local model kept warm); ponder swebench [eval] (batches of "
        "SWE-bench tasks); ponder demo (a full run without a model); ponder doctor (checks "
        "everything ponder needs); ponder sessions, export ID, undo, diff (sessions and their "
        "changes); ponder model render|parse|info|plan (formats and GGUFs); ponder sandbox "
        "build|cleanup|exec|shell (sandboxes); ponder completion bash|zsh|fish (shell "
        "completion).",
    )
    parser.add_argument("prompt", nargs="?", help="a task to start with")
    parser.add_argument(
        "-p", "--print", action="store_true", help="run the task, print only the answer"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="with -p: activity on stderr")
    parser.add_argument("--plain", action="store_true", help="line mode instead of the TUI")
    parser.add_argument(
        "--inline", action="store_true", help="TUI below the prompt, keeping the scrollback"
    )
    parser.add_argument("--heavy", type=int, metavar="N", help="N trajectories, then the best")
    parser.add_argument("--test-command", help="heavy mode: how to test each trajectory")
    parser.add_argument("--version", action=_Version)
    add_run_options(parser)
    return parser


def exec_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ponder exec",
        **examples("exec"),
        description="Run one task without a terminal (CI): the answer on stdout, or every event "
        "as a JSON line with --json. Exit codes: 0 finished, 1 failed, 2 usage or configuration, "
        "75 backend unreachable or rate-limited (retry later), 130 interrupted. `ponder exec "
        "resume --last PROMPT` (or `resume ID PROMPT`) goes on with a session.",
    )
    parser.add_argument("prompt", help="the task; - reads it from stdin")
    parser.add_argument("--json", action="store_true", help="events as JSON lines on stdout")
    parser.add_argument(
        "--output-last-message", type=Path, metavar="FILE", help="also write the answer here"
    )
    parser.add_argument(
        "--output-schema",
        type=Path,
        metavar="FILE",
        help="a JSON Schema the final answer must match (the answer is written as JSON)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="activity on stderr")
    add_run_options(parser)
    return parser


def acp_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ponder acp",
        **examples("acp"),
        description="Serve the Agent Client Protocol on stdin and stdout, for editors such as "
        "Zed (agent_servers: command ponder, args [acp]). The workspace is the editor's "
        "project folder; the options are those of every run.",
    )
    add_run_options(parser)
    return parser


def setting_groups() -> list[tuple[str, str, tuple[type, ...]]]:
    """The settings that have flags: (help heading, config table, dataclasses declaring them)."""
    from ponder.app.session_options import SessionOptions
    from ponder.model.options import GenerationSettings, LlamaOptions
    from ponder.runtime.budgets import Budgets

    return [
        ("model, sandbox and approvals", "", (SessionOptions,)),
        ("budgets", "", (Budgets,)),
        ("sampling", "sampling", (GenerationSettings,)),
        ("llama.cpp (for llamacpp: models; as llama.cpp's flags)", "llama", (LlamaOptions,)),
    ]


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """What every way of running a task shares: model, workspace, sandbox, approvals, budgets
    (the settings' flags and help come from where each setting is declared)."""
    from ponder.app.settings import add_flags

    parser.add_argument("--workspace", type=Path, default=Path.cwd(), help="default: here")
    parser.add_argument("--resume", nargs="?", const="", metavar="ID", help="continue a session")
    for title, where, classes in setting_groups():
        add_flags(parser, title, where, *classes)


def flags(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration the command line sets (None: not given)."""
    from ponder.app.settings import given_flags

    return given_flags(args, setting_groups())


def demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ponder demo",
        **examples("demo"),
        description="Watch ponder fix a real bug in a real sandbox, with a recorded model.",
    )
    parser.add_argument("--plain", action="store_true", help="line mode instead of the TUI")
    parser.add_argument("--image", help="sandbox image (default: ponder's own)")
    parser.add_argument("--sandbox", choices=["docker", "local"], help="where commands run")
    return parser


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    # Unwinds through every `with` block, so sandboxes are removed on SIGTERM and SIGHUP too.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _raise_exit)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # `nohup ponder ...` goes on
        signal.signal(signal.SIGHUP, _raise_exit)
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:
        print("ponder: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader left (`ponder sessions | head`): stop quietly, like
        # a Unix tool stopped by SIGPIPE, and keep Python from failing on the final flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except Exception as error:
        code = _explained(error)
        if code is None:
            raise  # a bug: the traceback is what a report needs
        print(f"ponder: {error}", file=sys.stderr)
        return code


def _explained(error: Exception) -> int | None:
    """The exit code for an error whose message says what to do; None for anything else.

    Imported here, not at the top: an error of one of these kinds means its module is loaded.
    """
    from ponder.app.config import ConfigError
    from ponder.app.exit_codes import UsageError
    from ponder.model.backend import BackendError, BackendUnavailable, ConfigurationError
    from ponder.runtime.checkpoints import CheckpointError
    from ponder.runtime.sessions import AmbiguousSession
    from ponder.runtime.swe.workspaces import InfrastructureError
    from ponder.sandbox.base import SandboxError, SandboxUnavailable

    usage = UsageError | ConfigError | ConfigurationError | SandboxUnavailable | AmbiguousSession
    if isinstance(error, usage):
        return EXIT_USAGE
    if isinstance(error, BackendUnavailable):
        return EXIT_RETRYABLE
    if isinstance(error, BackendError | SandboxError | CheckpointError | InfrastructureError):
        return EXIT_FAILED
    return None


SUBCOMMANDS = ("sandbox", "model", "swebench", "serve", "mcp", "doctor", "completion")
"""``ponder NAME ARGS``: ``ponder.app.commands.NAME.run(ARGS)`` does it."""


def _dispatch(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "demo":
        return _demo(demo_parser().parse_args(argv[1:]))
    if command in SUBCOMMANDS:  # imported only when used: each pulls in what it needs
        module = importlib.import_module(f"ponder.app.commands.{command}")
        return int(module.run(argv[1:]))
    if command in ("sessions", "export", "undo", "diff"):
        from ponder.app.commands import sessions

        return sessions.run(argv)
    if command == "acp":
        acp_args = acp_parser().parse_args(argv[1:])
        from ponder.app.config import load_config
        from ponder.app.frontends.acp import run as run_acp

        return run_acp(load_config(flags(acp_args)))
    if command == "exec":
        exec_args = exec_parser().parse_args(_resume_form(argv[1:]))
        from ponder.app.commands.run import run_exec

        return run_exec(exec_args, flags)
    args = main_parser().parse_args(argv)
    _not_a_mistyped_command(args.prompt)
    from ponder.app.commands.run import run_tasks

    return run_tasks(args, flags)


def _resume_form(words: list[str]) -> list[str]:
    """``ponder exec resume (--last | ID) PROMPT ...`` (Codex's shape) as ``--resume``: the
    flag takes an optional id, so ``--resume "follow-up"`` would read the prompt as one."""
    if words[:1] != ["resume"]:
        return words
    if len(words) < 3:
        raise UsageError("ponder exec resume needs --last or a session id, then the prompt")
    which = "" if words[1] == "--last" else words[1]
    return [f"--resume={which}", *words[2:]]


COMMANDS = [*SUBCOMMANDS, "sessions", "export", "undo", "diff", "acp", "exec", "demo"]


def _not_a_mistyped_command(prompt: str | None) -> None:
    """A task of one word that is nearly a command's name is a typo, not a task."""
    if prompt is None or not re.fullmatch(r"[a-z]+", prompt):
        return
    close = difflib.get_close_matches(prompt, COMMANDS, n=1, cutoff=0.75)
    if close:
        raise UsageError(
            f"{prompt!r} is not a command; did you mean `ponder {close[0]}`? "
            f'(as a task for the model, say more: ponder "{prompt} ...")'
        )


def _demo(args: argparse.Namespace) -> int:
    from ponder.app.commands.demo import run_demo
    from ponder.app.config import load_config
    from ponder.app.frontends.choose import pick_frontend

    config = load_config({"image": args.image, "sandbox": args.sandbox})
    frontend = pick_frontend(args.plain)
    # Stream at a readable pace on a terminal; as fast as possible into a pipe or a test.
    delay = 0.01 if sys.stdout.isatty() else 0.0
    return run_demo(frontend, config, chunk_delay=delay)
