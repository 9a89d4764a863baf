"""``ponder sandbox build | cleanup | exec | shell``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ponder.app.config import Config, load_config
from ponder.app.exit_codes import UsageError
from ponder.app.help_examples import examples
from ponder.app.sandboxes import sandbox_image, sandbox_session, warn
from ponder.sandbox.base import SandboxUnavailable
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import connect, reap_leftovers
from ponder.sandbox.image import build_default_image
from ponder.sandbox.leftovers import remove_leftover_tempdirs


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="ponder sandbox", description="Manage sandboxes.", **examples("sandbox")
    )
    commands = root.add_subparsers(
        dest="action", required=True, metavar="COMMAND", help="what to do"
    )

    build = commands.add_parser(
        "build", help="build the default sandbox image", **examples("sandbox build")
    )
    build.add_argument("--image", help="tag to build (default: ponder's own)")
    build.add_argument("--force", action="store_true", help="rebuild even if it exists")
    build.add_argument("--mirror", help="Debian mirror for a debootstrap build")

    commands.add_parser(
        "cleanup",
        help="remove sandboxes left by ponder runs that are gone",
        **examples("sandbox cleanup"),
    )

    run = commands.add_parser(
        "exec",
        help="run one command in a fresh sandbox, then remove it",
        **examples("sandbox exec"),
    )
    shell = commands.add_parser(
        "shell", help="an interactive shell in a fresh sandbox", **examples("sandbox shell")
    )
    for sub in (run, shell):
        sub.add_argument("--workspace", type=Path, default=Path.cwd(), help="default: here")
        sub.add_argument("--image", help="sandbox image (default: ponder's own)")
        sub.add_argument("--network", action="store_true", default=None, help="network on")
        sub.add_argument("--sandbox", choices=["docker", "local"], help="backend")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    run.add_argument(
        "words",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND",
        help="the command's words, each passed as is (-- python3 -c 'print(1)'), or one shell "
        "line in quotes (-- 'make && make test')",
    )
    return root


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.action == "build":
        return _build(args)
    if args.action == "cleanup":
        folders = remove_leftover_tempdirs()
        print(f"removed {len(folders)} leftover temporary folder(s) of ponder runs that are gone")
        removed = reap_leftovers(connect())
        names = f": {' '.join(removed)}" if removed else ""
        print(f"removed {len(removed)} leftover sandbox(es){names}")
        return 0
    config = load_config({"image": args.image, "network": args.network, "sandbox": args.sandbox})
    if not args.workspace.is_dir():
        raise UsageError(f"workspace {args.workspace} is not a directory")
    if args.action == "exec":
        return _exec(args, config)
    return _shell(args, config)


def _build(args: argparse.Namespace) -> int:
    config = load_config({"image": args.image})
    how = build_default_image(
        connect(),
        tag=sandbox_image(config),
        mirror=args.mirror,
        force=args.force,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(f"sandbox image {sandbox_image(config)}: {how}")
    return 0


def _exec(args: argparse.Namespace, config: Config) -> int:
    words = args.words[1:] if args.words[:1] == ["--"] else args.words
    if not words:
        raise UsageError("give the command after --, e.g. ponder sandbox exec -- ls -la")
    # One argument is a shell command line (`-- "make && make test"`); several are an argv,
    # each word passed exactly as given.
    command = shlex.join(words) if len(words) > 1 else words[0]

    def live(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    with sandbox_session(config, args.workspace) as sandbox:
        warn(sandbox.notes)
        result = sandbox.exec(command, args.timeout, None if args.json else live)
    if args.json:
        print(
            json.dumps(
                {
                    "exit_code": result.exit_code,
                    "timed_out": result.timed_out,
                    "output": result.output,
                    "truncated": result.truncated,
                    "duration_s": round(result.elapsed, 3),
                }
            )
        )
    elif result.timed_out:
        print(f"ponder: stopped after {args.timeout:g} s", file=sys.stderr)
    if result.notice and not args.json:
        print(f"ponder: {result.notice}", file=sys.stderr)
    return 124 if result.timed_out else result.exit_code


def _shell(args: argparse.Namespace, config: Config) -> int:
    if not sys.stdin.isatty():
        raise UsageError(
            "`sandbox shell` is interactive: run it in a terminal "
            "(for one command: ponder sandbox exec -- COMMAND)"
        )
    with sandbox_session(config, args.workspace) as sandbox:
        warn(sandbox.notes)
        if not isinstance(sandbox, DockerSandbox):
            return subprocess.call(["bash"], cwd=sandbox.workdir)
        docker_cli = shutil.which("docker")
        if docker_cli is None:
            raise SandboxUnavailable("ponder sandbox shell uses the docker command, not found")
        print(
            f"{sandbox.description}; the sandbox is removed when this shell exits", file=sys.stderr
        )
        user = f"{os.getuid()}:{os.getgid()}"
        return subprocess.call(
            [docker_cli, "exec", "-it", "--user", user, "-w", sandbox.workdir, sandbox.name, "bash"]
        )
