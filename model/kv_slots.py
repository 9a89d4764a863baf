"""Conversations' KV caches kept side by side, so alternating conversations do not wipe each
other's prefill.

A llama.cpp context holds one KV cache. When the next prompt does not extend what the cache
holds (another conversation's turn, in ``ponder serve``), the cache is saved first, keyed by
the tokens it holds, and the saved cache that shares the longest prefix with the new prompt is
restored, when it beats what the context holds. Only the sequence's KV goes in and out
(llama.cpp's sequence state API), not the logits, and only on such a switch: a single
conversation pays nothing. Saved caches are kept within a byte cap, least recently used first
out.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_GAIN = 32
"""A saved cache is restored only when it saves at least this many tokens of prefill."""


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


class KvSlots:
    """Saved KV caches of one ``llama_cpp.Llama`` (sequence 0), within ``max_bytes``."""

    def __init__(self, llm: Any, max_bytes: int) -> None:
        self.llm = llm
        self.max_bytes = max_bytes
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
        if self.max_bytes <= 0:
            return
        held = self._held()
        keeps = shared_prefix(held, prompt)
        best = max(self.saved.values(), key=lambda s: shared_prefix(s.tokens, prompt), default=None)
        gain = shared_prefix(best.tokens, prompt) - keeps if best is not None else 0
        if keeps < len(held) and len(held) >= MIN_GAIN:
            self._save(held)
        if best is not None and gain >= MIN_GAIN:
            self._restore(best)

    def _save(self, tokens: tuple[int, ...]) -> None:
        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        if size <= 0 or size > self.max_bytes:
            return
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        self.saved.pop(tokens, None)
        self.saved[tokens] = Saved(tokens, bytes(buffer[:written]))
        while self.used_bytes > self.max_bytes:
            self.saved.popitem(last=False)

    def _restore(self, entry: Saved) -> None:
        import llama_cpp

        buffer = (ctypes.c_uint8 * len(entry.data)).from_buffer_copy(entry.data)
        if not llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, buffer, len(entry.data), 0):
            return  # the context kept what it had; the prompt is prefilled as usual
        count = len(entry.tokens)
        self.llm.input_ids[:count] = entry.tokens
        self.llm.n_tokens = count
        self.llm._requires_eval = True
        self.saved.move_to_end(entry.tokens)
        self.restores += 1
