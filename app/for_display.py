"""Events (approval requests too) made safe to show: every string through :func:`safe_text`.

Each frontend passes what it is about to show through here once, where it takes it in (the line
printer, the TUI's queue, export, the answer of ``-p``), so no path that prints a run can forget
the sanitizer. The events themselves, in session files and ``--json``, keep the exact text.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from ponder.sandbox.safe_text import safe_text

E = TypeVar("E", bound=BaseModel)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    return value


def for_display(event: E) -> E:
    """A copy of ``event`` with no escape sequence or control character in any of its texts."""
    fields = type(event).model_fields
    return event.model_copy(update={name: _clean(getattr(event, name)) for name in fields})
