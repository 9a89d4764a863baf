"""The tools the model gets (DESIGN.md, "Tools the model gets")."""

from __future__ import annotations

from ponder.runtime.tools.base import Tool
from ponder.runtime.tools.bash import BashTool
from ponder.runtime.tools.editor import StrReplaceTool, ViewTool
from ponder.runtime.tools.submit import SubmitTool


def default_tools() -> list[Tool]:
    return [BashTool(), ViewTool(), StrReplaceTool(), SubmitTool()]
