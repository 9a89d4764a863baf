"""Checkpoints of the workspace, so that what a session did can be undone, and only that.

Each workspace gets a private git repository in ponder's data directory (the *store*), with the
workspace as its work tree. The workspace's own ``.git`` is never read or written: what the
sandbox can write must not decide what git runs on the host or what a checkpoint holds. The
store's attributes switch off every filter and conversion (files are kept byte for byte), and
every command goes through :func:`~ponder.runtime.host_git.run_git`.

A session's checkpoints are a chain of commits on ``refs/ponder/checkpoints/<session>``: the
start, then one commit for each step that changed files, holding the workspace after the step
and, in its message, the tree from just before the step. A step's own change is the difference
between the two, so changes made between steps (by the user, or another session in the same
workspace) are never the session's: undo puts back only what the step changed, refuses when
one of those files changed since, and never follows a symlink out of the workspace
(:mod:`~ponder.runtime.confined_files`).

Ignored files are not stored, but ``.gitignore`` files always are, so a new one that hides
files shows in every diff. Past :data:`PRIVATE_FILE_LIMIT` files or :data:`PRIVATE_BYTE_LIMIT`
bytes, a folder that is not a project (a home directory, /tmp) is not copied and checkpoints are
off. Nested git repositories are left out: they keep their own history. Whether the workspace
changed is decided from a cheap fingerprint (paths, sizes, modification times), so steps that
change nothing cost no git calls.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from ponder.runtime.confined_files import ConfinedTree, OutsideWorkspace
from ponder.runtime.host_git import NEUTRAL_ATTRIBUTES, GitFailed, run_git
from ponder.sandbox.leftovers import private_tempdir

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
_BEFORE = re.compile(r"^before ([0-9a-f]{40})$", re.MULTILINE)
_SESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


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
    ignore_files: list[bytes]
    """Every ``.gitignore``, relative to the root."""
    too_big: bool = False
    """The walk stopped at the limits it was given."""


def scan(root: Path, limits: tuple[int, int] | None = None) -> Scan:
    """Walk the workspace (cache directories and nested repositories skipped, symlinks not
    followed, any depth), stopping once it has seen more than ``limits`` (files, bytes)."""
    digest = hashlib.blake2b(digest_size=16)
    files = size = 0
    nested: list[str] = []
    ignore_files: list[bytes] = []
    pending = [b""]
    base = os.fsencode(root)
    while pending:  # a loop, not os.walk: a directory nested thousands deep is no recursion
        relative = pending.pop()
        try:
            entries = sorted(os.scandir(base + b"/" + relative), key=lambda e: e.name)
        except OSError:
            continue
        if relative and any(entry.name == b".git" for entry in entries):
            nested.append(os.fsdecode(relative))
            continue
        for entry in entries:
            path = relative + b"/" + entry.name if relative else entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in _SKIPPED:
                    pending.append(path)
                continue
            files += 1
            size += info.st_size
            digest.update(b"%s\0%d\0%d\n" % (path, info.st_size, info.st_mtime_ns))
            if entry.name == b".gitignore":
                ignore_files.append(path)
            if limits is not None and (files > limits[0] or size > limits[1]):
                return Scan(digest.hexdigest(), files, size, nested, ignore_files, too_big=True)
    return Scan(digest.hexdigest(), files, size, nested, ignore_files)


_SKIPPED = frozenset(os.fsencode(name) for name in SKIPPED_DIRECTORIES)


@dataclass(frozen=True)
class Checkpoint:
    commit: str
    files: list[str]
    """Paths that changed (in a checkpoint: in its step; after an undo: the ones put back)."""


@dataclass(frozen=True)
class _Change:
    path: bytes
    before_mode: str
    before_blob: str
    after_mode: str
    after_blob: str


def _in_git_project(workspace: Path) -> bool:
    """Whether the workspace is (in) a git project; read from the file system, no git run."""
    return any((folder / ".git").exists() for folder in (workspace, *workspace.parents))


def store_for(workspace: Path, store: Path) -> Path:
    """The private repository that keeps a workspace's checkpoints, made when missing."""
    key = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:16]
    git_dir = store / f"{key}.git"
    try:
        if not (git_dir / "HEAD").exists():
            store.mkdir(parents=True, exist_ok=True)
            run_git("init", "--quiet", "--bare", str(git_dir), cwd=store)
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "attributes").write_text(NEUTRAL_ATTRIBUTES)
    except (GitFailed, OSError) as error:
        raise CheckpointError(f"cannot set up the checkpoint store: {error}") from None
    return git_dir


