"""The change a copy-mode sandbox made, worked out on the host from its files, never by its git.

Heavy mode applies a trajectory's change to the user's workspace, and the SWE-bench runner hands
it to grading. If git inside the container made that diff, the container's ``.git`` (a
``diff.external``, a textconv, a forged baseline) would decide what the host applies. So both
the workspace as it was copied in and as it is now come out as tar streams, are written into a
private folder by the hostile-input extractor (:func:`~ponder.sandbox.archive.extract`, git
metadata left out), and git on the host, with every program it could run switched off
(:mod:`~ponder.runtime.host_git`) and its own neutral attributes, diffs the two trees.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from ponder.runtime.host_git import NEUTRAL_ATTRIBUTES, GitFailed, git_process, run_git
from ponder.runtime.ledger import in_git_metadata
from ponder.sandbox.base import Sandbox, SandboxError
from ponder.sandbox.leftovers import private_tempdir

DIFF_LIMIT = 64 * 1024**2
"""The largest change brought back (a patch bigger than this is no code change)."""


class CopySandbox(Sandbox, Protocol):
    def export(
        self,
        which: Literal["start", "now"],
        destination: Path,
        skip: Callable[[bytes], bool] = ...,
    ) -> None: ...


def copy_diff(sandbox: CopySandbox) -> str:
    """The sandbox's change to its workspace since it started, as a git diff.

    Which files are left out as ignored is decided by the ``.gitignore`` files the workspace
    started with, never by those of the copy: a ``.gitignore`` the model wrote could otherwise
    hide a file's change, or make a changed file look deleted. A new ``.gitignore`` is a file
    like any other, shown in the diff."""
    temporary = private_tempdir("ponder-copy-")
    try:
        store = _Store(temporary / "store.git")
        start, now = temporary / "start", temporary / "now"
        start.mkdir()
        now.mkdir()
        sandbox.export("start", start, skip=in_git_metadata)
        sandbox.export("now", now, skip=in_git_metadata)
        paths = store.add(start) | store.add(now)
        ignored = store.ignored(start, paths)
        trees = [store.tree(start, leaving_out=ignored), store.tree(now, leaving_out=ignored)]
        shutil.rmtree(start)
        shutil.rmtree(now)
        patch = store.git(
            "diff", "--binary", "--no-ext-diff", "--no-textconv", *trees, limit=DIFF_LIMIT
        )
    except GitFailed as error:
        raise SandboxError(f"working out the sandbox's change failed: {error}") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return patch.decode("utf-8", errors="replace")


class _Store:
    """A throwaway repository whose attributes switch off every filter; each folder gets an
    index of its own beside it."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        run_git("init", "--quiet", "--bare", str(git_dir), cwd=git_dir.parent)
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "attributes").write_text(NEUTRAL_ATTRIBUTES)

    def git(self, *args: str, folder: Path | None = None, **options: Any) -> bytes:
        index = folder.with_suffix(".index") if folder is not None else None
        return run_git(
            *args, git_dir=self.git_dir, work_tree=folder, index=index, cwd=self.git_dir, **options
        )

    def add(self, folder: Path) -> set[bytes]:
        """Every file of ``folder`` into its index, ignored or not; the paths added."""
        self.git("add", "--all", "--force", folder=folder)
        return {p for p in self.git("ls-files", "-z", folder=folder).split(b"\0") if p}

    def ignored(self, start: Path, paths: set[bytes]) -> set[bytes]:
        """Of ``paths``, those the ``.gitignore`` files in ``start`` ignore (a .gitignore never
        is: it is always shown)."""
        done = git_process(
            "check-ignore", "--no-index", "-z", "--stdin", git_dir=self.git_dir,
            work_tree=start, index=start.with_suffix(".index"), stdin=_z(sorted(paths)),
        )  # fmt: skip
        if done.returncode > 1:
            raise GitFailed(f"git check-ignore failed: {done.stderr[-300:]!r}")
        return {p for p in done.stdout.split(b"\0") if p and not p.endswith(b".gitignore")}

    def tree(self, folder: Path, leaving_out: set[bytes]) -> str:
        if leaving_out:
            self.git(
                "update-index",
                "-z",
                "--force-remove",
                "--stdin",
                folder=folder,
                stdin=_z(sorted(leaving_out)),
            )
        return self.git("write-tree", folder=folder).decode().strip()


def _z(paths: list[bytes]) -> bytes:
    return b"".join(path + b"\0" for path in paths)
