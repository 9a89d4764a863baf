"""Checkpoints of the workspace: what a session did is seen, shown and undone, and only that.

Each workspace gets a private git repository in ponder's data directory (the *store*,
:mod:`~ponder.runtime.checkpoint_store`); the workspace's own ``.git`` is never read or written.

**What a checkpoint holds.** :func:`~ponder.runtime.ledger.walk` reads every path of the
workspace with facts the sandbox cannot forge (inode, size, ctime). A path is *stored* (its
content, in the ``w`` tree, at its own path) or *listed* (a signature of its facts, as a gitlink
in the ``l`` tree, at an encoded path), as :func:`~ponder.runtime.ledger.unstored_reason` says:
git metadata, cache folders, big and unreadable files are listed, the rest stored, ignored files
included. Nothing the sandbox writes turns this off: a name git refuses, a file git cannot read
or a file too big is listed instead.

**The chain.** A session's checkpoints are commits on ``refs/ponder/ledger/<session>``: the
start, then one commit for each step that changed something, holding the workspace before
(``bw``, ``bl``) and after (``w``, ``l``) the step. Changes between two steps are someone
else's (the user, another session), unless the sandbox still ran processes when the earlier
step ended: then a background job of the session may have made them, and they are the
session's, in a checkpoint of their own. Undo puts back what the session's last checkpoint
changed, refuses when any of it changed since, and never follows a symlink out of the
workspace (:mod:`~ponder.runtime.confined_files`).

**Cost.** A step costs a walk only when the kernel saw a change (:mod:`~ponder.runtime.fs_watch`)
or the sandbox still runs processes; git then reads only the paths whose facts changed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ponder.runtime.change_report import describe
from ponder.runtime.checkpoint_chain import EMPTY_TREE, SessionChain, State, folders_of
from ponder.runtime.checkpoint_indexes import NO_OBJECT, WorkspaceIndexes, z
from ponder.runtime.checkpoint_store import (
    STORE_CAP,
    CheckpointError,
    mark_live,
    prune,
    remove_unreferenced,
    store_for,
    store_size,
)
from ponder.runtime.checkpoint_undo import LastStepUndo, Undone
from ponder.runtime.confined_files import ConfinedTree
from ponder.runtime.events import Checkpointed, PathChange
from ponder.runtime.fs_watch import ChangeWatch
from ponder.runtime.host_git import GitFailed, git_process
from ponder.runtime.ledger import INODE, SIZE, Change, own_output, walk
from ponder.sandbox.leftovers import private_tempdir

__all__ = ["Checkpoint", "CheckpointError", "Checkpoints", "Diff", "Undone"]

REF_PREFIX = "refs/ponder/ledger"
PRIVATE_FILE_LIMIT = 20_000
"""Paths a folder that is not a git project may hold when a session starts (a home directory,
/tmp: too much to walk at every step)."""
IGNORE_RULES_LIMIT = 256 * 1024
"""Bytes of .gitignore files beyond which ignored files are not told apart (shown instead)."""
IGNORE_TIMEOUT_S = 30
KEPT_STEPS = (20, 5, 1)
"""When the store is over its cap with this session alone, how many of its newest checkpoints
stay as they are (the older ones merged into one), tried in turn until it fits."""
BACKGROUND = "background jobs of this session"
_SESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class Checkpoint:
    commit: str
    changes: list[PathChange]
    background: bool = False
    """Made by the session's background jobs between two steps."""

    @property
    def files(self) -> list[str]:
        return [change.path for change in self.changes]

    def event(self, step: int) -> Checkpointed:
        return Checkpointed(
            step=step,
            commit=self.commit,
            files=self.files,
            changes=self.changes,
            background=self.background,
        )


@dataclass(frozen=True)
class Diff:
    """What a session changed: the git diff of what it shows, and every changed path."""

    patch: bytes
    changes: list[PathChange]


def _in_git_project(workspace: Path) -> bool:
    """Whether the workspace is (in) a git project; read from the file system, no git run."""
    return any((folder / ".git").exists() for folder in (workspace, *workspace.parents))


