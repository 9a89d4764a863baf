"""Reading and writing workspace files as text without changing what the edit did not touch.

A file keeps its encoding (UTF-8, else Latin-1), its line endings (a file whose every newline is
CRLF is edited as LF and written back as CRLF), tabs, a missing final newline and its mode (the
sandbox writes atomically and keeps the mode). Binary and oversized files are refused.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ponder.runtime.tools.base import ToolInputError
from ponder.sandbox.base import (
    IS_DIRECTORY,
    NOT_A_DIRECTORY,
    NOT_FOUND,
    OUTSIDE_WORKSPACE,
    TOO_LARGE,
    FileAccessError,
    Sandbox,
)

MAX_EDIT_BYTES = 10 * 1024 * 1024
HISTORY_PER_FILE = 10
HISTORY_BYTES = 64 * 1024 * 1024


def access_message(error: FileAccessError, path: str, workdir: str) -> str:
    """A refused file access in the words of the text editor tool."""
    if error.kind == NOT_FOUND:
        return f"The path {path} does not exist. Please provide a valid path."
    if error.kind == OUTSIDE_WORKSPACE:
        return (
            f"The path {path} is outside the workspace {workdir}; only files inside it can be used."
        )
    if error.kind == IS_DIRECTORY:
        return (
            f"The path {path} is a directory and only the `view` command can be used on directories"
        )
    if error.kind == NOT_A_DIRECTORY:
        return f"The path {path} is not a directory."
    if error.kind == TOO_LARGE:
        return (
            f"The file {path} is too large to open with this tool (over 10 MB); use grep -n, "
            "head or sed -n 'START,ENDp' with bash."
        )
    return f"Cannot use {path}: {error}"


@dataclass(frozen=True)
class TextFile:
    text: str
    """The content with LF line endings."""
    encoding: str
    crlf: bool

    def encode(self, text: str, path: str) -> bytes:
        """``text`` (LF endings) as this file's bytes."""
        if self.crlf:
            text = text.replace("\n", "\r\n")
        try:
            data = text.encode(self.encoding)
        except UnicodeEncodeError:
            raise ToolInputError(
                f"The new text has characters that {path}'s encoding ({self.encoding}) cannot "
                "hold; nothing was written."
            ) from None
        if len(data) > MAX_EDIT_BYTES:
            raise ToolInputError(f"The result would be over 10 MB; {path} was not changed.")
        return data


def decode(data: bytes, path: str) -> TextFile:
    if b"\x00" in data[:8192]:
        raise ToolInputError(
            f"The file {path} is binary; inspect it with bash (e.g. `file`, `xxd`)."
        )
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "latin-1"
    newlines = text.count("\n")
    crlf = newlines > 0 and text.count("\r\n") == newlines
    return TextFile(text.replace("\r\n", "\n") if crlf else text, encoding, crlf)


def read_file(sandbox: Sandbox, path: str) -> tuple[bytes, TextFile]:
    """The file's bytes and text; raises :class:`ToolInputError` worded for the model."""
    try:
        data = sandbox.read_file(path)
    except FileAccessError as error:
        raise ToolInputError(access_message(error, path, sandbox.workdir)) from None
    return data, decode(data, path)


def write_file(sandbox: Sandbox, path: str, data: bytes) -> None:
    try:
        sandbox.write_file(path, data)
    except FileAccessError as error:
        raise ToolInputError(access_message(error, path, sandbox.workdir)) from None


class EditHistory:
    """Earlier contents of edited files, for ``undo_edit``: a few versions per file, bounded."""

    def __init__(self) -> None:
        self._versions: OrderedDict[str, list[bytes | None]] = OrderedDict()

    def record(self, path: str, before: bytes | None) -> None:
        """``before`` is the content prior to an edit (None: the edit created the file)."""
        versions = self._versions.setdefault(path, [])
        versions.append(before)
        del versions[:-HISTORY_PER_FILE]
        self._versions.move_to_end(path)
        while self._size() > HISTORY_BYTES and len(self._versions) > 1:
            self._versions.popitem(last=False)

    def _size(self) -> int:
        return sum(len(v or b"") for versions in self._versions.values() for v in versions)

    def peek(self, path: str) -> bytes | None:
        """What :meth:`pop` would give, left in the history."""
        versions = self._versions.get(path)
        if not versions:
            raise ToolInputError(f"No edit history found for {path}.")
        return versions[-1]

    def pop(self, path: str) -> bytes | None:
        before = self.peek(path)
        self._versions[path].pop()
        return before
