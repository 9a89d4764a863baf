"""How changed paths are worded for a person: one line each, the ones to look at first.

Every frontend (line mode, the TUI, ``ponder diff``, ``/diff``, ``/undo``, the end of a
headless run) uses these, so a change that must stand out reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from ponder.runtime.checkpoints import Undone
from ponder.runtime.events import PathChange
from ponder.sandbox.safe_text import safe_name, safe_text

WARNING_MARK = "⚠"
SHOWN_AT_MOST = 40
OUTSIDE_HEADING = (
    "Also changed (look at these: the diff does not show them, or something runs them):"
)


def change_line(change: PathChange) -> str:
    """``⚠ src/.git  added: a git repository was created here ...``"""
    count = f" ({change.count:,} files)" if change.count > 1 else ""
    text = change.warning or change.note
    mark = WARNING_MARK if change.warning else " "
    line = f"{mark} {safe_name(change.path)}{count}  {change.change}"
    return f"{line}: {safe_text(text)}" if text else line


def needs_a_look(changes: Sequence[PathChange]) -> list[PathChange]:
    """What a person must not miss: warnings, and what the diff does not show."""
    return [c for c in changes if c.warning or not c.shown]


def changes_block(
    changes: Sequence[PathChange], heading: str, limit: int | None = SHOWN_AT_MOST
) -> str:
    """The changes a diff does not tell (not shown in it, or to look at before running
    anything), under ``heading``; empty when there are none."""
    wanted = needs_a_look(changes)
    if not wanted:
        return ""
    lines = [change_line(change) for change in wanted[:limit]]
    if limit is not None and len(wanted) > limit:
        lines.append(f"  ... and {len(wanted) - limit:,} more (ponder diff lists them all)")
    return heading + "\n" + "\n".join(lines)


def describe_undo(undone: Undone) -> str:
    files = ", ".join(safe_name(name) for name in undone.restored[:20]) or "no files"
    if len(undone.restored) > 20:
        files += f" and {len(undone.restored) - 20} more"
    text = f"undone: back at checkpoint {undone.commit[:8]} ({files} restored)"
    if undone.kept:
        kept = "; ".join(f"{safe_name(name)}: {why}" for name, why in undone.kept[:10])
        more = f" and {len(undone.kept) - 10} more" if len(undone.kept) > 10 else ""
        text += f"\nnot put back: {kept}{more}"
    return text
