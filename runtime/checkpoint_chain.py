"""A session's checkpoints in the store: the commits that hold them, written and read back.

Each checkpoint is a commit on ``refs/ponder/ledger/<session>`` whose tree holds the workspace
after its step (``w`` stored, ``l`` listed, ``m`` private modes) and before it (``bw``, ``bl``,
``bm``); :class:`SessionChain` runs the store's git for
:class:`~ponder.runtime.checkpoints.Checkpoints`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ponder.runtime.checkpoint_store import DIRECTORY_ITSELF, CheckpointError, decode_path
from ponder.runtime.host_git import GitFailed, git_process, run_git
from ponder.runtime.ledger import Change, Side

IDENTITY = {
    "GIT_AUTHOR_NAME": "ponder",
    "GIT_AUTHOR_EMAIL": "ponder@localhost",
    "GIT_COMMITTER_NAME": "ponder",
    "GIT_COMMITTER_EMAIL": "ponder@localhost",
}
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
LISTED_MODE = "160000"
FOLDER = "040000"
"""A listed folder's mode in a :class:`Side` (its tree entry is a gitlink like any listed)."""


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
class Link:
    """One commit of the chain."""

    commit: str
    before: State | None
    after: State
    label: str
    """What made it: ``start``, ``step 3``, ``background jobs of this session``."""


class SessionChain:
    """The store's git, for one session's chain of checkpoints."""

    def __init__(self, git_dir: Path, workspace: Path, ref: str, index: Path) -> None:
        self.git_dir = git_dir
        self.workspace = workspace
        self.ref = ref
        self.index = index
        """The index git commands use unless told another."""

    def git(self, *args: str, stdin: bytes | None = None, index: Path | None = None) -> bytes:
        try:
            return run_git(
                *args,
                git_dir=self.git_dir,
                work_tree=self.workspace,
                index=index or self.index,
                stdin=stdin,
                env=IDENTITY,
            )
        except GitFailed as error:
            raise CheckpointError(str(error)) from None

    def tip(self) -> str | None:
        try:
            found = git_process("rev-parse", "--verify", "--quiet", self.ref, git_dir=self.git_dir)
        except GitFailed as error:
            raise CheckpointError(str(error)) from None
        return found.stdout.decode().strip() or None

    def commit(self, before: State | None, after: State, parent: str | None, message: str) -> str:
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
        tree = self.git("mktree", "-z", stdin=listing).decode().strip()
        parents = ["-p", parent] if parent else []
        text = f"ponder checkpoint\n\n{message}\n"
        commit = self.git("commit-tree", tree, "-m", text, *parents).decode().strip()
        self.git("update-ref", self.ref, commit)
        return commit

    def write_tree(self, index: Path) -> str:
        if not index.exists():
            return EMPTY_TREE
        return self.git("write-tree", index=index).decode().strip()

    def merge_oldest(self, keep: int) -> None:
        """Merge all but the newest ``keep`` checkpoints after the start into one step."""
        chain = self.links()
        if len(chain) <= keep + 2:
            return
        *recent, newest_merged = chain[: keep + 1]
        oldest_merged, start = chain[-2], chain[-1]
        assert oldest_merged.before is not None
        parent = self.commit(
            oldest_merged.before,
            newest_merged.after,
            start.commit,
            "steps merged to keep the store small",
        )
        for link in reversed(recent):
            tree = self.text("rev-parse", f"{link.commit}^{{tree}}")
            message = self.text("log", "-1", "--format=%B", link.commit)
            parent = self.text("commit-tree", tree, "-p", parent, "-m", message)
        self.git("update-ref", self.ref, parent)

    def text(self, *args: str, stdin: bytes | None = None) -> str:
        return self.git(*args, stdin=stdin).decode().strip()

    def changes(self, old: State, new: State) -> dict[bytes, Change]:
        """Every path that differs, stored or listed (a path that moved from one to the other
        is one change)."""
        found: dict[bytes, Change] = {}
        for listed, a, b in ((False, old.stored, new.stored), (True, old.listed, new.listed)):
            if a == b:
                continue
            fields = self.git("diff-tree", "-r", "-z", "--no-renames", a, b).split(b"\0")
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

    def links(self, limit: int | None = None) -> list[Link]:
        """The session's checkpoints, newest first."""
        args = ["log", "-z", "--format=%H %T%n%B", *([f"-{limit}"] if limit else []), self.ref]
        records = [r for r in self.git(*args).decode().split("\0") if r]
        heads = [record.split("\n", 1) for record in records]
        ids = [head.split() for head, _ in heads]
        trees = self.trees([tree for _, tree in ids])
        chain = []
        for (commit, tree), (_, body) in zip(ids, heads, strict=True):
            label = body.split("\n\n", 1)[-1].strip()
            parts = trees[tree]
            before = State(parts["bw"], parts["bl"], parts.get("bm", "")) if "bw" in parts else None
            chain.append(
                Link(
                    commit,
                    before,
                    State(parts["w"], parts["l"], parts.get("m", "")),
                    label,
                )
            )
        return chain

    def trees(self, ids: list[str]) -> dict[str, dict[str, str]]:
        """Each top tree's entries (name to id), read in one git call."""
        wanted = sorted(set(ids))
        output = self.git("cat-file", "--batch", stdin="".join(f"{i}\n" for i in wanted).encode())
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

    def contents(self, blobs: Iterable[str]) -> dict[str, bytes]:
        """The blobs' contents, read from the store in one git call."""
        wanted = sorted(set(blobs))
        if not wanted:
            return {}
        output = self.git("cat-file", "--batch", stdin="".join(f"{b}\n" for b in wanted).encode())
        contents, at = {}, 0
        for blob in wanted:
            header_end = output.index(b"\n", at)
            header = output[at:header_end].split()
            if len(header) != 3:
                raise CheckpointError(f"the checkpoint store lacks {blob} (damaged?)")
            contents[blob] = output[header_end + 1 : header_end + 1 + int(header[2])]
            at = header_end + 1 + int(header[2]) + 1
        return contents

    def private(self, blob: str) -> dict[bytes, int]:
        """The modes a State's private blob records, by path."""
        if not blob:
            return {}
        records = self.contents([blob])[blob].split(b"\0")
        return {path: int(mode, 8) for mode, _, path in (r.partition(b" ") for r in records if r)}


def folders_of(path: bytes) -> list[bytes]:
    """The folders ``path`` is in, outermost first (``a``, ``a/b`` for ``a/b/c``)."""
    parts = path.split(b"/")
    return [b"/".join(parts[:end]) for end in range(1, len(parts))]
