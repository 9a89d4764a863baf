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

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ponder.runtime.change_report import describe
from ponder.runtime.checkpoint_store import (
    DIRECTORY_ITSELF,
    STORE_CAP,
    CheckpointError,
    decode_path,
    listed_name,
    mark_live,
    prune,
    remove_unreferenced,
    store_for,
    store_size,
)
from ponder.runtime.confined_files import ConfinedTree, OutsideWorkspace
from ponder.runtime.events import Checkpointed, PathChange
from ponder.runtime.fs_watch import ChangeWatch
from ponder.runtime.host_git import GitFailed, git_process, run_git
from ponder.runtime.ledger import (
    MODE,
    SIZE,
    Change,
    Side,
    Stat,
    facts_of,
    in_git_metadata,
    is_git_metadata,
    signature,
    unstored_reason,
    walk,
)
from ponder.sandbox.leftovers import private_tempdir

__all__ = ["Checkpoint", "CheckpointError", "Checkpoints", "Diff", "Undone"]

REF_PREFIX = "refs/ponder/ledger"
IDENTITY = {
    "GIT_AUTHOR_NAME": "ponder",
    "GIT_AUTHOR_EMAIL": "ponder@localhost",
    "GIT_COMMITTER_NAME": "ponder",
    "GIT_COMMITTER_EMAIL": "ponder@localhost",
}
INDEX_CACHE = "ponder-stored-index"
"""In the store: the last session's index of stored files, a cache of git's hashing..."""
FACTS_CACHE = "ponder-stored-facts"
"""...and the facts ponder saw of each of them."""
PRIVATE_FILE_LIMIT = 20_000
"""Paths a folder that is not a git project may hold when a session starts (a home directory,
/tmp: too much to walk at every step)."""
IGNORE_RULES_LIMIT = 256 * 1024
"""Bytes of .gitignore files beyond which ignored files are not told apart (shown instead)."""
IGNORE_TIMEOUT_S = 30
KEPT_STEPS = (20, 5, 1)
"""When the store is over its cap with this session alone, how many of its newest checkpoints
stay as they are (the older ones merged into one), tried in turn until it fits."""
BULK = 256
"""Files added at once beyond which git writes them into a pack (``core.bigFileThreshold``)."""
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
NO_OBJECT = "0" * 40
LISTED_MODE = "160000"
FOLDER = "040000"
"""A listed folder's mode in a :class:`Side` (its tree entry is a gitlink like any listed)."""
BACKGROUND = "background jobs of this session"
_SESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class State:
    """The workspace at one moment: the stored tree, the listed tree, and the modes of the
    stored files others may not read (git keeps only 644 or 755: undo must not make a 600
    ``.env`` readable by everyone)."""

    stored: str
    listed: str
    private: str = ""
    """A blob of ``MODE PATH\0`` records; empty when no stored file is private."""


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


@dataclass(frozen=True)
class Undone:
    commit: str
    """The checkpoint the workspace is back at."""
    undid: str
    """What was undone: ``step 3``, ``background jobs of this session``."""
    restored: list[str]
    """Paths put back as they were."""
    removed: list[str]
    """Paths the step had made, removed."""
    kept: list[tuple[str, str]]
    """Paths undo could not put back, each with the reason."""


