"""Conversations' KV caches kept side by side, in memory and on disk, so alternating
conversations do not wipe each other's prefill and a resumed session does not prefill again.

A llama.cpp context holds one KV cache. When the next prompt does not extend what the cache
holds (another conversation's turn, in ``ponder serve``), the cache is saved first, keyed by
the tokens it holds, and the saved cache that shares the longest prefix with the new prompt is
restored, when it beats what the context holds. Only the sequence's KV goes in and out
(llama.cpp's sequence state API), not the logits, and only on such a switch: a single
conversation pays nothing. Saved caches are kept within a byte cap, least recently used first
out; what leaves memory, and what the context holds when the model is closed (a session's end),
goes to a folder on disk (its own byte cap, least recently used out), from where a later
process (``ponder --resume``, a one-liner with the same start) restores it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIN_GAIN = 32
"""A saved cache is restored only when it saves at least this many tokens of prefill."""
MAGIC = b"PKV1"


@dataclass(frozen=True)
class Saved:
    tokens: tuple[int, ...]
    data: bytes


def shared_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count


class DiskStore:
    """Saved caches as files (``MAGIC``, token count, tokens, state), least recently used out
    past ``max_bytes``. Only the tokens are read until a file is restored."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._index: dict[Path, tuple[int, ...]] | None = None

    def index(self) -> dict[Path, tuple[int, ...]]:
        if self._index is None:
            self._index = {}
            for path in self.folder.glob("*.kv"):
                tokens = self._tokens(path)
                if tokens is not None:
                    self._index[path] = tokens
        return self._index

    @staticmethod
    def _tokens(path: Path) -> tuple[int, ...] | None:
        try:
            with path.open("rb") as file:
                if file.read(4) != MAGIC:
                    return None
                (count,) = struct.unpack("<I", file.read(4))
                data = file.read(4 * count)
                return struct.unpack(f"<{count}i", data) if len(data) == 4 * count else None
        except OSError:
            return None

    def put(self, entry: Saved) -> None:
        if len(entry.data) > self.max_bytes:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(struct.pack(f"<{len(entry.tokens)}i", *entry.tokens)).hexdigest()
        path = self.folder / f"{name[:32]}.kv"
        partial = path.with_suffix(".partial")
        with partial.open("wb") as file:
            file.write(MAGIC + struct.pack("<I", len(entry.tokens)))
            file.write(struct.pack(f"<{len(entry.tokens)}i", *entry.tokens))
            file.write(entry.data)
        partial.replace(path)
        self.index()[path] = entry.tokens
        self._trim()

    def best(self, prompt: Sequence[int]) -> tuple[Path, int] | None:
        found = max(self.index().items(), key=lambda kv: shared_prefix(kv[1], prompt), default=None)
        return (found[0], shared_prefix(found[1], prompt)) if found else None

    def load(self, path: Path) -> Saved | None:
        tokens = self.index().get(path)
        try:
            data = path.read_bytes()[8 + 4 * len(tokens or ()) :]
            os.utime(path)  # recently used
        except OSError:
            self.index().pop(path, None)
            return None
        return Saved(tokens, data) if tokens is not None else None

    def _trim(self) -> None:
        files = sorted(self.index(), key=lambda p: p.stat().st_mtime if p.exists() else 0)
        sizes = {p: p.stat().st_size if p.exists() else 0 for p in files}
        total = sum(sizes.values())
        for path in files:
            if total <= self.max_bytes:
                break
            total -= sizes[path]
            path.unlink(missing_ok=True)
            self.index().pop(path, None)


class KvSlots:
    """Saved KV caches of one ``llama_cpp.Llama`` (sequence 0): ``max_bytes`` in memory, and a
    :class:`DiskStore` behind them when given."""

    def __init__(self, llm: Any, max_bytes: int, disk: DiskStore | None = None) -> None:
        self.llm = llm
        self.max_bytes = max_bytes
        self.disk = disk
        self.saved: OrderedDict[tuple[int, ...], Saved] = OrderedDict()
        self.restores = 0

    @property
    def used_bytes(self) -> int:
        return sum(len(entry.data) for entry in self.saved.values())

    def _held(self) -> tuple[int, ...]:
        return tuple(int(t) for t in self.llm.input_ids[: self.llm.n_tokens])

    def prepare(self, prompt: Sequence[int]) -> None:
        """Before a prompt is decoded: keep what the context holds if the prompt would throw it
        away, and bring back a saved cache that fits the prompt better."""
        if self.max_bytes <= 0 and self.disk is None:
            return
        held = self._held()
        keeps = shared_prefix(held, prompt)
        if keeps < len(held) and len(held) >= MIN_GAIN:
            self._keep(held)
        best = max(self.saved.values(), key=lambda s: shared_prefix(s.tokens, prompt), default=None)
        in_memory = shared_prefix(best.tokens, prompt) if best is not None else 0
        on_disk = self.disk.best(prompt) if self.disk is not None else None
        if on_disk is not None and on_disk[1] > max(in_memory, keeps) + MIN_GAIN:
            loaded = self.disk.load(on_disk[0]) if self.disk is not None else None
            if loaded is not None:
                self._restore(loaded)
                return
        if best is not None and in_memory - keeps >= MIN_GAIN:
            self._restore(best)

    def persist(self) -> None:
        """Write what the context holds to disk (when the model is closed)."""
        held = self._held()
        if self.disk is not None and len(held) >= MIN_GAIN:
            entry = self._read(held)
            if entry is not None:
                self.disk.put(entry)

    def _read(self, tokens: tuple[int, ...]) -> Saved | None:
        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        if size <= 0:
            return None
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        return Saved(tokens, bytes(buffer[:written]))

    def _keep(self, tokens: tuple[int, ...]) -> None:
        entry = self._read(tokens)
        if entry is None:
            return
        if len(entry.data) > self.max_bytes:
            if self.disk is not None:
                self.disk.put(entry)
            return
        self.saved.pop(tokens, None)
        self.saved[tokens] = entry
        while self.used_bytes > self.max_bytes:
            _, evicted = self.saved.popitem(last=False)
            if self.disk is not None:
                self.disk.put(evicted)

    def _restore(self, entry: Saved) -> None:
        import llama_cpp

        buffer = (ctypes.c_uint8 * len(entry.data)).from_buffer_copy(entry.data)
        if not llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, buffer, len(entry.data), 0):
            return  # the context kept what it had; the prompt is prefilled as usual
        count = len(entry.tokens)
        self.llm.input_ids[:count] = entry.tokens
        self.llm.n_tokens = count
        self.llm._requires_eval = True
        if entry.tokens in self.saved:
            self.saved.move_to_end(entry.tokens)
        self.restores += 1