class Checkpoints:
    def __init__(
        self,
        workspace: Path,
        session: str,
        store: Path,
        busy: Callable[[], bool] | None = None,
        create: bool = True,
    ) -> None:
        """``busy`` says whether the sandbox still runs processes (background jobs); without it
        only the kernel's notifications decide whether a step changed anything. Without
        ``create``, a session that has no checkpoints yet is an error (``ponder diff``)."""
        if not _SESSION.fullmatch(session):
            raise CheckpointError(f"{session!r} cannot name a checkpoint")
        self.workspace = workspace.resolve()
        self.ref = f"{REF_PREFIX}/{session}"
        self.git_dir = store_for(self.workspace, store)
        self._root = os.fsencode(self.workspace)
        self._busy = busy
        self._tree = ConfinedTree(self.workspace)
        self._watch = ChangeWatch()
        self._own = own_output(self._root)
        self._state: State | None = None
        self._before: State | None = None
        self._window_is_ours = False
        self._ignore_rules = 0
        """Bytes of the .gitignore files the last walk saw."""
        self._fitted_at = 0
        """The store's size after it was last brought under its cap."""
        self._temporary = private_tempdir("ponder-index-")
        stored_index = self._temporary / "stored"
        self._chain = SessionChain(self.git_dir, self.workspace, self.ref, stored_index)
        self._indexes = WorkspaceIndexes(self._chain, self._temporary)
        self._live = mark_live(self.git_dir, session)
        try:
            if not create and self._chain.tip() is None:
                raise CheckpointError(
                    f"session {session} has no checkpoints (checkpoints were off, or an older "
                    "ponder made them)"
                )
            state = self._first_snapshot()
            if self._chain.tip() is None:
                self._chain.commit(None, state, None, "start")
            self._fit_store()
            self._indexes.keep()
        except GitFailed as error:
            self.close()
            raise CheckpointError(str(error)) from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the session's temporary indexes and stop watching; safe to call twice."""
        self._watch.close()
        self._live.unlink(missing_ok=True)
        if self._indexes.stored_index.exists():
            self._indexes.keep()
        shutil.rmtree(self._temporary, ignore_errors=True)

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the store

    # --- reading the workspace

    def _processes_alive(self) -> bool:
        """Whether the sandbox still runs processes that could change files (a sandbox that
        cannot say is taken to run some)."""
        if self._busy is None:
            return False
        try:
            return self._busy()
        except Exception:  # a sandbox that cannot say is taken to run some
            return True

    def _first_snapshot(self) -> State:
        """The workspace as the session starts, git's work cut short by the index an earlier
        session left: only files whose facts changed since are hashed."""
        self._indexes.seen = self._indexes.load_kept() or {}
        return self._snapshot(first=True)

    def _snapshot(self, first: bool = False, force: bool = False) -> State:
        """The workspace now; from the last walk when the kernel saw no change since. (A
        process that is still alive could write through a memory mapping without telling the
        kernel's watch: ``force`` walks then.)"""
        if self._state is not None and not force and self._watch.quiet():
            return self._state
        self._watch.begin_walk()
        seen = walk(self._root, self._watch.watch)
        now = seen.found
        for path, inode in self._own.items():
            if path in now and now[path][INODE] == inode:  # the file ponder holds open
                del now[path]  # ponder's own output (-v 2> log): not the session's change
        if first and len(now) > PRIVATE_FILE_LIMIT and not _in_git_project(self.workspace):
            raise CheckpointError(
                f"{self.workspace} is not a git repository and holds more than "
                f"{PRIVATE_FILE_LIMIT:,} files, too many to watch at every step. Run ponder in "
                "a project's folder, or make it one with `git init`"
            )
        earlier = self._indexes.seen
        for path in earlier.keys() - now.keys():  # in a folder that became unreadable: unseen,
            if any(folder in seen.blind for folder in folders_of(path)):  # not gone
                now[path] = earlier[path]
        self._indexes.record(now, self._watch.written())
        self._ignore_rules = sum(now[path][SIZE] for path in now if path.endswith(b".gitignore"))
        self._state = State(
            self._chain.write_tree(self._indexes.stored_index),
            self._chain.write_tree(self._indexes.listed_index),
            self._indexes.private_modes(now),
        )
        return self._state

    # --- steps

    def before_step(self) -> Checkpoint | None:
        """Note the workspace as a step starts, so that only the step's own change is its.

        What changed since the last step while the sandbox still ran processes is the
        session's (a background job): it is stored as a checkpoint of its own, returned."""
        alive = self._processes_alive()
        self._before = self._snapshot(force=alive)
        return self._store_window(self._before, alive)

    def settle(self) -> Checkpoint | None:
        """After a run, and as the session ends: store what the session's background jobs
        changed since its last step; None when nothing did, or no job was left running."""
        if not self._window_is_ours:
            return None
        alive = self._processes_alive()
        return self._store_window(self._snapshot(force=True), alive)

    def _store_window(self, now: State, alive: bool) -> Checkpoint | None:
        ours, self._window_is_ours = self._window_is_ours, alive
        return self._store_step(self._tip_state(), now, BACKGROUND) if ours else None

    def checkpoint(self, label: str = "step") -> Checkpoint | None:
        """After a step: store the workspace if the step changed it; None when it did not.
        ``label`` names the step for undo (``step 3``)."""
        before, self._before = self._before, None
        alive = self._processes_alive()
        after = self._snapshot(force=alive)
        self._window_is_ours = alive
        if before is None:  # no before_step: the step began at the last checkpoint
            before = self._tip_state()
        return self._store_step(before, after, label)

    def _tip_state(self) -> State:
        tip = self._chain.tip()
        if tip is None:
            raise CheckpointError("this session's checkpoints are gone from the store")
        return self._chain.links(limit=1)[0].after

    def _store_step(self, before: State, after: State, label: str) -> Checkpoint | None:
        if before == after:
            return None
        tip = self._chain.tip()
        if tip is None:
            raise CheckpointError("this session's checkpoints are gone from the store")
        changes = list(self._chain.changes(before, after).values())
        if not changes:  # (a file's private mode alone changed: nothing to show or undo)
            return None
        commit = self._chain.commit(before, after, tip, label)
        self._fit_store()
        return Checkpoint(commit, self.describe(changes), label == BACKGROUND)

    def _fit_store(self) -> None:
        """Keep the store under its cap: other sessions' checkpoints go first, then this
        session's oldest steps are merged into one (undo then takes them back together)."""
        if store_size(self.git_dir) <= max(STORE_CAP, self._fitted_at + STORE_CAP // 10):
            return  # (objects of the last minutes stay for a while: no gc at every step)
        prune(self.git_dir, self.ref, STORE_CAP)
        for keep in KEPT_STEPS:
            if store_size(self.git_dir) <= STORE_CAP:
                break
            self._chain.merge_oldest(keep)
            remove_unreferenced(self.git_dir)
        self._indexes.forget_kept()  # it may name blobs that are gone
        self._fitted_at = store_size(self.git_dir)

    # --- undo

    def undo(self) -> Undone:
        """Put back what the session's last checkpoint changed (:class:`LastStepUndo`)."""
        undone = LastStepUndo(self._chain, self._tree).run()
        self._state = None  # the next look walks
        return undone

    # --- what the session changed

    def session_changes(self, since: str | None = None) -> tuple[State, State, dict[bytes, Change]]:
        """The workspace at the session's start (or at checkpoint ``since``) and now, and what
        the session changed between them: everything but what only others changed, between
        its steps or since its last one (unless its background jobs may have: a live
        session's jobs still running)."""
        chain = self._chain.links()
        if since is not None:
            cut = next((at for at, link in enumerate(chain) if link.commit == since), None)
            if cut is None:
                raise CheckpointError(f"checkpoint {since[:8]} is not in this session")
            chain = chain[: cut + 1]
        start = chain[-1].after
        now = self._snapshot(force=True)
        others: set[bytes] = set()
        ours: set[bytes] = set()
        previous = start
        for link in reversed(chain[:-1]):
            assert link.before is not None
            if link.before != previous:  # something changed the workspace between steps
                others.update(self._chain.changes(previous, link.before))
            ours.update(self._chain.changes(link.before, link.after))
            previous = link.after
        if not self._window_is_ours:
            others.update(self._chain.changes(previous, now))
        changes = self._chain.changes(start, now)
        for path in others - ours:
            changes.pop(path, None)
        return start, now, changes

    def diff(self, since: str | None = None) -> Diff:
        """Everything the session changed (since checkpoint ``since``): the git diff of what is
        shown (stored, not ignored), and every changed path described."""
        start, now, changes = self.session_changes(since)
        ignored = self.ignored(p for p, c in changes.items() if not c.listed)
        shown = [p for p, c in changes.items() if not c.listed and p not in ignored]
        return Diff(self.patch(start, now, shown), self.describe(changes.values(), ignored))

    @property
    def tip(self) -> str | None:
        """The session's newest checkpoint."""
        return self._chain.tip()

    def describe(
        self, changes: Iterable[Change], ignored: set[bytes] | None = None
    ) -> list[PathChange]:
        """``changes`` as a person should see them (see :mod:`~ponder.runtime.change_report`)."""
        wanted = list(changes)
        if ignored is None:
            ignored = self.ignored(c.path for c in wanted if not c.listed)
        folders = {f for p in ignored for f in folders_of(p)}
        ignored_folders = {f.rstrip(b"/") for f in self._check_ignore(f + b"/" for f in folders)}
        return describe(wanted, ignored, self._indexes.seen.get, self._tree, ignored_folders)

    def ignored(self, paths: Iterable[bytes]) -> set[bytes]:
        """Which of ``paths`` the workspace's ``.gitignore`` files hide from the diff (a
        ``.gitignore`` never: it hides other files, so it is always shown, even one that ignores
        itself)."""
        return {p for p in self._check_ignore(paths) if not p.endswith(b".gitignore")}

    def _check_ignore(self, paths: Iterable[bytes]) -> set[bytes]:
        """Which of ``paths`` the ``.gitignore`` files ignore. Only for what the diff shows, so
        when that cannot be told (a link on the way, rules too many to apply in time) the
        answer is none: the diff then shows more, never less."""
        wanted = list(paths)
        if not wanted or self._ignore_rules > IGNORE_RULES_LIMIT:
            return set()
        try:
            done = git_process(
                "check-ignore", "--no-index", "-z", "--stdin",
                git_dir=self.git_dir, work_tree=self.workspace, index=self._indexes.stored_index,
                stdin=z(wanted), timeout=IGNORE_TIMEOUT_S,
            )  # fmt: skip
        except GitFailed:
            return set()
        return {p for p in done.stdout.split(b"\0") if p} if done.returncode <= 1 else set()

    def patch(self, start: State, now: State, paths: Iterable[bytes]) -> bytes:
        """The git diff of the stored ``paths`` from ``start`` to ``now``."""
        wanted = set(paths)
        if not wanted:
            return b""
        index = self._temporary / "patch"
        index.unlink(missing_ok=True)
        self._chain.git("read-tree", start.stored, index=index)
        changes = self._chain.changes(
            State(start.stored, EMPTY_TREE), State(now.stored, EMPTY_TREE)
        )
        records = []
        for path in sorted(wanted):
            after = changes[path].after if path in changes else None
            if after is None or after.listed:
                records.append(b"0 %s\t%s\0" % (NO_OBJECT.encode(), path))
            else:
                records.append(b"%s %s\t%s\0" % (after.mode.encode(), after.object.encode(), path))
        self._chain.git("update-index", "-z", "--index-info", stdin=b"".join(records), index=index)
        shown = self._chain.write_tree(index)
        return self._chain.git(
            "diff", "--binary", "--no-ext-diff", "--no-textconv", "-M", start.stored, shown,
        )  # fmt: skip
