"""Turning a command's raw output bytes into what the model reads and what a person watches.

The capture keeps the first and last few kilobytes and keeps counting past them, so a flood of
output costs bounded memory; the whole output (up to a cap) is spooled to a temporary file so it
can be stored in the sandbox for the model to grep. The model's view is cut by bytes and by lines,
always on character boundaries, with a marker saying how much was left out and where it is.
"""

from __future__ import annotations

import codecs
import hashlib
import tempfile
from collections.abc import Callable

from ponder.sandbox.safe_text import last_line_state, safe_text, unfinished_escape

MODEL_VIEW_BYTES = 10_000
MODEL_VIEW_LINES = 256
LOG_BYTES = 64 * 1024 * 1024
"""Most output kept for the full log; past it the log says it is partial."""

_CONTROL = set(range(32)) - {9, 10, 13, 27}


def clean_text(text: str) -> str:
    """Command output as the model reads it and a person watches it: each line as a terminal
    leaves it, with no escape sequence or control character left (:mod:`safe_text`)."""
    return safe_text(last_line_state(text))


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


def looks_binary(sample: bytes) -> bool:
    """More than a tenth of the characters (and at least 8) are control bytes, NULs or not
    UTF-8: a stray invalid byte in text is only replaced."""
    text = sample[: _utf8_end(sample)].decode("utf-8", errors="replace")
    odd = text.count("\ufffd") + sum(ord(char) in _CONTROL for char in text)
    return odd >= 8 and odd * 10 > len(text)


class OutputCapture:
    """Accumulates output bytes; :meth:`text` gives the capped, cleaned view for the model."""

    def __init__(
        self,
        view_bytes: int = MODEL_VIEW_BYTES,
        view_lines: int = MODEL_VIEW_LINES,
        log_bytes: int = LOG_BYTES,
    ) -> None:
        self._half = view_bytes // 2
        self._half_lines = view_lines // 2
        self._head = bytearray()
        self._tail = bytearray()
        self._log_bytes = log_bytes
        self._spool = tempfile.SpooledTemporaryFile(max_size=1024 * 1024)  # noqa: SIM115
        self._hash = hashlib.sha256()
        self.total = 0
        self.lines = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self.lines += data.count(b"\n")
        self._hash.update(data)
        room = self._log_bytes - self._spool.tell()
        if room > 0:
            self._spool.write(data[:room])
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > 2 * self._half:
                del self._tail[: len(self._tail) - self._half]

    @property
    def binary(self) -> bool:
        return looks_binary(bytes(self._head[:8192]))

    @property
    def truncated(self) -> bool:
        """Whether the model's view leaves something out."""
        if self.binary:
            return True
        shown = len(self._head) + min(len(self._tail), self._half)
        return self.total > shown or self.lines > 2 * self._half_lines

    def full_output(self) -> bytes:
        """Everything captured for the log (at most ``log_bytes``)."""
        self._spool.seek(0)
        data = self._spool.read()
        self._spool.seek(0, 2)
        return data

    def close(self) -> None:
        self._spool.close()

    def text(self, log_path: str | None = None) -> str:
        where = f"; the full output is in {log_path}" if log_path else ""
        if self.binary:
            return (
                f"[binary output: {self.total} bytes, sha256 {self._hash.hexdigest()[:16]}, "
                f"starting {bytes(self._head[:16]).hex(' ')}{where}]"
            )
        if not self.truncated:
            return clean_text(bytes(self._head + self._tail).decode("utf-8", errors="replace"))
        if self.total > len(self._head) + len(self._tail[-self._half :]):
            head = bytes(self._head[: _utf8_end(bytes(self._head))])
            tail = bytes(self._tail[-self._half :])
            tail = tail[_utf8_start(tail) :]
            head_lines = head.decode("utf-8", errors="replace").split("\n")[: self._half_lines]
            tail_lines = tail.decode("utf-8", errors="replace").split("\n")[-self._half_lines :]
        else:  # few bytes but too many lines
            lines = bytes(self._head + self._tail).decode("utf-8", errors="replace").split("\n")
            head_lines, tail_lines = lines[: self._half_lines], lines[-self._half_lines :]
        shown_head = "\n".join(head_lines)
        shown_tail = "\n".join(tail_lines)
        left_bytes = self.total - len(shown_head.encode()) - len(shown_tail.encode())
        left_lines = self.lines - shown_head.count("\n") - shown_tail.count("\n")
        marker = f"\n[... {left_bytes} bytes, {left_lines} lines left out{where} ...]\n"
        return clean_text(shown_head) + marker + clean_text(shown_tail)


class LiveCapture(OutputCapture):
    """A capture that also hands whole characters of text to ``on_output`` as they arrive."""

    def __init__(self, on_output: Callable[[str], None] | None) -> None:
        super().__init__()
        self._on_output = on_output
        self._decoder = StreamDecoder()

    def add(self, data: bytes) -> None:
        super().add(data)
        if self._on_output is not None and (text := self._decoder.decode(data)):
            self._on_output(text)


class StreamDecoder:
    """Decodes a byte stream into text pieces for live display, whole characters and whole
    escape sequences only (a sequence split between two pieces is held back until complete)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""

    def decode(self, data: bytes, final: bool = False) -> str:
        text = self._held + self._decoder.decode(data, final)
        cut = len(text) if final else unfinished_escape(text)
        text, self._held = text[:cut], text[cut:]
        return clean_text(text)
