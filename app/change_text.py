"""How changed paths are worded for a person: one line each, the ones to look at first.

Every frontend (line mode, the TUI, ``ponder diff``, ``/diff``, ``/undo``, the end of a
headless run) uses these, so a change that must stand out reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from ponder.runtime.checkpoints import Undone
from ponder.runtime.events import Checkpointed, Event, PathChange
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


class ChangeTally:
    """The paths a run changed, from its checkpoints, for the summary at its end."""

    def __init__(self) -> None:
        self.changes: dict[str, PathChange] = {}

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Checkpointed):
            return
        for change in event.changes:
            earlier = self.changes.get(change.path)
            if earlier is not None and earlier.change == "added":
                if change.change == "deleted":  # made and removed within the run
                    del self.changes[change.path]
                    continue
                change = change.model_copy(update={"change": "added", "undoable": True})
            self.changes[change.path] = change

    def summary(self) -> str:
        """``changed 3 paths: a.py, b.py, c.py`` and what to look at; empty when none."""
        changes = sorted(self.changes.values(), key=lambda c: c.path)
        if not changes:
            return ""
        names = ", ".join(safe_name(c.path) for c in changes[:SHOWN_AT_MOST])
        more = f" and {len(changes) - SHOWN_AT_MOST:,} more" if len(changes) > SHOWN_AT_MOST else ""
        head = f"changed {len(changes):,} path{'s' if len(changes) > 1 else ''}: {names}{more}"
        block = changes_block(changes, OUTSIDE_HEADING)
        return head + (f"\n{block}" if block else "")
