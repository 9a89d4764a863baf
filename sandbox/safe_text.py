"""Untrusted text made safe to show on a terminal.

Everything the model writes, every command's output and every file name or content that came
out of the sandbox can carry escape sequences: a title change, an OSC 52 clipboard write, a
cleared screen, a cursor move that hides a line, or bidirectional-text controls that show a
command other than the one that runs. :func:`safe_text` is the one function every printing path
uses (line mode, ``-p``, ``-v``, export, the TUI, tool headers, diffs, approvals), and
:func:`safe_name` the one for file names and paths, which must stay on one line.

It is a single left-to-right pass over the text that leaves no control character behind:
colour and erase-line sequences (``ESC [ ... m``, ``ESC [ ... K``), which only style text, are
dropped; every other control character is replaced by a visible stand-in (ESC by ``␛``, BEL by
``␇``, C1 controls by their 7-bit form, ``U+009B`` by ``␛[``, bidirectional controls by
``⟨U+202E⟩``), so a sequence is shown, never run. Because nothing it returns is a control
character, a second pass changes nothing, and no removal can join two halves into a new
sequence (``ESC ESC [m ]0;title`` comes out as ``␛]0;title``).
"""

from __future__ import annotations

import re

_STYLE = r"\x1b\[[0-?]*[ -/]*[mK]"
"""SGR (colours, bold) and EL (erase in line): harmless styling, dropped silently."""
_CONTROL = r"[\x00-\x08\x0b-\x1f\x7f-\x9f]"
"""C0 controls but tab and newline, DEL and the C1 controls."""
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"{_STYLE}|{_CONTROL}|[{BIDI_CONTROLS}\ud800-\udfff]")
"""The last class also holds lone surrogates, which no terminal encoding can write."""
_UNSAFE_IN_NAME = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}\ud800-\udfff]")


def _stand_in(match: re.Match[str]) -> str:
    text = match.group()
    if len(text) > 1:  # a styling sequence
        return ""
    code = ord(text)
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control pictures: ␀ .. ␟
    if code == 0x7F:
        return "␡"
    if code <= 0x9F:
        return "␛" + chr(code - 0x40)  # a C1 control is ESC plus a letter: U+009B is ESC [
    return f"⟨U+{code:04X}⟩"


def safe_text(text: str) -> str:
    """``text`` with no escape sequence or control character left but tab and newline."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return _UNSAFE.sub(_stand_in, text)


def safe_name(name: str) -> str:
    """A file name or path as one line with every control character visible, tab and newline
    too (``x\\n✓ exit 0`` is shown as ``x␊✓ exit 0``), so a name cannot print a line of its
    own that passes for ponder's. Nothing is dropped: a colour sequence is part of the name."""
    return _UNSAFE_IN_NAME.sub(_stand_in, name)


def last_line_state(text: str) -> str:
    """Command output as a terminal leaves it: of each line only what follows its last carriage
    return (progress bars redraw a line with ``\\r``)."""
    if "\r" not in text:
        return text
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in lines)


def unfinished_escape(text: str) -> int:
    """Where an escape sequence that the next piece of a stream may complete starts (the
    length of ``text`` when none does), so a stream is cleaned in whole sequences."""
    at = text.rfind("\x1b", max(0, len(text) - 32))
    if at < 0 or re.fullmatch(r"\x1b(\[[0-?]*[ -/]*)?", text[at:]) is None:
        return len(text)
    return at
