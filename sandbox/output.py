"""Turning a command's raw output bytes into what the model reads and what a person watches.

The capture keeps the first and last ``limit/2`` bytes and keeps counting past the cap, so a
flood of output costs bounded memory and the model sees both ends with a marker in between.
"""

from __future__ import annotations

import codecs
import re

_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def clean_text(text: str) -> str:
    """Strip terminal escape sequences and NULs; keep the text after the last ``\\r`` of a line."""
    text = _ANSI_RE.sub("", text).replace("\x00", "")
    if "\r" in text:
        text = "\n".join(
            line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")
        )
    return text


def _utf8_start(data: bytes) -> int:
    """Index of the first byte that begins a character (skips at most 3 continuation bytes)."""
    index = 0
    while index < min(3, len(data)) and (data[index] & 0xC0) == 0x80:
        index += 1
    return index


def _utf8_end(data: bytes) -> int:
    """Length of ``data`` without a character cut off at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if (byte & 0xC0) == 0x80:
            continue
        if byte < 0xC0:
            return len(data)
        needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return len(data) if back >= needed else len(data) - back
    return len(data)


class OutputCapture:
    """Accumulates output bytes; :meth:`text` gives the capped, cleaned view for the model."""

    def __init__(self, limit: int = 16_000) -> None:
        self._half = limit // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > 2 * self._half:
                del self._tail[: len(self._tail) - self._half]

    def text(self) -> str:
        head = bytes(self._head)
        tail = bytes(self._tail)
        omitted = self.total - len(head) - len(tail)
        if omitted <= 0 and len(tail) <= self._half:
            return clean_text((head + tail).decode("utf-8", errors="replace"))
        if len(tail) > self._half:
            omitted += len(tail) - self._half
            tail = tail[len(tail) - self._half :]
        head_end = _utf8_end(head)
        tail_start = _utf8_start(tail)
        omitted += len(head) - head_end + tail_start
        head_text = head[:head_end].decode("utf-8", errors="replace")
        tail_text = tail[tail_start:].decode("utf-8", errors="replace")
        marker = f"\n[... {omitted} bytes of output left out ...]\n"
        return clean_text(head_text) + marker + clean_text(tail_text)


class StreamDecoder:
    """Decodes a byte stream into text pieces for live display, whole characters only."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, data: bytes, final: bool = False) -> str:
        return clean_text(self._decoder.decode(data, final))
