"""The edit tools: ``str_replace``, ``create_file``, ``insert`` and ``undo_edit``.

They keep the contract of Anthropic's text editor tool, which K2 knows (the wording of results
and errors follows the reference implementation). Every error leaves the file as it was; every
edit emits a :class:`FileEdited` event with its diff and can be undone.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ponder.model.messages import ToolSchema
from ponder.runtime.events import FileEdited
from ponder.runtime.tool_events import FileTexts, ToolKind
from ponder.runtime.tools.base import (
    BaseTool,
    Preview,
    ToolContext,
    ToolInputError,
    ToolOutcome,
    display_path,
    require_str,
    workspace_path,
)
from ponder.runtime.tools.files import EditHistory, TextFile, decode, read_file, write_file
from ponder.runtime.tools.view import clip, numbered
from ponder.sandbox.base import IS_DIRECTORY, NOT_FOUND, FileAccessError, Sandbox, SandboxError
from ponder.sandbox.safe_text import safe_name

SNIPPET_LINES = 4


def _schema(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> ToolSchema:
    return ToolSchema(
        name=name,
        description=description,
        parameters={"type": "object", "properties": properties, "required": required},
    )


PATH = {"type": "string", "description": "The file, relative to the workspace or absolute in it."}


@dataclass
class Editor:
    """What the edit tools share: the undo history of this conversation."""

    history: EditHistory = field(default_factory=EditHistory)


@dataclass(frozen=True)
class Change:
    """An edit worked out but not yet written: what a run writes and an approval previews."""

    path: str
    before: tuple[bytes, TextFile] | None
    """The file's bytes and text before (None: the edit creates it)."""
    text: str
    """The new content, LF line endings."""
    data: bytes
    """The new content as the file's bytes (its encoding and line endings)."""
    line: int = 1
    """Where the edit starts, for the snippet shown to the model."""
    added_lines: int = 0

    @property
    def old_text(self) -> str | None:
        return self.before[1].text if self.before else None

    def texts(self, workdir: str) -> FileTexts:
        return FileTexts(path=display_path(self.path, workdir), old=self.old_text, new=self.text)


def _lines(text: str) -> list[str]:
    """The lines of ``text``, each with its newline: split at ``\n`` only (``str.splitlines``
    also splits at a form feed, ``\x85`` or U+2028, which are characters within a line)."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def unified_diff(path: str, old: str | None, new: str) -> str:
    """The edit as a diff (``old`` None: the file is created); ``path`` as a person reads it. A
    last line without a newline is marked as git marks it, so that no line runs into the next
    (``-DEBUG = False+DEBUG = True`` would read as one removed line)."""
    lines = difflib.unified_diff(
        _lines(old or ""),
        _lines(new),
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile=f"b/{path}",
    )
    return "".join(
        line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines
    )


class _CreatedIt(ToolInputError):
    """The edit to undo created the file (undo_edit does not delete)."""


def _key(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False)


class _EditTool(BaseTool):
    """An edit tool works its change out first (:meth:`_change`), so that an approval can show
    the diff before anything is written; running it writes, records for undo and reports."""

    kind: ToolKind = "edit"

    def __init__(self, editor: Editor) -> None:
        self.editor = editor
        self._shown: tuple[str, bytes | None] | None = None
        """The last previewed call (its arguments) and the file as its diff showed it: that
        call's run writes only onto what the person saw."""

    def _change(self, arguments: dict[str, Any], sandbox: Sandbox) -> Change:
        raise NotImplementedError

    def _result(self, change: Change) -> str:
        return _edited(change.path, change.text, change.line, change.added_lines)

    def preview(self, arguments: dict[str, Any], sandbox: Sandbox) -> Preview:
        try:
            change = self._change(arguments, sandbox)
        except (ToolInputError, SandboxError) as error:  # shown as data, never as lines of ours
            why = safe_name(str(error).split("\n", 1)[0])[:300]
            given = json.dumps(arguments, ensure_ascii=False, indent=2)[:4000]
            return Preview(f"{self.schema.name}: no diff to show ({why}); its arguments:\n{given}")
        self._shown = (_key(arguments), change.before[0] if change.before else None)
        shown = safe_name(display_path(change.path, sandbox.workdir))
        diff = unified_diff(shown, change.old_text, change.text)
        texts = change.texts(sandbox.workdir)
        return Preview(diff or f"{self.summary(arguments)} (no change)", texts)

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        change = self._change(arguments, context.sandbox)
        previewed, self._shown = self._shown, None
        now = change.before[0] if change.before else None
        if previewed is not None and previewed[0] == _key(arguments) and previewed[1] != now:
            raise ToolInputError(
                f"{change.path} changed after the user was shown this edit; nothing was written. "
                "View the file again and redo the edit."
            )
        write_file(context.sandbox, change.path, change.data)
        self._record(change)
        shown = display_path(change.path, context.sandbox.workdir)
        diff = unified_diff(shown, change.old_text, change.text)
        edited = FileEdited(
            call_id=context.call_id,
            path=shown,
            diff=diff,
            texts=change.texts(context.sandbox.workdir),
        )
        context.emit(edited)
        return ToolOutcome(text=self._result(change), shown="")  # the diff says it

    def _record(self, change: Change) -> None:
        self.editor.history.record(change.path, change.before[0] if change.before else None)


