"""Git checkpoints of the workspace, so anything the model did can be undone.

After each step that changed files, the whole workspace (untracked files included, ignored ones
not) is stored as a commit on a private ref, ``refs/ponder/checkpoints/<session>``. This uses a
private index file, so the user's branch, index and stash are never touched. A workspace that is
not a git repository gets a private repository outside it (in the user data directory) with the
workspace as its work tree; past :data:`PRIVATE_FILE_LIMIT` files or :data:`PRIVATE_BYTE_LIMIT`
bytes such a folder (a home directory, /tmp) is not copied and checkpoints are off. Nested git
repositories (clones, submodules) are left out: they keep their own history. Whether a step
changed anything is decided from a cheap fingerprint of the tree (paths, sizes, modification
times), so steps that change nothing cost no git calls.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import git

SKIPPED_DIRECTORIES = frozenset(
    {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", "node_modules"}
)
REF_PREFIX = "refs/ponder/checkpoints"
IDENTITY = {
    "GIT_AUTHOR_NAME": "ponder",
    "GIT_AUTHOR_EMAIL": "ponder@localhost",
    "GIT_COMMITTER_NAME": "ponder",
    "GIT_COMMITTER_EMAIL": "ponder@localhost",
}


PRIVATE_FILE_LIMIT = 20_000
PRIVATE_BYTE_LIMIT = 1024**3


class CheckpointError(Exception):
    pass


@dataclass(frozen=True)
class Scan:
    digest: str
    """Every file's path, size and modification time, hashed."""
    files: int
    size: int
    nested: list[str]
    """Nested git repositories, relative to the root."""
    too_big: bool = False
    """The walk stopped at the limits it was given."""


def scan(root: Path, limits: tuple[int, int] | None = None) -> Scan:
    """Walk the workspace (cache directories and nested repositories skipped), stopping once
    it has seen more than ``limits`` (files, bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    files = size = 0
    nested: list[str] = []
    for directory, subdirectories, names in os.walk(root):
        if directory != str(root) and ".git" in subdirectories + names:
            nested.append(os.path.relpath(directory, root))
            subdirectories.clear()
            continue
        subdirectories[:] = sorted(d for d in subdirectories if d not in SKIPPED_DIRECTORIES)
        for name in sorted(names):
            path = os.path.join(directory, name)  # noqa: PTH118 (a hot loop; Path is slower)
            try:
                stat = os.lstat(path)
            except OSError:
                continue
            files += 1
            size += stat.st_size
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
            if limits is not None and (files > limits[0] or size > limits[1]):
                return Scan(digest.hexdigest(), files, size, nested, too_big=True)
    return Scan(digest.hexdigest(), files, size, nested)


@dataclass(frozen=True)
class Checkpoint:
    commit: str
    files: list[str]
    """Paths that changed since the previous checkpoint."""


class Checkpoints:
    def __init__(self, workspace: Path, session: str, store: Path) -> None:
        self.workspace = workspace.resolve()
        self.ref = f"{REF_PREFIX}/{session}"
        try:
            repository = git.Repo(self.workspace, search_parent_directories=True)
            self.private = False
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            key = hashlib.sha256(str(self.workspace).encode()).hexdigest()[:16]
            repository = git.Repo.init(store / f"{key}.git", bare=True)
            self.private = True
        self.repo = repository
        self._command = git.Git(str(self.workspace))
        self._index = Path(tempfile.mkdtemp(prefix="ponder-index-")) / "index"
        self._env = {**IDENTITY, "GIT_INDEX_FILE": str(self._index)}
        if self.private:
            self._env.update(GIT_DIR=str(repository.git_dir), GIT_WORK_TREE=str(self.workspace))
        self.base_commit = None if self.private else self._head()
        self.dirty_at_start = (not self.private) and repository.is_dirty(untracked_files=True)
        self._fingerprint = ""
        self._nested: list[str] = []
        self.checkpoint(force=True)  # the state the task starts from

    def _git(self, *args: str) -> str:
        try:
            output: str = self._command.execute(["git", *args], env={**os.environ, **self._env})
        except git.GitCommandError as exc:
            raise CheckpointError(f"git {args[0]} failed: {_gist(str(exc.stderr))}") from None
        return output

    def _head(self) -> str | None:
        try:
            return self.repo.head.commit.hexsha
        except ValueError:  # a repository without commits
            return None

    def _snapshot(self) -> str:
        """The workspace as a tree (in the private index)."""
        self._git("add", "-A", "--", ".", *(f":(exclude,literal){path}" for path in self._nested))
        return self._git("write-tree")

    def _tip(self) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", self.ref) or None
        except CheckpointError:
            return None

    def checkpoint(self, force: bool = False) -> Checkpoint | None:
        """Store the workspace if it changed since the last checkpoint; None when it did not."""
        current = scan(
            self.workspace, (PRIVATE_FILE_LIMIT, PRIVATE_BYTE_LIMIT) if self.private else None
        )
        if current.too_big:
            raise CheckpointError(
                f"{self.workspace} is not a git repository and holds more than "
                f"{PRIVATE_FILE_LIMIT:,} files or {PRIVATE_BYTE_LIMIT // 1024**3} GB, too much to "
                "copy at every step. Run ponder in a project's folder, or make it one with "
                "`git init`"
            )
        if current.digest == self._fingerprint and not force:
            return None
        self._fingerprint, self._nested = current.digest, current.nested
        tree = self._snapshot()
        parent = self._tip()
        if parent is not None and self._git("rev-parse", f"{parent}^{{tree}}") == tree:
            return None
        args = ["commit-tree", tree, "-m", "ponder checkpoint"]
        if parent:
            args += ["-p", parent]
        commit = self._git(*args)
        self._git("update-ref", self.ref, commit)
        changed = self._git("diff-tree", "-r", "--name-only", "--no-commit-id", "--root", commit)
        return Checkpoint(commit, changed.splitlines())

    def undo(self) -> Checkpoint:
        """Put the workspace back as it was at the previous checkpoint; returns that one."""
        self.checkpoint()
        tip = self._tip()
        try:
            parent = self._git("rev-parse", "--verify", "--quiet", f"{tip}^") if tip else ""
        except CheckpointError:  # the first checkpoint has no parent
            parent = ""
        if not tip or not parent:
            raise CheckpointError("there is no earlier checkpoint to go back to")
        removed = self._git("diff", "--name-only", "--diff-filter=A", "--no-renames", parent, tip)
        for name in removed.splitlines():
            (self.workspace / name).unlink(missing_ok=True)
        self._git("read-tree", parent)
        self._git("checkout-index", "-a", "-f")
        self._git("update-ref", self.ref, parent)
        self._fingerprint = scan(self.workspace).digest
        changed = self._git("diff", "--name-only", "--no-renames", parent, tip)
        return Checkpoint(parent, changed.splitlines())

    def diff(self) -> str:
        """Everything the session changed: the workspace now against how it started."""
        start = self._git("rev-list", "--max-parents=0", self.ref).splitlines()[0]
        return self._git("diff", "--binary", start, self._snapshot())


def _gist(stderr: str) -> str:
    """What git's error output says, without its hints and warnings."""
    text = stderr.strip().removeprefix("stderr:").strip(" '\"\n")
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return " ".join(errors or lines[-1:])[:300]
