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
from typing import Literal, Protocol

from ponder.runtime.host_git import NEUTRAL_ATTRIBUTES, GitFailed, run_git
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
    """The sandbox's change to its workspace since it started, as a git diff."""
    temporary = private_tempdir("ponder-copy-")
    try:
        store = temporary / "store.git"
        run_git("init", "--quiet", "--bare", str(store), cwd=temporary)
        (store / "info").mkdir(exist_ok=True)
        (store / "info" / "attributes").write_text(NEUTRAL_ATTRIBUTES)
        trees = []
        for which in ("start", "now"):
            folder = temporary / which
            folder.mkdir()
            sandbox.export(which, folder, skip=in_git_metadata)
            index = temporary / f"{which}.index"
            run_git("add", "--all", git_dir=store, work_tree=folder, index=index)
            trees.append(run_git("write-tree", git_dir=store, index=index).decode().strip())
            shutil.rmtree(folder)
        patch = run_git(
            "diff", "--binary", "--no-ext-diff", "--no-textconv", *trees,
            git_dir=store, cwd=temporary, limit=DIFF_LIMIT,
        )  # fmt: skip
    except GitFailed as error:
        raise SandboxError(f"working out the sandbox's change failed: {error}") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return patch.decode("utf-8", errors="replace")
