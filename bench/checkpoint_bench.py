"""What a checkpoint costs per step, against workspace size, next to `git status` on the same tree.

Three trees of 1k, 10k and 100k files, each a git project whose source is tracked and whose
``node_modules`` and ``.venv`` (a third of the files each) are ignored, as in a real project.
A session's checkpoints run on each, with the real sandbox's ``background_jobs`` (``docker
top``) as the session wires it, and three costs are measured, each the median of several steps:

- a step that changes nothing: the kernel's watch saw no change, no process is left in the
  sandbox, so nothing is walked (the issue asks for under 100 ms at 100k files);
- a step that changes one file: the whole tree is walked (inode, size, mtime, ctime of every
  path, ignored folders included) and git hashes the one file;
- the session's start, with and without the index an earlier session left.

The peer is ``git status --porcelain`` on the same tree, which walks the tracked and untracked
files with git's own index cache; the ratio shows what the ledger's stronger walk costs.
Cost per file is printed so the growth with size can be read off (linear: about constant).

Run: .venv/bin/python bench/checkpoint_bench.py  (or bench/run for every benchmark)
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ponder.runtime.checkpoints import Checkpoints
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import connect
from ponder.sandbox.image import DEFAULT_IMAGE, build_default_image

SIZES = (1_000, 10_000, 100_000)
ROUNDS = 7
PER_FOLDER = 20


def make_tree(root: Path, files: int) -> None:
    """A git project: a third tracked source, a third node_modules, a third .venv (ignored)."""
    parts = {"src": files // 3, "node_modules": files // 3, ".venv/lib/site-packages": 0}
    parts[".venv/lib/site-packages"] = files - 2 * (files // 3)
    for base, count in parts.items():
        for index in range(count):
            folder = root / base / f"p{index // 200}" / f"d{(index // PER_FOLDER) % 10}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"m{index}.py").write_text(f"VALUE = {index}\n")
    (root / ".gitignore").write_text("node_modules/\n.venv/\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "tree"],
        cwd=root,
        check=True,
    )


def median_ms(action: Callable[[], object], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(root: Path, files: int, store: Path) -> dict[str, float]:
    edited = next((root / "src").rglob("*.py"))
    counter = iter(range(10**6))
    with DockerSandbox(root, DEFAULT_IMAGE) as box:
        started = time.perf_counter()
        first = Checkpoints(root, f"first{files}", store, busy=box.background_jobs)
        cold = (time.perf_counter() - started) * 1000
        first.close()
        started = time.perf_counter()
        checkpoints = Checkpoints(root, f"bench{files}", store, busy=box.background_jobs)
        warm = (time.perf_counter() - started) * 1000

        def nothing() -> None:
            checkpoints.before_step()
            assert checkpoints.checkpoint() is None

        def one_file() -> None:
            checkpoints.before_step()
            edited.write_text(f"VALUE = {next(counter)}\n")
            assert checkpoints.checkpoint() is not None

        with checkpoints:
            result = {
                "no change": median_ms(nothing),
                "one file": median_ms(one_file),
                "docker top": median_ms(box.background_jobs),
            }
    status = ["git", "status", "--porcelain"]
    result["git status"] = median_ms(lambda: subprocess.run(status, cwd=root, capture_output=True))
    result["start"], result["start, warm index"] = cold, warm
    return result


def main() -> None:
    build_default_image(connect(), log=lambda line: None)
    print(f"Checkpoint cost per step, median of {ROUNDS} steps (ms); peer: git status --porcelain")
    header = (
        f"{'files':>8} {'no change':>10} {'one file':>10} {'git status':>11} {'ratio':>6} "
        f"{'µs/file':>8} {'docker top':>11} {'start':>8} {'warm start':>11}"
    )
    print(header)
    for files in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "tree"
            root.mkdir()
            make_tree(root, files)
            got = measure(root, files, Path(tmp) / "store")
        ratio = got["one file"] / got["git status"]
        print(
            f"{files:>8,} {got['no change']:>10.2f} {got['one file']:>10.1f} "
            f"{got['git status']:>11.1f} {ratio:>6.2f} {got['one file'] * 1000 / files:>8.1f} "
            f"{got['docker top']:>11.1f} {got['start']:>8.0f} {got['start, warm index']:>11.0f}"
        )
    print(
        "no change: the kernel saw nothing and no sandbox process is left, so nothing is "
        "walked (docker top is part of it); one file: the whole tree is walked, ignored "
        "folders included, and git hashes the file."
    )


if __name__ == "__main__":
    main()
