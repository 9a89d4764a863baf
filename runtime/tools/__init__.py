"""The tools the model gets (docs/architecture.md, "Tools")."""

from __future__ import annotations

from ponder.runtime.tools.base import Tool
from ponder.runtime.tools.bash import BashTool
from ponder.runtime.tools.editor import (
    CreateFileTool,
    Editor,
    InsertTool,
    StrReplaceTool,
    UndoEditTool,
)
from ponder.runtime.tools.plan import PlanTool
from ponder.runtime.tools.submit import SubmitTool
from ponder.runtime.tools.view import ViewTool


def default_tools() -> list[Tool]:
    """K2's minimal tool set, with one shared undo history for the edit tools."""
    editor = Editor()
    return [
        BashTool(),
        ViewTool(),
        CreateFileTool(editor),
        StrReplaceTool(editor),
        InsertTool(editor),
        UndoEditTool(editor),
        PlanTool(),
        SubmitTool(),
    ]