def _edited(path: str, text: str, line: int, added_lines: int) -> str:
    first = max(1, line - SNIPPET_LINES)
    last = line + added_lines + SNIPPET_LINES
    snippet = "\n".join(text.split("\n")[first - 1 : last])
    return (
        f"The file {path} has been edited. Here's the result of running `cat -n` on a snippet of "
        f"{path}:\n{numbered(snippet, first)}\n"
        "Review the changes and make sure they are as expected. Edit the file again if necessary."
    )


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _string(arguments: dict[str, Any], key: str, default: str | None = None) -> str:
    value = arguments.get(key, default)
    if not isinstance(value, str):
        raise ToolInputError(f"parameter `{key}` is required and must be a string")
    return value


class StrReplaceTool(_EditTool):
    schema = _schema(
        "str_replace",
        "Replace text in a file. `old_str` must match exactly one place in the file, whitespace "
        "included; include enough surrounding lines to make it unique. Returns the edited part.",
        {
            "path": PATH,
            "old_str": {"type": "string", "description": "The exact text to replace."},
            "new_str": {"type": "string", "description": "The replacement (may be empty)."},
        },
        ["path", "old_str"],
    )

    def _change(self, arguments: dict[str, Any], sandbox: Sandbox) -> Change:
        path = workspace_path(arguments, sandbox.workdir)
        old = require_str(arguments, "old_str")
        new = _string(arguments, "new_str", "")
        if old == new:
            raise ToolInputError(
                f"No replacement was performed, old_str `{old}` is the same as new_str `{new}`."
            )
        before = read_file(sandbox, path)
        text = before[1].text
        matches = [m.start() for m in re.finditer(re.escape(old), text)] if old else []
        if not matches:
            raise ToolInputError(
                f"No replacement was performed, old_str `{old}` did not appear verbatim in {path}."
            )
        if len(matches) > 1:
            lines = [_line_of(text, start) for start in matches]
            raise ToolInputError(
                f"No replacement was performed. Multiple occurrences of old_str `{old}` in lines "
                f"{lines}. Please ensure it is unique"
            )
        start = matches[0]
        edited = text[:start] + new + text[start + len(old) :]
        data = before[1].encode(edited, path)
        return Change(path, before, edited, data, _line_of(edited, start), new.count("\n"))


class CreateFileTool(_EditTool):
    schema = _schema(
        "create_file",
        "Create a new file with the given content (parent directories are made). It will not "
        "overwrite an existing file: change one with str_replace or insert.",
        {"path": PATH, "file_text": {"type": "string", "description": "The whole content."}},
        ["path", "file_text"],
    )

    def _change(self, arguments: dict[str, Any], sandbox: Sandbox) -> Change:
        path = workspace_path(arguments, sandbox.workdir)
        text = _string(arguments, "file_text")
        try:
            sandbox.read_file(path)
        except FileAccessError as error:
            if error.kind == IS_DIRECTORY:
                raise ToolInputError(f"The path {path} is a directory; give a file name.") from None
            if error.kind != NOT_FOUND:
                read_file(sandbox, path)  # raises the worded error
        else:
            raise ToolInputError(
                f"File already exists at: {path}. Cannot overwrite files using command `create`."
            )
        return Change(path, None, text, TextFile(text, "utf-8", crlf=False).encode(text, path))

    def _result(self, change: Change) -> str:
        return f"File created successfully at: {change.path}"


class InsertTool(_EditTool):
    schema = _schema(
        "insert",
        "Insert text after a line of a file (`insert_line` 0 inserts at the top).",
        {
            "path": PATH,
            "insert_line": {"type": "integer", "description": "Insert after this line."},
            "new_str": {"type": "string", "description": "The text to insert."},
        },
        ["path", "insert_line", "new_str"],
    )

    def _change(self, arguments: dict[str, Any], sandbox: Sandbox) -> Change:
        path = workspace_path(arguments, sandbox.workdir)
        new = _string(arguments, "new_str")
        at = arguments.get("insert_line")
        before = read_file(sandbox, path)
        lines = before[1].text.splitlines(keepends=True)
        if not isinstance(at, int) or isinstance(at, bool) or not 0 <= at <= len(lines):
            raise ToolInputError(
                f"Invalid `insert_line` parameter: {at}. It should be within the range of lines "
                f"of the file: [0, {len(lines)}]"
            )
        block = new if new.endswith("\n") else new + "\n"
        if at == len(lines) and lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"  # appending after a last line that had no newline
        edited = "".join([*lines[:at], block, *lines[at:]])
        data = before[1].encode(edited, path)
        return Change(path, before, edited, data, at + 1, block.count("\n") - 1)


class UndoEditTool(_EditTool):
    schema = _schema(
        "undo_edit",
        "Undo the last edit made to a file with these tools.",
        {"path": PATH},
        ["path"],
    )

    def _change(self, arguments: dict[str, Any], sandbox: Sandbox) -> Change:
        path = workspace_path(arguments, sandbox.workdir)
        previous = self.editor.history.peek(path)
        if previous is None:
            raise _CreatedIt(
                f"The last edit of {path} created it; remove it with bash (`rm`) to undo that."
            )
        return Change(path, read_file(sandbox, path), decode(previous, path).text, previous)

    def _record(self, change: Change) -> None:
        self.editor.history.pop(change.path)

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        try:
            return super().run(arguments, context)
        except _CreatedIt:  # that edit is answered: the next undo looks further back
            self.editor.history.pop(workspace_path(arguments, context.sandbox.workdir))
            raise

    def _result(self, change: Change) -> str:
        return clip(
            f"Last edit to {change.path} undone successfully. Here's the result of running "
            f"`cat -n` on {change.path}:\n{numbered(change.text)}\n"
        )
