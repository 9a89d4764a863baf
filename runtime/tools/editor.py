"""The file tools ``view`` and ``str_replace``, with the contract of Anthropic's text editor tool.

K2 was trained with tools of this shape, so the wording of results and errors follows the
reference implementation. Files are read and written through the sandbox (which resolves
symlinks inside the container and refuses paths outside the workspace); the text is edited
here exactly as found: no tab expansion, line endings and a missing final newline are kept.
"""

from __future__ import annotations

import difflib
import re
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
from ponder.sandbox.base import (
    IS_DIRECTORY,
    NOT_FOUND,
    OUTSIDE_WORKSPACE,
    TOO_LARGE,
    WORKDIR,
    FileAccessError,
    Sandbox,
)

MAX_VIEW_CHARS = 16_000
SNIPPET_LINES = 4
CLIPPED_NOTE = (
    "<response clipped><NOTE>To save on context only part of this file has been shown to you. "
    "You should retry this tool after you have searched inside the file with `grep -n` in order "
    "to find the line numbers of what you are looking for.</NOTE>"
)

VIEW_SCHEMA = ToolSchema(
    name="view",
    description=(
        "Show a file with line numbers (like `cat -n`), optionally only a line range, or list a "
        "directory two levels deep (hidden entries left out). Paths are relative to the "
        f"workspace root or absolute inside {WORKDIR}."
    ),
    parameters={
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File or directory to show."},
            "view_range": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "[start, end] line numbers, 1-based and inclusive; end -1 means "
                "to the end of the file.",
            },
        },
        "required": ["path"],
    },
)

STR_REPLACE_SCHEMA = ToolSchema(
    name="str_replace",
    description=(
        "Replace text in a file. `old_str` must match exactly one place in the file, whitespace "
        "included; include enough surrounding lines to make it unique. Returns the edited part."
    ),
    parameters={
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File to edit."},
            "old_str": {"type": "string", "description": "The exact text to replace."},
            "new_str": {"type": "string", "description": "The replacement (may be empty)."},
        },
        "required": ["path", "old_str"],
    },
)


def numbered(text: str, first_line: int = 1) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(text.split("\n"), first_line))


def _access_message(error: FileAccessError, path: str) -> str:
    if error.kind == NOT_FOUND:
        return f"The path {path} does not exist. Please provide a valid path."
    if error.kind == OUTSIDE_WORKSPACE:
        return (
            f"The path {path} is outside the workspace {WORKDIR}; only files inside it can be used."
        )
    if error.kind == IS_DIRECTORY:
        return (
            f"The path {path} is a directory and only the `view` command can be used on directories"
        )
    if error.kind == TOO_LARGE:
        return f"The file {path} is too large to open with this tool; use `grep`, `head` or `sed`."
    return f"Cannot use {path}: {error}"


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ToolInputError(
            f"The file {path} is not UTF-8 text (it may be binary); inspect it with bash."
        ) from None


def read_text(sandbox: Sandbox, path: str) -> str:
    """Read a workspace file as text; raises :class:`ToolInputError` worded for the model."""
    try:
        return _decode(sandbox.read_file(path), path)
    except FileAccessError as error:
        raise ToolInputError(_access_message(error, path)) from None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VIEW_CHARS else text[:MAX_VIEW_CHARS] + CLIPPED_NOTE


def _view_range(arguments: dict[str, Any], line_count: int) -> tuple[int, int, str]:
    """(first, last, note) for the requested range, clamped to the file."""
    value = arguments.get("view_range")
    if value is None:
        return 1, line_count, ""
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise ToolInputError("Invalid `view_range`. It should be a list of two integers.")
    first, last = value
    if not 1 <= first <= line_count:
        raise ToolInputError(
            f"Invalid `view_range`: {value}. Its first element `{first}` should be within the "
            f"range of lines of the file: [1, {line_count}]"
        )
    if last == -1:
        return first, line_count, ""
    if last < first:
        raise ToolInputError(
            f"Invalid `view_range`: {value}. Its second element `{last}` should be larger or "
            f"equal than its first `{first}`"
        )
    if last > line_count:
        return first, line_count, f"\nNOTE: the file has {line_count} lines; showed up to there."
    return first, last, ""


class ViewTool:
    schema = VIEW_SCHEMA

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        path = workspace_path(require_str(arguments, "path"))
        try:
            data = context.sandbox.read_file(path)
        except FileAccessError as error:
            if error.kind != IS_DIRECTORY:
                raise ToolInputError(_access_message(error, path)) from None
            if arguments.get("view_range") is not None:
                raise ToolInputError(
                    "The `view_range` parameter is not allowed when `path` points to a directory."
                ) from None
            entries = context.sandbox.list_dir(path, depth=2)
            listing = "\n".join([path, *(f"{path}/{entry}" for entry in entries)])
            return ToolOutcome(
                text=_clip(
                    f"Here's the files and directories up to 2 levels deep in {path}, excluding "
                    f"hidden items:\n{listing}\n"
                )
            )
        lines = _decode(data, path).split("\n")
        first, last, note = _view_range(arguments, len(lines))
        body = numbered("\n".join(lines[first - 1 : last]), first)
        return ToolOutcome(
            text=_clip(f"Here's the result of running `cat -n` on {path}:\n{body}\n") + note
        )


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def unified_diff(before: str, after: str, path: str) -> str:
    shown = display_path(path)
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{shown}",
            tofile=f"b/{shown}",
        )
    )


class StrReplaceTool:
    schema = STR_REPLACE_SCHEMA

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        path = workspace_path(require_str(arguments, "path"))
        old = require_str(arguments, "old_str")
        new = arguments.get("new_str", "")
        if not isinstance(new, str):
            raise ToolInputError("parameter `new_str` must be a string")
        if old == new:
            raise ToolInputError(
                f"No replacement was performed, old_str `{old}` is the same as new_str `{new}`."
            )
        text = read_text(context.sandbox, path)
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
        try:
            context.sandbox.write_file(path, edited.encode("utf-8"))
        except FileAccessError as error:
            raise ToolInputError(_access_message(error, path)) from None
        context.emit(
            FileEdited(
                call_id=context.call_id,
                path=display_path(path),
                diff=unified_diff(text, edited, path),
            )
        )
        edit_line = _line_of(edited, start)
        first = max(1, edit_line - SNIPPET_LINES)
        last = edit_line + new.count("\n") + SNIPPET_LINES
        snippet = "\n".join(edited.split("\n")[first - 1 : last])
        return ToolOutcome(
            text=(
                f"The file {path} has been edited. Here's the result of running `cat -n` on a "
                f"snippet of {path}:\n{numbered(snippet, first)}\n"
                "Review the changes and make sure they are as expected. Edit the file again if "
                "necessary."
            )
        )