def apply_patch(workspace: Path, store: Path, patch: bytes) -> None:
    """Apply a patch (a sandbox's diff) to the workspace with git, through the store, so no
    attribute of the workspace can make git run a filter."""
    try:
        run_git(
            "apply", "--whitespace=nowarn", "-",
            git_dir=store_for(workspace, store), work_tree=workspace.resolve(), stdin=patch,
        )  # fmt: skip
    except GitFailed as error:
        raise CheckpointError(str(error)) from None


class Checkpoints:
    def __init__(self, workspace: Path, session: str, store: Path) -> None:
        if not _SESSION.fullmatch(session):
            raise CheckpointError(f"{session!r} cannot name a checkpoint")
        self.workspace = workspace.resolve()
        self.ref = f"{REF_PREFIX}/{session}"
        self.git_dir = store_for(self.workspace, store)
        self._limits = None if _in_git_project(self.workspace) else (
            PRIVATE_FILE_LIMIT,
            PRIVATE_BYTE_LIMIT,
        )  # fmt: skip
        self._tree = ConfinedTree(self.workspace)
        self._fingerprint = ""
        self._nested: list[str] = []
        self._tree_now = ""
        self._before: str | None = None
        self._temporary = private_tempdir("ponder-index-")
        self._index = self._temporary / "index"
        try:
            if self._tip() is None:
                self._commit(self._snapshot(), None, "ponder checkpoint\n\nstart\n")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the session's temporary index; safe to call twice."""
        shutil.rmtree(self._temporary, ignore_errors=True)

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the store

    def _git(self, *args: str, stdin: bytes | None = None) -> bytes:
        try:
            return run_git(
                *args,
                git_dir=self.git_dir,
                work_tree=self.workspace,
                index=self._index,
                stdin=stdin,
                env=IDENTITY,
            )
        except GitFailed as error:
            raise CheckpointError(str(error)) from None

    def _text(self, *args: str) -> str:
        return self._git(*args).decode().strip()

    def _tip(self) -> str | None:
        try:
            found = run_git(
                "rev-parse", "--verify", "--quiet", self.ref, git_dir=self.git_dir, check=False
            )
        except GitFailed as error:
            raise CheckpointError(str(error)) from None
        return found.decode().strip() or None

    def _snapshot(self) -> str:
        """The workspace as a tree; from the fingerprint alone when nothing changed."""
        current = scan(self.workspace, self._limits)
        if current.too_big:
            raise CheckpointError(
                f"{self.workspace} is not a git repository and holds more than "
                f"{PRIVATE_FILE_LIMIT:,} files or {PRIVATE_BYTE_LIMIT // 1024**3} GB, too much to "
                "copy at every step. Run ponder in a project's folder, or make it one with "
                "`git init`"
            )
        if current.digest == self._fingerprint:
            return self._tree_now
        self._nested = current.nested
        excluded = [f":(exclude,literal){path}" for path in self._nested]
        self._git("add", "--all", "--", ".", *excluded)
        if current.ignore_files:  # stored even when ignored, so a hiding one shows
            listed = b"".join(path + b"\0" for path in current.ignore_files)
            self._git("update-index", "--add", "--remove", "-z", "--stdin", stdin=listed)
        self._fingerprint, self._tree_now = current.digest, self._text("write-tree")
        return self._tree_now

    def _commit(self, tree: str, parent: str | None, message: str) -> str:
        commit = self._text("commit-tree", tree, "-m", message, *(["-p", parent] if parent else []))
        self._git("update-ref", self.ref, commit)
        return commit

    # --- steps

    def before_step(self) -> None:
        """Remember the workspace as a step starts, so that only the step's own change is its."""
        self._before = self._snapshot()

    def checkpoint(self) -> Checkpoint | None:
        """After a step: store the workspace if the step changed it; None when it did not."""
        before, self._before = self._before, None
        tree = self._snapshot()
        if tree == before:  # the usual step that changed nothing: no git call at all
            return None
        tip = self._tip()
        if tip is None:
            raise CheckpointError("this session's checkpoints are gone from the store")
        if before is None:  # no before_step: the step began at the last checkpoint
            before = self._text("rev-parse", f"{tip}^{{tree}}")
            if tree == before:
                return None
        commit = self._commit(tree, tip, f"ponder checkpoint\n\nbefore {before}\n")
        return Checkpoint(commit, [os.fsdecode(c.path) for c in self._changes(before, tree)])

    def _changes(self, old_tree: str, new_tree: str) -> list[_Change]:
        raw = self._git("diff-tree", "-r", "-z", "--no-renames", old_tree, new_tree)
        fields = raw.split(b"\0")
        changes = []
        for at in range(0, len(fields) - 1, 2):
            before_mode, after_mode, before_blob, after_blob, _ = fields[at][1:].decode().split()
            changes.append(
                _Change(fields[at + 1], before_mode, before_blob, after_mode, after_blob)
            )
        return changes

    def _chain(self) -> list[tuple[str, str, str]]:
        """The session's checkpoints, newest first: (commit, tree before its step, its tree)."""
        log = self._git("log", "-z", "--format=%H%n%T%n%B", self.ref).decode()
        chain = []
        for record in filter(None, log.split("\0")):
            commit, tree, message = record.split("\n", 2)
            found = _BEFORE.search(message)
            chain.append((commit, found.group(1) if found else "", tree))
        return chain

    # --- undo and diff

    def undo(self) -> Checkpoint:
        """Put back what the session's last checkpointed step changed; returns where it is now.

        Nothing is changed unless every file of that step is still as the step left it.
        """
        chain = self._chain()
        if len(chain) < 2:
            raise CheckpointError("there is no earlier checkpoint to go back to")
        (_, before, after), (parent, _, _) = chain[0], chain[1]
        changes = self._changes(before, after)
        changed_since = [c.path for c in changes if not self._still(c)]
        if changed_since:
            names = ", ".join(os.fsdecode(p) for p in changed_since[:10])
            more = f" and {len(changed_since) - 10} more" if len(changed_since) > 10 else ""
            raise CheckpointError(
                f"nothing undone: {names}{more} changed since this session's last step (by you "
                "or another session); undo would overwrite that"
            )
        contents = self._contents([c.before_blob for c in changes if c.before_mode != "000000"])
        restored: list[str] = []
        for change in sorted(changes, key=lambda c: c.before_mode != "000000"):  # removals first
            try:
                self._restore(change, contents)
            except (OSError, OutsideWorkspace) as error:
                raise CheckpointError(
                    f"undo stopped at {os.fsdecode(change.path)}: {error}; "
                    f"{len(restored)} files were put back"
                ) from None
            restored.append(os.fsdecode(change.path))
        self._git("update-ref", self.ref, parent)
        self._fingerprint = ""
        return Checkpoint(parent, restored)

    def _still(self, change: _Change) -> bool:
        """Whether the path is as the step left it (a symlink on its way: it is not)."""
        try:
            now = self._tree.entry(change.path)
        except OutsideWorkspace:
            return False
        if change.after_mode == "000000":
            return now is None or now.kind == "directory"
        if change.after_mode == "120000":
            return now is not None and now.kind == "link" and now.blob == change.after_blob
        if change.after_mode in ("100644", "100755"):
            return (
                now is not None
                and now.kind == "file"
                and now.blob == change.after_blob
                and now.executable == (change.after_mode == "100755")
            )
        return True  # a nested repository's entry: not ponder's to check

    def _restore(self, change: _Change, contents: dict[str, bytes]) -> None:
        mode = change.before_mode
        if mode == "000000":
            self._tree.remove(change.path)
        elif mode == "120000":
            self._tree.write_link(change.path, contents[change.before_blob])
        elif mode in ("100644", "100755"):
            self._tree.write_file(change.path, contents[change.before_blob], mode == "100755")

    def _contents(self, blobs: list[str]) -> dict[str, bytes]:
        """The blobs' contents, read from the store in one git call."""
        wanted = sorted(set(blobs))
        if not wanted:
            return {}
        output = self._git("cat-file", "--batch", stdin="".join(f"{b}\n" for b in wanted).encode())
        contents, at = {}, 0
        for blob in wanted:
            header_end = output.index(b"\n", at)
            header = output[at:header_end].split()
            if len(header) != 3:
                raise CheckpointError(f"the checkpoint store lacks {blob} (damaged?)")
            contents[blob] = output[header_end + 1 : header_end + 1 + int(header[2])]
            at = header_end + 1 + int(header[2]) + 1
        return contents

    def diff(self) -> bytes:
        """What the session changed: the workspace now against how it started, leaving out
        files that only others changed (between the session's steps)."""
        chain = self._chain()
        start = chain[-1][2]
        steps = list(pairwise(chain))  # each checkpoint with its parent
        others: set[bytes] = set()
        for (_, before, _), (_, _, previous) in steps:
            if before and before != previous:  # something changed the workspace between steps
                others.update(c.path for c in self._changes(previous, before))
        if others:
            for (_, before, after), (_, _, previous) in steps:
                others.difference_update(c.path for c in self._changes(before or previous, after))
        excluded = [f":(exclude,literal){os.fsdecode(path)}" for path in sorted(others)]
        return self._git(
            "diff", "--binary", "--no-ext-diff", "--no-textconv", "-M", start,
            self._snapshot(), "--", ".", *excluded,
        )  # fmt: skip
