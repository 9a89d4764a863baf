"""Events (approval requests too) made safe to show: every string through :func:`safe_text`,
every file name through :func:`safe_name`.

Each frontend passes what it is about to show through here once, where it takes it in (the line
printer, the TUI's queue, export, the answer of ``-p``), so no path that prints a run can forget
the sanitizer. The events themselves, in session files and ``--json``, keep the exact text.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from ponder.runtime.events import FileEdited
from ponder.sandbox.safe_text import safe_name, safe_text

E = TypeVar("E", bound=BaseModel)

NAME_FIELDS = frozenset({"path", "files"})
"""Fields of events (and keys of a call's arguments) that hold file names or paths: a name may
hold a newline, which :func:`safe_text` keeps, so these go through :func:`safe_name`."""


def _clean(value: Any, is_name: bool = False) -> Any:
    if isinstance(value, str):
        return safe_name(value) if is_name else safe_text(value)
    if isinstance(value, list):
        return [_clean(item, is_name) for item in value]
    if isinstance(value, dict):
        return {_clean(key): _clean(item, key in NAME_FIELDS) for key, item in value.items()}
    if isinstance(value, BaseModel):  # a plan's steps, an MCP server, a changed path
        return for_display(value)
    return value


def _diff(diff: str, path: str) -> str:
    """An edit's diff with the file name of its header through :func:`safe_name`: the header
    was written with the raw name, and a newline in it would start a line of its own."""
    name = safe_name(path)
    for old, shown in ((f"a/{path}", f"a/{name}"), ("/dev/null", "/dev/null")):
        header = f"--- {old}\n+++ b/{path}\n"
        if diff.startswith(header):
            return f"--- {shown}\n+++ b/{name}\n{safe_text(diff[len(header) :])}"
    return safe_text(diff)


def for_display(event: E) -> E:
    """A copy of ``event`` with no escape sequence or control character in any of its texts,
    and no line break in a file name."""
    fields = type(event).model_fields
    update = {
        name: None if name == "texts" else _clean(getattr(event, name), name in NAME_FIELDS)
        for name in fields
    }  # an edit's whole file texts: the diff shows the edit (ACP takes them off the event)
    if isinstance(event, FileEdited):
        update["diff"] = _diff(event.diff, event.path)
    return event.model_copy(update=update)