@dataclass(frozen=True)
class _Link:
    """One commit of the chain."""

    commit: str
    before: State | None
    after: State
    label: str
    """What made it: ``start``, ``step 3``, ``background jobs of this session``."""


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
        self._seen: dict[bytes, Stat] = {}
        self._listed: set[bytes] = set()
        self._unreadable: dict[bytes, Stat] = {}
        """Paths git could not read, with their facts then (listed until those change)."""
        self._state: State | None = None
        self._before: State | None = None
        self._window_is_ours = False
        self._ignore_rules = 0
        """Bytes of the .gitignore files the last walk saw."""
        self._fitted_at = 0
        self._private_records = b""
        self._private_blob = ""
        """The store's size after it was last brought under its cap."""
        self._temporary = private_tempdir("ponder-index-")
        self._stored_index = self._temporary / "stored"
        self._listed_index = self._temporary / "listed"
        self._index_cache = self.git_dir / INDEX_CACHE
        self._facts_cache = self.git_dir / FACTS_CACHE
        self._live = mark_live(self.git_dir, session)
        try:
            if not create and self._tip() is None:
                raise CheckpointError(
                    f"session {session} has no checkpoints (checkpoints were off, or an older "
                    "ponder made them)"
                )
            state = self._first_snapshot()
            if self._tip() is None:
                self._commit(None, state, None, "start")
            self._fit_store()
            self._keep_index()
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
        if self._stored_index.exists():
            self._keep_index()
        shutil.rmtree(self._temporary, ignore_errors=True)

    def _keep_index(self) -> None:
        """Leave the stored index in the store with the facts ponder saw of each of its files,
        so the next session of this workspace hashes only the files whose facts changed since
        (to the nanosecond, ctime included, which no process can set back). The facts name the
        index they belong to by its checksum: a pair that does not match is not used."""
        stored = sorted((p, f) for p, f in self._seen.items() if p not in self._listed)
        with contextlib.suppress(OSError):
            index = self._stored_index.read_bytes()
            facts = (
                index[-20:].hex().encode()
                + b"\n"
                + b"".join(b" ".join(b"%d" % n for n in f) + b" " + p + b"\0" for p, f in stored)
            )
            for data, target in ((index, self._index_cache), (facts, self._facts_cache)):
                copy = self._temporary / "kept"
                copy.write_bytes(data)
                copy.replace(target)

    def _kept_index(self) -> dict[bytes, Stat] | None:
        """The facts of the index an earlier session left, copied in as this session's; None
        when there is none that matches."""
        try:
            index = self._index_cache.read_bytes()
            checksum, _, records = self._facts_cache.read_bytes().partition(b"\n")
        except OSError:
            return None
        if checksum != index[-20:].hex().encode():
            return None
        facts: dict[bytes, Stat] = {}
        for record in filter(None, records.split(b"\0")):
            *numbers, path = record.split(b" ", 8)
            facts[path] = tuple(int(n) for n in numbers)  # type: ignore[assignment]
        self._stored_index.write_bytes(index)
        return facts

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the store

    def _git(self, *args: str, stdin: bytes | None = None, index: Path | None = None) -> bytes:
        try:
            return run_git(
                *args,
                git_dir=self.git_dir,
                work_tree=self.workspace,
                index=index or self._stored_index,
                stdin=stdin,
                env=IDENTITY,
            )
        except GitFailed as error:
            raise CheckpointError(str(error)) from None

    def _tip(self) -> str | None:
        try:
            found = git_process("rev-parse", "--verify", "--quiet", self.ref, git_dir=self.git_dir)
        except GitFailed as error:
            raise CheckpointError(str(error)) from None
        return found.stdout.decode().strip() or None

    def _commit(self, before: State | None, after: State, parent: str | None, message: str) -> str:
        """A checkpoint holding ``after`` (and ``before``, the workspace before its step)."""
        entries = [(b"040000 tree", b"w", after.stored), (b"040000 tree", b"l", after.listed)]
        if after.private:
            entries.append((b"100644 blob", b"m", after.private))
        if before is not None:
            entries += [(b"040000 tree", b"bw", before.stored)]
            entries += [(b"040000 tree", b"bl", before.listed)]
            if before.private:
                entries.append((b"100644 blob", b"bm", before.private))
        listing = b"".join(
            b"%s %s\t%s\0" % (kind, object_id.encode(), name)
            for kind, name, object_id in sorted(entries, key=lambda entry: entry[1])
        )
        tree = self._git("mktree", "-z", stdin=listing).decode().strip()
        parents = ["-p", parent] if parent else []
        text = f"ponder checkpoint\n\n{message}\n"
        commit = self._git("commit-tree", tree, "-m", text, *parents).decode().strip()
        self._git("update-ref", self.ref, commit)
        return commit

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
        self._seen = self._kept_index() or {}
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
        if first and len(now) > PRIVATE_FILE_LIMIT and not _in_git_project(self.workspace):
            raise CheckpointError(
                f"{self.workspace} is not a git repository and holds more than "
                f"{PRIVATE_FILE_LIMIT:,} files, too many to watch at every step. Run ponder in "
                "a project's folder, or make it one with `git init`"
            )
        for path in self._seen.keys() - now.keys():  # in a folder that became unreadable: unseen,
            if any(folder in seen.blind for folder in _folders_of(path)):  # not gone
                now[path] = self._seen[path]
        self._record(now, self._watch.written())
        self._ignore_rules = sum(now[path][SIZE] for path in now if path.endswith(b".gitignore"))
        self._state = State(
            self._write_tree(self._stored_index),
            self._write_tree(self._listed_index),
            self._private_modes(now),
        )
        return self._state

    def _private_modes(self, now: dict[bytes, Stat]) -> str:
        """The blob of the modes of stored files that others may not read; "" when none."""
        private = [
            (path, facts[MODE] & 0o7777)
            for path, facts in now.items()
            if not facts[MODE] & stat.S_IROTH and stat.S_ISREG(facts[MODE])
        ]
        records = b"".join(
            b"%o %s\0" % (mode, path) for path, mode in sorted(private) if path not in self._listed
        )
        if not records:
            return ""
        if records != self._private_records:
            self._private_records = records
            self._private_blob = self._text("hash-object", "-w", "--stdin", stdin=records)
        return self._private_blob

    def _write_tree(self, index: Path) -> str:
        if not index.exists():
            return EMPTY_TREE
        return self._git("write-tree", index=index).decode().strip()

    def _placed_listed(self, path: bytes, facts: Stat) -> bool:
        return unstored_reason(path, facts) is not None or self._unreadable.get(path) == facts

    def _record(self, now: dict[bytes, Stat], written: set[bytes] | None) -> None:
        """Bring the two indexes from the last walk to ``now``: git reads only what changed,
        and what was ``written`` (even with the same facts: a write into a memory-mapped page
        already dirty changes no time; None: anything may have been)."""
        seen = self._seen
        stored_add: list[bytes] = []
        stored_remove: list[bytes] = []
        listed: list[bytes] = []
        unlisted: list[bytes] = []
        known = seen.get
        changed = [(path, facts) for path, facts in now.items() if known(path) != facts]
        candidates = seen.keys() if written is None else written
        changed_paths = {path for path, _ in changed}
        stored_add += [
            path
            for path in candidates
            if path in now
            and path in seen
            and path not in changed_paths
            and path not in self._listed
        ]
        for path, facts in sorted(changed):  # new or changed, in git's order
            old = seen.get(path)
            was_listed = path in self._listed
            if self._placed_listed(path, facts):
                if (
                    old is not None
                    and was_listed
                    and stat.S_ISDIR(old[0]) != stat.S_ISDIR(facts[0])
                ):
                    unlisted.append(listed_name(path, stat.S_ISDIR(old[0])))
                listed.append(self._listed_record(path, facts))
                self._listed.add(path)
                if old is not None and not was_listed:
                    stored_remove.append(path)
            else:
                stored_add.append(path)
                if was_listed:
                    unlisted.append(listed_name(path, stat.S_ISDIR(seen[path][0])))
                    self._listed.discard(path)
        for path in seen.keys() - now.keys():
            if path in self._listed:
                unlisted.append(listed_name(path, stat.S_ISDIR(seen[path][0])))
                self._listed.discard(path)
            else:
                stored_remove.append(path)
            self._unreadable.pop(path, None)
        self._seen = now
        if stored_remove:
            self._git("update-index", "-z", "--force-remove", "--stdin", stdin=_z(stored_remove))
        failed = self._add_stored(sorted(stored_add))
        for path in failed:  # listed instead: git could not read it
            self._unreadable[path] = now[path]
            listed.append(self._listed_record(path, now[path]))
            self._listed.add(path)
        if listed or unlisted:
            records = [b"0 %s\t%s\0" % (NO_OBJECT.encode(), name) for name in unlisted]
            self._git(
                "update-index", "-z", "--index-info",
                stdin=b"".join(records + listed), index=self._listed_index,
            )  # fmt: skip

    @staticmethod
    def _listed_record(path: bytes, facts: Stat) -> bytes:
        name = listed_name(path, stat.S_ISDIR(facts[0]))
        return b"%s %s\t%s\0" % (LISTED_MODE.encode(), signature(facts).encode(), name)

    def _add_stored(self, paths: list[bytes]) -> list[bytes]:
        """Hash ``paths`` into the stored index; returns those git could not take (a file made
        unreadable meanwhile, a name it refuses), found by halving the list."""
        if not paths:
            return []
        # git trusts its own record of a file's times to the second only: a file rewritten
        # within the second it was read, its mtime set back, would keep its old content. These
        # paths changed (or were written): git must read them afresh.
        self._git("update-index", "-z", "--force-remove", "--stdin", stdin=_z(paths))
        # Many files at once (a session's start) go into one pack: thousands of loose objects
        # cost a file each. A step's few stay loose.
        bulk = ["-c", "core.bigFileThreshold=1"] if len(paths) > BULK else []
        done = git_process(
            *bulk, "update-index", "-z", "--add", "--remove", "--stdin",
            git_dir=self.git_dir, work_tree=self.workspace, index=self._stored_index,
            stdin=_z(paths),
        )  # fmt: skip
        if done.returncode == 0:
            return self._refused(paths) if b"Ignoring path" in done.stderr else []
        if len(paths) == 1:
            return paths
        half = len(paths) // 2
        return self._add_stored(paths[:half]) + self._add_stored(paths[half:])

    def _refused(self, paths: list[bytes]) -> list[bytes]:
        """Of ``paths`` just added, those git left out of the index although they exist."""
        present = set(self._git("ls-files", "-z").split(b"\0"))
        return [p for p in paths if p not in present and os.path.lexists(self._root + b"/" + p)]

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
        tip = self._tip()
        if tip is None:
            raise CheckpointError("this session's checkpoints are gone from the store")
        return self._chain(limit=1)[0].after

    def _store_step(self, before: State, after: State, label: str) -> Checkpoint | None:
        if before == after:
            return None
        tip = self._tip()
        if tip is None:
            raise CheckpointError("this session's checkpoints are gone from the store")
        changes = list(self._changes(before, after).values())
        if not changes:  # (a file's private mode alone changed: nothing to show or undo)
            return None
        commit = self._commit(before, after, tip, label)
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
            self._merge_oldest(keep)
            remove_unreferenced(self.git_dir)
        self._index_cache.unlink(missing_ok=True)  # it may name blobs that are gone
        self._fitted_at = store_size(self.git_dir)

    def _merge_oldest(self, keep: int) -> None:
        """Merge all but the newest ``keep`` checkpoints after the start into one step."""
        chain = self._chain()
        if len(chain) <= keep + 2:
            return
        *recent, newest_merged = chain[: keep + 1]
        oldest_merged, start = chain[-2], chain[-1]
        assert oldest_merged.before is not None
        parent = self._commit(
            oldest_merged.before,
            newest_merged.after,
            start.commit,
            "steps merged to keep the store small",
        )
        for link in reversed(recent):
            tree = self._text("rev-parse", f"{link.commit}^{{tree}}")
            message = self._text("log", "-1", "--format=%B", link.commit)
            parent = self._text("commit-tree", tree, "-p", parent, "-m", message)
        self._git("update-ref", self.ref, parent)

    def _text(self, *args: str, stdin: bytes | None = None) -> str:
        return self._git(*args, stdin=stdin).decode().strip()

    def _changes(self, old: State, new: State) -> dict[bytes, Change]:
        """Every path that differs, stored or listed (a path that moved from one to the other
        is one change)."""
        found: dict[bytes, Change] = {}
        for listed, a, b in ((False, old.stored, new.stored), (True, old.listed, new.listed)):
            if a == b:
                continue
            fields = self._git("diff-tree", "-r", "-z", "--no-renames", a, b).split(b"\0")
            for at in range(0, len(fields) - 1, 2):
                mode_a, mode_b, id_a, id_b, _ = fields[at][1:].decode().split()
                name = fields[at + 1]
                path = decode_path(name) if listed else name
                if listed and name.endswith(b"/" + DIRECTORY_ITSELF):  # a folder, by identity
                    mode_a, mode_b = (FOLDER if m == LISTED_MODE else m for m in (mode_a, mode_b))
                before = Side(listed, mode_a, id_a) if mode_a != "000000" else None
                after = Side(listed, mode_b, id_b) if mode_b != "000000" else None
                earlier = found.get(path)
                if earlier is not None:
                    before, after = earlier.before or before, earlier.after or after
                found[path] = Change(path, before, after)
        return found

    def _chain(self, limit: int | None = None) -> list[_Link]:
        """The session's checkpoints, newest first."""
        args = ["log", "-z", "--format=%H %T%n%B", *([f"-{limit}"] if limit else []), self.ref]
        records = [r for r in self._git(*args).decode().split("\0") if r]
        heads = [record.split("\n", 1) for record in records]
        ids = [head.split() for head, _ in heads]
        trees = self._trees([tree for _, tree in ids])
        chain = []
        for (commit, tree), (_, body) in zip(ids, heads, strict=True):
            label = body.split("\n\n", 1)[-1].strip()
            parts = trees[tree]
            before = State(parts["bw"], parts["bl"], parts.get("bm", "")) if "bw" in parts else None
            chain.append(
                _Link(
                    commit,
                    before,
                    State(parts["w"], parts["l"], parts.get("m", "")),
                    label,
                )
            )
        return chain

    def _trees(self, ids: list[str]) -> dict[str, dict[str, str]]:
        """Each top tree's entries (name to id), read in one git call."""
        wanted = sorted(set(ids))
        output = self._git("cat-file", "--batch", stdin="".join(f"{i}\n" for i in wanted).encode())
        found: dict[str, dict[str, str]] = {}
        at = 0
        for tree in wanted:
            header_end = output.index(b"\n", at)
            size = int(output[at:header_end].split()[2])
            body = output[header_end + 1 : header_end + 1 + size]
            at = header_end + 1 + size + 1
            entries, cursor = {}, 0
            while cursor < len(body):
                name_end = body.index(b"\0", cursor)
                name = body[cursor:name_end].split(b" ", 1)[1].decode()
                entries[name] = body[name_end + 1 : name_end + 21].hex()
                cursor = name_end + 21
            found[tree] = entries
        return found

    # --- undo

    def undo(self) -> Undone:
        """Put back what the session's last checkpoint changed; returns where it is now.

        Nothing is changed unless every path of that checkpoint is still as it left it. What
        was only listed cannot be put back (its content was never kept), except that a listed
        file the step made is removed; git metadata is never touched. Folders the step made
        and undo emptied go too."""
        chain = self._chain(limit=2)
        if len(chain) < 2:
            raise CheckpointError("there is no earlier checkpoint of this session to go back to")
        last, parent = chain
        assert last.before is not None
        changes = sorted(self._changes(last.before, last.after).values(), key=lambda c: c.path)
        kept = _kept([c for c in changes if _why_kept(c) is not None])
        changes = [c for c in changes if _why_kept(c) is None]
        changed_since = [c.path for c in changes if not self._still(c)]
        if changed_since:
            names = ", ".join(os.fsdecode(p) for p in changed_since[:10])
            more = f" and {len(changed_since) - 10} more" if len(changed_since) > 10 else ""
            raise CheckpointError(
                f"nothing undone: {names}{more} changed since this session's last step (by you, "
                "another session, or a job still running in the sandbox); undo would overwrite "
                "that"
            )
        wanted = [c.before.object for c in changes if c.before and not c.before.listed]
        contents = self._contents(wanted)
        private = self._private(last.before.private)
        restored: list[str] = []
        removed: list[str] = []
        for change in sorted(changes, key=lambda c: c.before is not None):  # removals first
            name = os.fsdecode(change.path)
            try:
                self._restore(change, contents, private)
            except (OSError, OutsideWorkspace) as error:
                done = len(restored) + len(removed)
                raise CheckpointError(
                    f"undo stopped at {name}: {error}; {done} paths were put back"
                ) from None
            (removed if change.before is None else restored).append(name)
        made = [c.path for c in changes if c.before is None]
        if made:
            self._remove_emptied(made, last.before)
        self._git("update-ref", self.ref, parent.commit)
        self._state = None  # the next look walks
        return Undone(parent.commit, last.label, restored, removed, kept)

    def _remove_emptied(self, removed: list[bytes], before: State) -> None:
        """Remove the folders of ``removed`` paths that are empty now and held nothing before
        the step (so the step made them)."""
        existed: set[bytes] = set()
        for tree, listed in ((before.stored, False), (before.listed, True)):
            for name in self._git("ls-tree", "-r", "-z", "--name-only", tree).split(b"\0"):
                path = decode_path(name) if listed else name
                while b"/" in path:
                    path = path.rsplit(b"/", 1)[0]
                    if path in existed:
                        break
                    existed.add(path)
        folders = {p.rsplit(b"/", 1)[0] for p in removed if b"/" in p}
        for folder in sorted(
            folders | {a for f in folders for a in _folders_of(f)}, key=len, reverse=True
        ):
            if folder not in existed:
                self._tree.remove_empty_directory(folder)

    def _still(self, change: Change) -> bool:
        """Whether the path is as the step left it (a symlink on its way: it is not)."""
        after = change.after
        if after is not None and after.listed:
            return self._facts_signature(change.path) == after.object
        try:
            now = self._tree.entry(change.path)
        except (OSError, OutsideWorkspace):  # a link on the way, a folder it may not read
            return False
        if after is None:
            return now is None or now.kind == "directory"
        if after.mode == "120000":
            return now is not None and now.kind == "link" and now.blob == after.object
        return (
            now is not None
            and now.kind == "file"
            and now.blob == after.object
            and now.executable == after.executable
        )

    def _facts_signature(self, path: bytes) -> str | None:
        """The signature of a file's facts now (None: not a file there, or not reachable)."""
        try:
            info = self._tree.lstat(path)
        except (OSError, OutsideWorkspace):
            return None
        if info is None or stat.S_ISDIR(info.st_mode):
            return None
        return signature(facts_of(info))

    def _restore(
        self, change: Change, contents: dict[str, bytes], private: dict[bytes, int]
    ) -> None:
        before = change.before
        if before is None:
            self._tree.remove(change.path)
        elif before.mode == "120000":
            self._tree.write_link(change.path, contents[before.object])
        else:
            data, mode = contents[before.object], private.get(change.path)
            self._tree.write_file(change.path, data, before.executable, mode)

    def _private(self, blob: str) -> dict[bytes, int]:
        """The modes a State's private blob records, by path."""
        if not blob:
            return {}
        records = self._contents([blob])[blob].split(b"\0")
        return {path: int(mode, 8) for mode, _, path in (r.partition(b" ") for r in records if r)}

    def _contents(self, blobs: Iterable[str]) -> dict[str, bytes]:
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

    # --- what the session changed

    def session_changes(self, since: str | None = None) -> tuple[State, State, dict[bytes, Change]]:
        """The workspace at the session's start (or at checkpoint ``since``) and now, and what
        the session changed between them: everything but what only others changed, between
        its steps or since its last one (unless its background jobs may have: a live
        session's jobs still running)."""
        chain = self._chain()
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
                others.update(self._changes(previous, link.before))
            ours.update(self._changes(link.before, link.after))
            previous = link.after
        if not self._window_is_ours:
            others.update(self._changes(previous, now))
        changes = self._changes(start, now)
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
        return self._tip()

    def describe(
        self, changes: Iterable[Change], ignored: set[bytes] | None = None
    ) -> list[PathChange]:
        """``changes`` as a person should see them (see :mod:`~ponder.runtime.change_report`)."""
        wanted = list(changes)
        if ignored is None:
            ignored = self.ignored(c.path for c in wanted if not c.listed)
        folders = {f for p in ignored for f in _folders_of(p)}
        ignored_folders = {f.rstrip(b"/") for f in self._check_ignore(f + b"/" for f in folders)}
        return describe(wanted, ignored, self._seen.get, self._tree, ignored_folders)

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
                git_dir=self.git_dir, work_tree=self.workspace, index=self._stored_index,
                stdin=_z(wanted), timeout=IGNORE_TIMEOUT_S,
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
        self._git("read-tree", start.stored, index=index)
        changes = self._changes(State(start.stored, EMPTY_TREE), State(now.stored, EMPTY_TREE))
        records = []
        for path in sorted(wanted):
            after = changes[path].after if path in changes else None
            if after is None or after.listed:
                records.append(b"0 %s\t%s\0" % (NO_OBJECT.encode(), path))
            else:
                records.append(b"%s %s\t%s\0" % (after.mode.encode(), after.object.encode(), path))
        self._git("update-index", "-z", "--index-info", stdin=b"".join(records), index=index)
        shown = self._write_tree(index)
        return self._git(
            "diff", "--binary", "--no-ext-diff", "--no-textconv", "-M", start.stored, shown,
        )  # fmt: skip


