"""The two git indexes that hold the workspace as last walked: the *stored* one (git hashes each
file's content) and the *listed* one (a signature of each path's facts, at an encoded name).

:meth:`WorkspaceIndexes.record` brings both from one walk to the next, making git read only the
paths whose facts changed or that were written; :meth:`WorkspaceIndexes.keep` leaves the stored
index in the store for the next session of this workspace.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ponder.runtime.checkpoint_chain import LISTED_MODE, SessionChain
from ponder.runtime.checkpoint_store import listed_name
from ponder.runtime.host_git import git_process
from ponder.runtime.ledger import MODE, Stat, signature, unstored_reason

INDEX_CACHE = "ponder-stored-index"
"""In the store: the last session's index of stored files, a cache of git's hashing..."""
FACTS_CACHE = "ponder-stored-facts"
"""...and the facts ponder saw of each of them."""
BULK = 256
"""Files added at once beyond which git writes them into a pack (``core.bigFileThreshold``)."""
NO_OBJECT = "0" * 40


def z(paths: Iterable[bytes]) -> bytes:
    """Paths as git's ``-z`` input."""
    return b"".join(path + b"\0" for path in paths)


class WorkspaceIndexes:
    def __init__(self, chain: SessionChain, temporary: Path) -> None:
        self._chain = chain
        self.git_dir = chain.git_dir
        self.workspace = chain.workspace
        self._root = os.fsencode(chain.workspace)
        self._temporary = temporary
        self.stored_index = chain.index
        self.listed_index = temporary / "listed"
        self._index_cache = chain.git_dir / INDEX_CACHE
        self._facts_cache = chain.git_dir / FACTS_CACHE
        self.seen: dict[bytes, Stat] = {}
        """The facts of every path at the last walk."""
        self.listed: set[bytes] = set()
        self.unreadable: dict[bytes, Stat] = {}
        """Paths git could not read, with their facts then (listed until those change)."""
        self._private_records = b""
        self._private_blob = ""

    def forget_kept(self) -> None:
        """The kept index is no longer to be trusted (the store was pruned under it)."""
        self._index_cache.unlink(missing_ok=True)

    def keep(self) -> None:
        """Leave the stored index in the store with the facts ponder saw of each of its files,
        so the next session of this workspace hashes only the files whose facts changed since
        (to the nanosecond, ctime included, which no process can set back). The facts name the
        index they belong to by its checksum: a pair that does not match is not used."""
        stored = sorted((p, f) for p, f in self.seen.items() if p not in self.listed)
        with contextlib.suppress(OSError):
            index = self.stored_index.read_bytes()
            facts = (
                index[-20:].hex().encode()
                + b"\n"
                + b"".join(b" ".join(b"%d" % n for n in f) + b" " + p + b"\0" for p, f in stored)
            )
            for data, target in ((index, self._index_cache), (facts, self._facts_cache)):
                copy = self._temporary / "kept"
                copy.write_bytes(data)
                copy.replace(target)

    def load_kept(self) -> dict[bytes, Stat] | None:
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
        self.stored_index.write_bytes(index)
        return facts

    def private_modes(self, now: dict[bytes, Stat]) -> str:
        """The blob of the modes of stored files that others may not read; "" when none."""
        private = [
            (path, facts[MODE] & 0o7777)
            for path, facts in now.items()
            if not facts[MODE] & stat.S_IROTH and stat.S_ISREG(facts[MODE])
        ]
        records = b"".join(
            b"%o %s\0" % (mode, path) for path, mode in sorted(private) if path not in self.listed
        )
        if not records:
            return ""
        if records != self._private_records:
            self._private_records = records
            self._private_blob = self._chain.text("hash-object", "-w", "--stdin", stdin=records)
        return self._private_blob

    def _placed_listed(self, path: bytes, facts: Stat) -> bool:
        return unstored_reason(path, facts) is not None or self.unreadable.get(path) == facts

    def record(self, now: dict[bytes, Stat], written: set[bytes] | None) -> None:
        """Bring the two indexes from the last walk to ``now``: git reads only what changed,
        and what was ``written`` (even with the same facts: a write into a memory-mapped page
        already dirty changes no time; None: anything may have been)."""
        seen = self.seen
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
            and path not in self.listed
        ]
        for path, facts in sorted(changed):  # new or changed, in git's order
            old = seen.get(path)
            was_listed = path in self.listed
            if self._placed_listed(path, facts):
                if (
                    old is not None
                    and was_listed
                    and stat.S_ISDIR(old[0]) != stat.S_ISDIR(facts[0])
                ):
                    unlisted.append(listed_name(path, stat.S_ISDIR(old[0])))
                listed.append(self._listed_record(path, facts))
                self.listed.add(path)
                if old is not None and not was_listed:
                    stored_remove.append(path)
            else:
                stored_add.append(path)
                if was_listed:
                    unlisted.append(listed_name(path, stat.S_ISDIR(seen[path][0])))
                    self.listed.discard(path)
        for path in seen.keys() - now.keys():
            if path in self.listed:
                unlisted.append(listed_name(path, stat.S_ISDIR(seen[path][0])))
                self.listed.discard(path)
            else:
                stored_remove.append(path)
            self.unreadable.pop(path, None)
        self.seen = now
        if stored_remove:
            self._chain.git(
                "update-index", "-z", "--force-remove", "--stdin", stdin=z(stored_remove)
            )
        failed = self._add_stored(sorted(stored_add))
        for path in failed:  # listed instead: git could not read it
            self.unreadable[path] = now[path]
            listed.append(self._listed_record(path, now[path]))
            self.listed.add(path)
        if listed or unlisted:
            records = [b"0 %s\t%s\0" % (NO_OBJECT.encode(), name) for name in unlisted]
            self._chain.git(
                "update-index", "-z", "--index-info",
                stdin=b"".join(records + listed), index=self.listed_index,
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
        self._chain.git("update-index", "-z", "--force-remove", "--stdin", stdin=z(paths))
        # Many files at once (a session's start) go into one pack: thousands of loose objects
        # cost a file each. A step's few stay loose.
        bulk = ["-c", "core.bigFileThreshold=1"] if len(paths) > BULK else []
        done = git_process(
            *bulk, "update-index", "-z", "--add", "--remove", "--stdin",
            git_dir=self.git_dir, work_tree=self.workspace, index=self.stored_index,
            stdin=z(paths),
        )  # fmt: skip
        if done.returncode == 0:
            return self._refused(paths) if b"Ignoring path" in done.stderr else []
        if len(paths) == 1:
            return paths
        half = len(paths) // 2
        return self._add_stored(paths[:half]) + self._add_stored(paths[half:])

    def _refused(self, paths: list[bytes]) -> list[bytes]:
        """Of ``paths`` just added, those git left out of the index although they exist."""
        present = set(self._chain.git("ls-files", "-z").split(b"\0"))
        return [p for p in paths if p not in present and os.path.lexists(self._root + b"/" + p)]
