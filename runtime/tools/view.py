"""The ``view`` tool: a file with line numbers (or a range of it), or a directory, 2 levels."""

from __future__ import annotations

from typing import Any

from ponder.model.messages import ToolSchema
from ponder.runtime.tools.base import (
    BaseTool,
    ToolContext,
    ToolInputError,
    ToolOutcome,
    workspace_path,
)
from ponder.runtime.tools.files import access_message, decode
from ponder.sandbox.base import IS_DIRECTORY, FileAccessError

MAX_VIEW_CHARS = 16_000
CLIPPED_NOTE = (
    "<response clipped><NOTE>To save on context only part of this file has been shown to you. "
    "You should retry this tool after you have searched inside the file with `grep -n` in order "
    "to find the line numbers of what you are looking for.</NOTE>"
)

SCHEMA = ToolSchema(
    name="view",
    description=(
        "Show a file with line numbers (like `cat -n`), optionally only a line range, or list a "
        "directory two levels deep (hidden entries left out). Paths are relative to the "
        "workspace root or absolute inside it."
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


def numbered(text: str, first_line: int = 1) -> str:
    return "\n".join(f"{n:6}\t{line}" for n, line in enumerate(text.split("\n"), first_line))


def clip(text: str) -> str:
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


class ViewTool(BaseTool):
    schema = SCHEMA
    parallel = True

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        sandbox = context.sandbox
        path = workspace_path(arguments, sandbox.workdir)
        try:
            data = sandbox.read_file(path)
        except FileAccessError as error:
            if error.kind != IS_DIRECTORY:
                raise ToolInputError(access_message(error, path, sandbox.workdir)) from None
            return self._directory(path, arguments, context)
        lines = decode(data, path).text.split("\n")
        first, last, note = _view_range(arguments, len(lines))
        body = numbered("\n".join(lines[first - 1 : last]), first)
        text = clip(f"Here's the result of running `cat -n` on {path}:\n{body}\n") + note
        return ToolOutcome(text=text, shown=text.partition("\n")[2])  # the same lines, cut alike

    @staticmethod
    def _directory(path: str, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        if arguments.get("view_range") is not None:
            raise ToolInputError(
                "The `view_range` parameter is not allowed when `path` points to a directory."
            )
        entries = context.sandbox.list_dir(path, depth=2)
        listing = "\n".join([path, *(f"{path}/{entry}" for entry in entries)])
        return ToolOutcome(
            text=clip(
                f"Here's the files and directories up to 2 levels deep in {path}, excluding "
                f"hidden items:\n{listing}\n"
            )
        )
