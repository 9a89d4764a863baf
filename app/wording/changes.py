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
    texts = [change.warning, change.note, "" if change.undoable else "undo cannot put it back"]
    mark = WARNING_MARK if change.warning else " "
    line = f"{mark} {safe_name(change.path)}{count}  {change.change}"
    text = "; ".join(t for t in texts if t)
    return f"{line}: {safe_text(text)}" if text else line


def needs_a_look(changes: Sequence[PathChange], warnings_only: bool = False) -> list[PathChange]:
    """What a person must not miss: warnings, and (unless ``warnings_only``) what the diff does
    not show."""
    return [c for c in changes if c.warning or not (c.shown or warnings_only)]


def changes_block(
    changes: Sequence[PathChange],
    heading: str,
    limit: int | None = SHOWN_AT_MOST,
    warnings_only: bool = False,
) -> str:
    """The changes a diff does not tell (not shown in it, or to look at before running
    anything), under ``heading``; empty when there are none."""
    wanted = needs_a_look(changes, warnings_only)
    if not wanted:
        return ""
    lines = [change_line(change) for change in wanted[:limit]]
    if limit is not None and len(wanted) > limit:
        lines.append(f"  ... and {len(wanted) - limit:,} more (ponder diff lists them all)")
    return heading + "\n" + "\n".join(lines)


def _names(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(safe_name(name) for name in names[:limit])
    return shown + (f" and {len(names) - limit:,} more" if len(names) > limit else "")


def describe_undo(undone: Undone) -> str:
    """What undo did: which step, what came back, what went, and what it could not put back."""
    lines = [f"undid {undone.undid} (back at checkpoint {undone.commit[:8]})"]
    if undone.restored:
        lines.append(f"  restored: {_names(undone.restored)}")
    if undone.removed:
        lines.append(f"  removed (the step had made them): {_names(undone.removed)}")
    if not (undone.restored or undone.removed):
        lines.append("  nothing could be put back")
    lines += [f"  not put back: {safe_name(name)}: {why}" for name, why in undone.kept[:10]]
    if len(undone.kept) > 10:
        lines.append(f"  not put back: {len(undone.kept) - 10} more")
    return "\n".join(lines)


def changes_summary(changes: Sequence[PathChange]) -> str:
    """``changed 3 paths: a.py, b.py, c.py`` and what to look at; empty when none."""
    if not changes:
        return ""
    ordered = sorted(changes, key=lambda c: c.path)
    names = ", ".join(safe_name(c.path) for c in ordered[:SHOWN_AT_MOST])
    more = f" and {len(ordered) - SHOWN_AT_MOST:,} more" if len(ordered) > SHOWN_AT_MOST else ""
    paths = f"{len(ordered):,} path{'s' if len(ordered) != 1 else ''}"
    head = f"changed {paths}: {names}{more} (ponder diff shows them)"
    block = changes_block(changes, OUTSIDE_HEADING)
    return head + (f"\n{block}" if block else "")
