"""Undo: the session's last checkpoint put back, only where nothing changed since, never through a
link out of the workspace (:mod:`~ponder.runtime.confined_files`)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ponder.runtime.checkpoint_chain import FOLDER, SessionChain, State, folders_of
from ponder.runtime.checkpoint_store import CheckpointError, decode_path
from ponder.runtime.confined_files import ConfinedTree, OutsideWorkspace
from ponder.runtime.ledger import Change, facts_of, in_git_metadata, is_git_metadata, signature


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


class LastStepUndo:
    """Puts back what a session's last checkpoint changed (:meth:`run`)."""

    def __init__(self, chain: SessionChain, tree: ConfinedTree) -> None:
        self.chain = chain
        self._tree = tree

    def run(self) -> Undone:
        """Put back what the session's last checkpoint changed; returns where it is now.

        Nothing is changed unless every path of that checkpoint is still as it left it. What
        was only listed cannot be put back (its content was never kept), except that a listed
        file the step made is removed; git metadata is never touched. Folders the step made
        and undo emptied go too."""
        chain = self.chain.links(limit=2)
        if len(chain) < 2:
            raise CheckpointError("there is no earlier checkpoint of this session to go back to")
        last, parent = chain
        assert last.before is not None
        changes = sorted(self.chain.changes(last.before, last.after).values(), key=lambda c: c.path)
        kept = kept_paths([c for c in changes if why_kept(c) is not None])
        changes = [c for c in changes if why_kept(c) is None]
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
        contents = self.chain.contents(wanted)
        private = self.chain.private(last.before.private)
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
        self.chain.git("update-ref", self.chain.ref, parent.commit)
        return Undone(parent.commit, last.label, restored, removed, kept)

    def _remove_emptied(self, removed: list[bytes], before: State) -> None:
        """Remove the folders of ``removed`` paths that are empty now and held nothing before
        the step (so the step made them)."""
        existed: set[bytes] = set()
        for tree, listed in ((before.stored, False), (before.listed, True)):
            for name in self.chain.git("ls-tree", "-r", "-z", "--name-only", tree).split(b"\0"):
                path = decode_path(name) if listed else name
                while b"/" in path:
                    path = path.rsplit(b"/", 1)[0]
                    if path in existed:
                        break
                    existed.add(path)
        folders = {p.rsplit(b"/", 1)[0] for p in removed if b"/" in p}
        for folder in sorted(
            folders | {a for f in folders for a in folders_of(f)}, key=len, reverse=True
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


def why_kept(change: Change) -> str | None:
    """Why undo leaves this path as it is (None: it puts it back)."""
    if in_git_metadata(change.path):  # .GIT too: on a Mac's disk it is the .git
        return "git metadata: ponder never writes it; look at it yourself"
    if any(side is not None and side.mode == FOLDER for side in (change.before, change.after)):
        return "a folder ponder cannot read: ponder never removes it"
    if change.before is not None and change.before.listed:
        return "its content was not kept (over 8 MiB, in a cache folder, or unreadable)"
    return None


def kept_paths(changes: list[Change]) -> list[tuple[str, str]]:
    """What undo leaves, with why; a repository's git metadata as one line."""
    kept: dict[str, tuple[int, str]] = {}
    for change in changes:
        parts = change.path.split(b"/")
        at = next((i for i, part in enumerate(parts) if is_git_metadata(part)), None)
        name = os.fsdecode(b"/".join(parts[: at + 1]) + b"/" if at is not None else change.path)
        why = why_kept(change) or ""
        count, _ = kept.get(name, (0, why))
        kept[name] = (count + 1, why)
    return [
        (f"{name} ({count} files)" if count > 1 else name, why)
        for name, (count, why) in kept.items()
    ]
