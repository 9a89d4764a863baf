"""What every tool is: a schema the model reads and a ``run`` that acts inside the sandbox."""

from __future__ import annotations

import posixpath
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from ponder.model.messages import ToolSchema
from ponder.runtime.events import Emit
from ponder.runtime.tool_events import FileTexts, ToolKind, describe_arguments
from ponder.sandbox.base import Sandbox


@dataclass(frozen=True, slots=True)
class ToolContext:
    sandbox: Sandbox
    emit: Emit
    call_id: str
    step: int
    cancel: threading.Event | None = None
    """Set when the user interrupts; long-running tools stop."""


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    text: str
    """What the model is shown."""
    shown: str | None = None
    """What a person is shown instead, where ``text`` is framed for the model (its
    instructions, "Here's the result of running ..."): the file's lines, or nothing when the
    diff already says it."""
    ok: bool = True
    exit_code: int | None = None
    timed_out: bool = False
    interrupted: bool = False
    notice: str | None = None
    """What the sandbox says about how a command ended (stopped by the disk guard, out of
    memory, ...), for the person watching too."""
    ends_run: bool = False
    """The run ends after this call (``submit``)."""


@dataclass(frozen=True, slots=True)
class Preview:
    """What a person asked to approve a call reads: the command, or for an edit the diff it
    would make (a diff starts with ``---``) and the file's whole text before and after."""

    text: str
    texts: FileTexts | None = None


class ToolInputError(Exception):
    """The model's arguments are unusable; the message goes back to the model as the result."""


class Tool(Protocol):
    """Everything ponder knows about a tool is declared by the tool (a new tool is one file)."""

    @property
    def schema(self) -> ToolSchema: ...

    @property
    def kind(self) -> ToolKind: ...

    @property
    def parallel(self) -> bool:
        """Calls may run beside other parallel calls of the same step (it only reads)."""
        ...

    def summary(self, arguments: dict[str, Any]) -> str:
        """The call in one line for a person (``$ pytest -q``, a path)."""
        ...

    def preview(self, arguments: dict[str, Any], sandbox: Sandbox) -> Preview:
        """What a person asked to approve the call reads."""
        ...

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome: ...


class BaseTool:
    """The defaults of a tool: it reads, alone, shown by its path (or its arguments)."""

    schema: ToolSchema
    kind: ToolKind = "read"
    parallel = False

    def summary(self, arguments: dict[str, Any]) -> str:
        return describe_arguments(arguments)

    def preview(self, arguments: dict[str, Any], sandbox: Sandbox) -> Preview:
        return Preview(f"{self.schema.name} {self.summary(arguments)}")


def require_str(arguments: dict[str, Any], key: str) -> str:
    value = arguments.get(key)
    if not isinstance(value, str):
        raise ToolInputError(f"parameter `{key}` is required and must be a string")
    return value


PATH_MAX = 4096
NAME_MAX = 255


def workspace_path(arguments: dict[str, Any], workdir: str) -> str:
    """The absolute sandbox path for the model's ``path`` argument (relative to the workspace).

    This is lexical only; the sandbox resolves symlinks and refuses what leads outside.
    """
    path = require_str(arguments, "path")
    if not path.strip():
        raise ToolInputError("parameter `path` must not be empty")
    if "\0" in path:
        raise ToolInputError("parameter `path` holds a NUL character, which no path can")
    joined = posixpath.normpath(path if path.startswith("/") else posixpath.join(workdir, path))
    encoded = joined.encode("utf-8", "replace")
    if len(encoded) > PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise ToolInputError(
            f"parameter `path` is too long for Linux (a path is at most {PATH_MAX} bytes, each "
            f"name in it at most {NAME_MAX})"
        )
    return joined


def display_path(path: str, workdir: str) -> str:
    """The path as a person reads it: relative to the workspace when inside it."""
    if path == workdir:
        return "."
    prefix = workdir.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path