def _z(paths: Iterable[bytes]) -> bytes:
    return b"".join(path + b"\0" for path in paths)


def _why_kept(change: Change) -> str | None:
    """Why undo leaves this path as it is (None: it puts it back)."""
    if in_git_metadata(change.path):  # .GIT too: on a Mac's disk it is the .git
        return "git metadata: ponder never writes it; look at it yourself"
    if any(side is not None and side.mode == FOLDER for side in (change.before, change.after)):
        return "a folder ponder cannot read: ponder never removes it"
    if change.before is not None and change.before.listed:
        return "its content was not kept (over 8 MiB, in a cache folder, or unreadable)"
    return None


def _kept(changes: list[Change]) -> list[tuple[str, str]]:
    """What undo leaves, with why; a repository's git metadata as one line."""
    kept: dict[str, tuple[int, str]] = {}
    for change in changes:
        parts = change.path.split(b"/")
        at = next((i for i, part in enumerate(parts) if is_git_metadata(part)), None)
        name = os.fsdecode(b"/".join(parts[: at + 1]) + b"/" if at is not None else change.path)
        why = _why_kept(change) or ""
        count, _ = kept.get(name, (0, why))
        kept[name] = (count + 1, why)
    return [
        (f"{name} ({count} files)" if count > 1 else name, why)
        for name, (count, why) in kept.items()
    ]


def _folders_of(path: bytes) -> list[bytes]:
    """The folders ``path`` is in, outermost first (``a``, ``a/b`` for ``a/b/c``)."""
    parts = path.split(b"/")
    return [b"/".join(parts[:end]) for end in range(1, len(parts))]
