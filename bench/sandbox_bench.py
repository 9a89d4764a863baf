"""Sandbox benchmarks against the raw docker CLI, measured in the same run on the same engine.

1. Exec round trip on one container: ponder's ``DockerSandbox.exec`` (a fresh exec per command,
   with everything ponder adds: the timeout inside, the working directory and variables carried
   over, capped output, the exit report) against ``docker exec CONTAINER bash -c COMMAND``.
   Two commands: ``true``, and one printing 1 MB.
2. Sandbox start to first command: ``DockerSandbox.start`` plus ``exec("true")`` against
   ``docker run --rm IMAGE true``.

Run: .venv/bin/python bench/sandbox_bench.py  (or bench/run for every benchmark)
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import connect
from ponder.sandbox.image import DEFAULT_IMAGE, build_default_image

ROUNDS = 30
COMMANDS = {"true": "true", "1 MB of output": "head -c 1000000 /dev/zero | tr '\\0' a"}


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def exec_round_trip(workspace: Path) -> None:
    print(f"1. Exec round trip, one container, median of {ROUNDS} (interleaved)")
    with DockerSandbox(workspace, DEFAULT_IMAGE) as sandbox:
        for label, command in COMMANDS.items():
            cli = ["docker", "exec", sandbox.name, "bash", "-c", command]
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(ROUNDS):
                ours.append(timed(lambda command=command: sandbox.exec(command, 60)))
                theirs.append(
                    timed(lambda cli=cli: subprocess.run(cli, capture_output=True, check=True))
                )
            mine, peer = statistics.median(ours), statistics.median(theirs)
            print(
                f"   {label:15} ponder {mine * 1000:7.1f} ms   "
                f"docker exec CLI {peer * 1000:7.1f} ms   ratio {mine / peer:.2f}"
            )


def start_to_first_command(workspace: Path, rounds: int = 10) -> None:
    ours: list[float] = []
    theirs: list[float] = []
    client = connect()
    for _ in range(rounds):
        sandbox = DockerSandbox(workspace, DEFAULT_IMAGE, client=client)

        def start_and_run(sandbox: DockerSandbox = sandbox) -> None:
            sandbox.start()
            sandbox.exec("true", 30)

        ours.append(timed(start_and_run))
        sandbox.stop()
        cli = ["docker", "run", "--rm", DEFAULT_IMAGE, "true"]
        theirs.append(timed(lambda cli=cli: subprocess.run(cli, capture_output=True, check=True)))
    mine, peer = statistics.median(ours), statistics.median(theirs)
    print(f"2. Sandbox start to first command, median of {rounds}")
    print(
        f"   ponder start + exec {mine * 1000:7.1f} ms   docker run --rm IMAGE true "
        f"{peer * 1000:7.1f} ms   ratio {mine / peer:.2f}"
    )


def main() -> None:
    build_default_image(connect(), log=lambda line: None)
    with tempfile.TemporaryDirectory() as tmp:
        exec_round_trip(Path(tmp))
        start_to_first_command(Path(tmp))


if __name__ == "__main__":
    main()
