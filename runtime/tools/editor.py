"""The edit tools: ``str_replace``, ``create_file``, ``insert`` and ``undo_edit``.

They keep the contract of Anthropic's text editor tool, which K2 knows (the wording of results
and errors follows the reference implementation). Every error leaves the file as it was; every
edit emits a :class:`FileEdited` event with its diff and can be undone.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from ponder.model.messages import ToolSchema
from ponder.runtime.events import FileEdited
from ponder.runtime.tools.base import (
    ToolContext,
    ToolInputError,
    ToolOutcome,
    display_path,
    require_str,
    workspace_path,
)
from ponder.runtime.tools.files import EditHistory, TextFile, decode, read_file, write_file
from ponder.runtime.tools.view import clip, numbered
from ponder.sandbox.base import IS_DIRECTORY, NOT_FOUND, FileAccessError

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

    def save(
        self,
        context: ToolContext,
        path: str,
        before: tuple[bytes, TextFile] | None,
        text: str,
        like: TextFile,
    ) -> None:
        """Write ``text`` to ``path`` in ``like``'s encoding and line endings; record and report."""
        write_file(context.sandbox, path, like.encode(text, path))
        self.history.record(path, before[0] if before else None)
        report(context, path, before[1].text if before else None, text)


def report(context: ToolContext, path: str, old: str | None, new: str) -> None:
    """Emit the edit as a diff (``old`` None: the file was created)."""
    shown = display_path(path, context.sandbox.workdir)
    diff = "".join(
        difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile="/dev/null" if old is None else f"a/{shown}",
            tofile=f"b/{shown}",
        )
    )
    context.emit(FileEdited(call_id=context.call_id, path=shown, diff=diff))


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


class StrReplaceTool:
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

    def __init__(self, editor: Editor) -> None:
        self.editor = editor

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        path = workspace_path(arguments, context.sandbox.workdir)
        old = require_str(arguments, "old_str")
        new = _string(arguments, "new_str", "")
        if old == new:
            raise ToolInputError(
                f"No replacement was performed, old_str `{old}` is the same as new_str `{new}`."
            )
        before = read_file(context.sandbox, path)
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
        self.editor.save(context, path, before, edited, before[1])
        return ToolOutcome(text=_edited(path, edited, _line_of(edited, start), new.count("\n")))


class CreateFileTool:
    schema = _schema(
        "create_file",
        "Create a new file with the given content (parent directories are made). It will not "
        "overwrite an existing file: change one with str_replace or insert.",
        {"path": PATH, "file_text": {"type": "string", "description": "The whole content."}},
        ["path", "file_text"],
    )

    def __init__(self, editor: Editor) -> None:
        self.editor = editor

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        path = workspace_path(arguments, context.sandbox.workdir)
        text = _string(arguments, "file_text")
        try:
            context.sandbox.read_file(path)
        except FileAccessError as error:
            if error.kind == IS_DIRECTORY:
                raise ToolInputError(f"The path {path} is a directory; give a file name.") from None
            if error.kind != NOT_FOUND:
                read_file(context.sandbox, path)  # raises the worded error
        else:
            raise ToolInputError(
                f"File already exists at: {path}. Cannot overwrite files using command `create`."
            )
        self.editor.save(context, path, None, text, TextFile(text, "utf-8", crlf=False))
        return ToolOutcome(text=f"File created successfully at: {path}")


class InsertTool:
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

    def __init__(self, editor: Editor) -> None:
        self.editor = editor

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        path = workspace_path(arguments, context.sandbox.workdir)
        new = _string(arguments, "new_str")
        at = arguments.get("insert_line")
        before = read_file(context.sandbox, path)
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
        self.editor.save(context, path, before, edited, before[1])
        return ToolOutcome(text=_edited(path, edited, at + 1, block.count("\n") - 1))


class UndoEditTool:
    schema = _schema(
        "undo_edit",
        "Undo the last edit made to a file with these tools.",
        {"path": PATH},
        ["path"],
    )

    def __init__(self, editor: Editor) -> None:
        self.editor = editor

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        path = workspace_path(arguments, context.sandbox.workdir)
        previous = self.editor.history.pop(path)
        if previous is None:
            raise ToolInputError(
                f"The last edit of {path} created it; remove it with bash (`rm`) to undo that."
            )
        current = read_file(context.sandbox, path)
        write_file(context.sandbox, path, previous)
        restored = decode(previous, path).text
        report(context, path, current[1].text, restored)
        return ToolOutcome(
            text=clip(
                f"Last edit to {path} undone successfully. Here's the result of running "
                f"`cat -n` on {path}:\n{numbered(restored)}\n"
            )
        )
