"""The terminal's input side: how Enter arrives, and what was typed before a prompt was up.

ponder takes about a second to start, and people type meanwhile. Those keys wait in the
terminal's line buffer, where Enter has already become a line feed (ICRNL), which the prompts
read as Ctrl+J, a new line: the message would sit unsent, or in the TUI be lost before its
prompt has focus. So just before a prompt starts, what is waiting is read, and its complete
lines are sent as messages.

While a task runs in line mode, :class:`QueuedLines` takes each line off the terminal as its
Enter is pressed (the terminal's own editing and echo stay), so that it is shown as queued at
once and sent when the task ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import termios
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ponder.sandbox.safe_text import BIDI_CONTROLS

_NOT_TEXT = re.compile(
    r"\x1b[\]P^_X][^\x07\x1b]*(?:\x07|\x1b\\)?"  # a terminal's reply (OSC, DCS ...)
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # arrows, function keys (CSI, C1 CSI too)
    r"|\x1bO.|\x1b.?"  # function keys (SS3), any other escape
    f"|[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{BIDI_CONTROLS}]",  # controls, C1, bidi
    re.DOTALL,
)
"""Keys and terminal replies, not text: dropped from what was typed ahead."""
_IN_MESSAGE = "\u2028"
"""Where Alt+Enter was typed: a new line within a message, not its end."""


@contextmanager
def enter_as_newline(on: bool) -> Iterator[None]:
    """Whether the terminal turns Enter into a line feed (ICRNL), for the time of the block.

    Off while a task runs: the prompt takes a line feed as Ctrl+J (a new line), so a message
    typed meanwhile would wait unsent; kept as Enter, it is sent when the prompt comes back, so
    messages typed during a task queue up after it. On while an approval is asked with
    ``input()``, which needs the line feed to end its line.
    """
    if not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    before = termios.tcgetattr(fd)
    changed = list(before)
    changed[0] = changed[0] | termios.ICRNL if on else changed[0] & ~termios.ICRNL
    termios.tcsetattr(fd, termios.TCSANOW, changed)
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):  # the terminal hung up: nothing to restore
            termios.tcsetattr(fd, termios.TCSANOW, before)


@dataclass(frozen=True)
class Typed:
    """Keys typed before the prompt came up."""

    lines: list[str]
    """Messages ended with Enter: to send, in order."""
    rest: str
    """Text typed after the last Enter: it goes on in the prompt."""


def typed_ahead() -> Typed:
    """What is waiting on a terminal's input, read without waiting (nothing off a terminal)."""
    if not sys.stdin.isatty():
        return Typed([], "")
    fd = sys.stdin.fileno()
    before = termios.tcgetattr(fd)
    now = list(before)
    now[3] &= ~(termios.ICANON | termios.ECHO)  # readable before its Enter, and not echoed
    now[6] = list(before[6])
    now[6][termios.VMIN], now[6][termios.VTIME] = 0, 0
    termios.tcsetattr(fd, termios.TCSANOW, now)
    data = bytearray()
    try:
        while chunk := os.read(fd, 4096):
            data += chunk
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, before)
    return _split(data.decode(errors="replace"))


def _split(text: str) -> Typed:
    """Typed keys as messages (each line ended with Enter) and the text after the last one."""
    text = text.replace("\x1b\r", _IN_MESSAGE).replace("\x1b\n", _IN_MESSAGE)
    *lines, rest = _NOT_TEXT.sub("", text.replace("\r", "\n")).split("\n")
    messages = [line.strip().replace(_IN_MESSAGE, "\n") for line in lines if line.strip()]
    return Typed(messages, rest.replace(_IN_MESSAGE, "\n"))


class QueuedLines:
    """Messages typed while a task runs, read on a thread of their own as each is entered.

    The terminal stays in its line mode, Enter ending a line (ICRNL on), so it echoes and edits
    what is typed and hands over whole lines only; each is passed to ``shown`` and kept in
    :attr:`lines`. Text not yet ended with Enter stays with the terminal, for the prompt that
    follows the task. An approval reads its answer with ``input()``: :meth:`paused` keeps the
    thread off the terminal meanwhile. Off a terminal, nothing is read.
    """

    POLL_S = 0.1

    def __init__(self, shown: Callable[[str], None]) -> None:
        self._shown = shown
        self.lines: list[str] = []
        self.ended = False
        """End of input (Ctrl+D) was typed during the task."""
        self._typed = ""
        """A message read in part (its lines so far ended with Alt+Enter)."""
        self._state = threading.Condition()
        self._paused = self._parked = self._stopping = False
        self._thread: threading.Thread | None = None

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Read for the time of the block (one task)."""
        if not sys.stdin.isatty():
            yield
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._read, name="queued-lines", daemon=True)
        with enter_as_newline(True):
            self._thread.start()
            try:
                yield
            finally:
                with self._state:
                    self._stopping = True
                    self._state.notify_all()
                self._thread.join()
                if not self.ended:  # a line entered as the task ended: still the queue's
                    self._take(sys.stdin.fileno(), 0)

    def leftover(self) -> str:
        """A message begun during the task (lines ended with Alt+Enter, no Enter yet): the
        prompt's text when it comes back."""
        typed, self._typed = self._typed, ""
        return _split(typed).rest

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the terminal's input to someone else (an approval's question) in the block."""
        if self._thread is None or not self._thread.is_alive():
            yield
            return
        with self._state:
            self._paused = True
            self._state.notify_all()
            while not self._parked and self._thread.is_alive():
                self._state.wait(self.POLL_S)
        try:
            yield
        finally:
            with self._state:
                self._paused = False
                self._state.notify_all()

    def _read(self) -> None:
        fd = sys.stdin.fileno()
        while True:
            with self._state:
                while self._paused and not self._stopping:
                    self._parked = True
                    self._state.notify_all()
                    self._state.wait()
                self._parked = False
                if self._stopping:
                    return
            if not self._take(fd, self.POLL_S):
                return

    def _take(self, fd: int, wait: float) -> bool:
        """Take the lines the terminal has ready, waiting up to ``wait`` seconds for one;
        False when input ended."""
        try:
            while select.select([fd], [], [], wait)[0]:
                data = os.read(fd, 4096)
                if not data:
                    self.ended = True
                    return False
                self._typed += data.decode(errors="replace")
                if self._typed.endswith(("\x1b\n", "\x1b\r")):  # Alt+Enter: the message goes on
                    continue
                typed, self._typed = self._typed, ""
                for line in _split(typed + "\n").lines:
                    self.lines.append(line)
                    self._shown(line)
                wait = 0
        except OSError:  # the terminal hung up
            return False
        return True
