"""Tar streams into and out of a container, read on the host as the hostile input they are.

A copy-mode sandbox's workspace comes back to the host as a tar stream the container's files
decide: names with ``..`` or a leading ``/``, a symlink followed by a file "inside" it, devices,
hard links to anything, and as many bytes as it likes. :func:`extract` writes only regular
files, directories and symlinks (as links, never followed: a member below one is refused),
keeps only the executable bit of a mode, and stops at ``limit`` bytes of stream.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from ponder.sandbox.base import SandboxError

CHUNK = 1024 * 1024


class TooBig(SandboxError):
    """The stream passed its limit."""


class _Capped:
    """A file-like reader over byte chunks that raises :class:`TooBig` past ``limit`` bytes."""

    def __init__(self, chunks: Iterator[bytes], limit: int) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._read = 0
        self._limit = limit

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                break
            self._read += len(chunk)
            if self._read > self._limit:
                raise TooBig(f"over {self._limit // 1024**2} MiB")
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def _parts(name: str) -> list[str] | None:
    """The member's path as names below the destination; None when it cannot be one."""
    if name.startswith("/"):
        return None
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return parts


def extract(
    chunks: Iterable[bytes],
    destination: Path,
    limit: int,
    skip: Callable[[bytes], bool] = lambda path: False,
) -> None:
    """Write the tar stream ``chunks`` into the empty folder ``destination``; members whose path
    ``skip`` accepts are left out (``.git``, say).
    Raises :class:`TooBig` past ``limit`` bytes of stream."""
    links: set[tuple[str, ...]] = set()
    stream = _Capped(iter(chunks), limit)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                parts = _parts(member.name)
                if parts is None or skip(os.fsencode("/".join(parts))):
                    continue
                if _beyond_link(parts[:-1], links):
                    continue  # below a symlink: it would land wherever the link points
                try:
                    _member(tar, member, destination, parts, links)
                except OSError:
                    continue  # a file where a folder should be, say: what git cannot hold either
    except tarfile.TarError as error:
        raise SandboxError(f"the sandbox's files came back damaged: {error}") from None


def _member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    destination: Path,
    parts: list[str],
    links: set[tuple[str, ...]],
) -> None:
    target = destination.joinpath(*parts)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if member.issym():
        _replace(target)
        target.symlink_to(member.linkname)
        links.add(tuple(parts))
    elif member.isfile():
        _write(target, tar.extractfile(member), member.mode)
    elif member.islnk():  # a hard link: a copy of a file written before, if it is one
        source = _parts(member.linkname)
        if source is not None and not _beyond_link(source, links):
            _copy(destination.joinpath(*source), target)


def _beyond_link(parts: list[str], links: set[tuple[str, ...]]) -> bool:
    return any(tuple(parts[:end]) in links for end in range(1, len(parts) + 1))


def _replace(target: Path) -> None:
    """Make room for a member written twice (a tar may hold a path more than once)."""
    if target.is_symlink() or target.is_file():
        target.unlink()


def _write(target: Path, source: IO[bytes] | None, mode: int) -> None:
    _replace(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
        if source is not None:
            while chunk := source.read(CHUNK):
                out.write(chunk)
        os.fchmod(out.fileno(), 0o755 if mode & stat.S_IXUSR else 0o644)


def _copy(original: Path, target: Path) -> None:
    if original.is_symlink() or not original.is_file():
        return
    with original.open("rb") as source:
        _write(target, source, original.stat().st_mode)


PAGE = 4096


def footprint(archive: IO[bytes]) -> tuple[int, int]:
    """What the tar ``archive`` takes once extracted into a tmpfs: bytes (each file a whole
    number of pages) and entries."""
    archive.seek(0)
    size = entries = 0
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for member in tar:
            entries += 1
            if member.isfile() or (member.issym() and len(member.linkname) >= 60):
                size += -(-max(member.size, 1) // PAGE) * PAGE
    archive.seek(0)
    return size, entries
