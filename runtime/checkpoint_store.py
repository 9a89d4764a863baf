"""The private git repository that keeps a workspace's checkpoints (the *store*), and its upkeep.

One bare repository per workspace in ponder's data directory; the workspace's own ``.git`` is
never read or written. Its ``info/attributes`` switch off every filter and conversion (files
are kept byte for byte), and every command goes through :func:`~ponder.runtime.host_git.run_git`.

Paths git refuses in a tree (``.git``, ``.GIT``, ``git~1``...) can still be *listed* in a
checkpoint: :func:`encode_path` writes each such name as ``%XX`` bytes (and every ``%``
as ``%25``), so a name that holds ``%`` is always an encoded one and :func:`decode_path` is
exact. A component ``%`` alone, which encoding never makes, stands for the directory itself.

The store has a cap: :func:`prune` drops the oldest sessions' checkpoints (never the current
one's) until it fits, then removes what nothing refers to any more.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ponder.runtime.host_git import NEUTRAL_ATTRIBUTES, GitFailed, run_git
from ponder.runtime.ledger import is_git_metadata
from ponder.sandbox.leftovers import owner_alive, process_start_time

STORE_CAP = 2 * 1024**3
"""Bytes a workspace's store may hold before older sessions' checkpoints are dropped."""
PRUNE_GRACE = "2.minutes.ago"
"""Unreferenced objects younger than this stay: another session may be about to commit them
(a step writes its objects and commits them within seconds)."""
DIRECTORY_ITSELF = b"%"


class CheckpointError(Exception):
    pass


def store_for(workspace: Path, store: Path) -> Path:
    """The private repository that keeps a workspace's checkpoints, made when missing."""
    key = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:16]
    git_dir = store / f"{key}.git"
    try:
        if not (git_dir / "HEAD").exists():
            store.mkdir(parents=True, exist_ok=True)
            run_git("init", "--quiet", "--bare", str(git_dir), cwd=store)
        store.chmod(0o700)  # it holds copies of every file, a 600 .env among them
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


def _needs_encoding(component: bytes) -> bool:
    return b"%" in component or is_git_metadata(component)


def encode_path(path: bytes) -> bytes:
    if b"%" not in path and b"git" not in path.lower():
        return path  # nothing to encode: the usual case, kept cheap
    return b"/".join(
        b"".join(b"%%%02X" % byte for byte in part) if _needs_encoding(part) else part
        for part in path.split(b"/")
    )


def decode_path(path: bytes) -> bytes:
    parts = path.split(b"/")
    if parts[-1] == DIRECTORY_ITSELF:
        parts.pop()
    return b"/".join(
        bytes(int(part[i + 1 : i + 3], 16) for i in range(0, len(part), 3))
        if b"%" in part
        else part
        for part in parts
    )


def listed_name(path: bytes, is_directory: bool) -> bytes:
    """Where a listed path is kept in the store's tree."""
    encoded = encode_path(path)
    return encoded + b"/" + DIRECTORY_ITSELF if is_directory else encoded


def store_size(git_dir: Path) -> int:
    """Bytes the store's objects take on disk (git's own count)."""
    counts = dict(
        line.split(": ", 1)
        for line in run_git("count-objects", "-v", git_dir=git_dir).decode().splitlines()
        if ": " in line
    )
    return (int(counts.get("size", 0)) + int(counts.get("size-pack", 0))) * 1024


def prune(git_dir: Path, keep_ref: str, cap: int = STORE_CAP) -> list[str]:
    """Drop other sessions' checkpoints, oldest first, until the store fits ``cap``; returns
    the refs dropped. ``keep_ref`` (the running session's) is never dropped."""
    if store_size(git_dir) <= cap:
        return []
    listing = run_git(
        "for-each-ref", "--sort=committerdate", "--format=%(refname)", "refs/ponder/",
        git_dir=git_dir,
    ).decode()  # fmt: skip
    others = [ref for ref in listing.split() if ref != keep_ref]
    dropped: list[str] = []
    batch = 1
    while others and store_size(git_dir) > cap:  # 1, 2, 4... refs at a time: gc is not cheap
        for ref in others[:batch]:
            run_git("update-ref", "-d", ref, git_dir=git_dir)
            dropped.append(ref)
        others, batch = others[batch:], batch * 2
        remove_unreferenced(git_dir, repack=True)
    return dropped


def remove_unreferenced(git_dir: Path, repack: bool = False) -> None:
    """Remove objects no ref reaches; while another session is live, young ones stay (it may
    not have committed them yet; they go at a later prune). Loose objects only, unless
    ``repack``: a session's start is packed, and only a repack (minutes for gigabytes) drops
    a pack's objects."""
    expire = PRUNE_GRACE if live_sessions(git_dir) > 1 else "now"
    if repack:
        run_git("gc", "--quiet", f"--prune={expire}", git_dir=git_dir)
    else:
        run_git("prune", f"--expire={expire}", git_dir=git_dir)


def _live(git_dir: Path) -> Path:
    return git_dir / "ponder-live"


def mark_live(git_dir: Path, session: str) -> Path:
    """Note that this process works on the store as ``session`` (remove the file it returns
    when done); sessions whose process is gone are not counted."""
    folder = _live(git_dir)
    folder.mkdir(exist_ok=True)
    pid = os.getpid()
    mark = folder / f"{session}.{pid}"
    mark.write_text(f"{pid} {process_start_time(pid)}\n")
    return mark


def live_sessions(git_dir: Path) -> int:
    """How many processes work on the store now (marks of dead ones are removed)."""
    count = 0
    for mark in _live(git_dir).glob("*"):
        try:
            pid, _, start = mark.read_text().strip().partition(" ")
        except OSError:
            continue
        if pid.isdigit() and owner_alive(int(pid), start):
            count += 1
        else:
            mark.unlink(missing_ok=True)
    return count
