"""An MCP server's tool as one of the model's tools (``mcp__<server>__<tool>``).

It runs on the host through the session's :class:`~ponder.runtime.mcp_hub.McpHub`, never in
the sandbox; its result is cut and cleaned like a command's output before the model sees it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ponder.model.messages import ToolSchema
from ponder.runtime.mcp_client import tool_name
from ponder.runtime.mcp_hub import McpCallError, McpCallInterrupted, McpHub
from ponder.runtime.tool_events import ToolKind, ToolOutput
from ponder.runtime.tools.base import BaseTool, Preview, ToolContext, ToolOutcome
from ponder.sandbox.base import Sandbox
from ponder.sandbox.output import OutputCapture

if TYPE_CHECKING:
    from mcp_types import Tool as McpToolInfo

INTERRUPTED = "The user interrupted this call."


class McpTool(BaseTool):
    """Runs on the user's machine: every call is asked for unless a rule allows it."""

    kind: ToolKind = "host"

    def __init__(self, hub: McpHub, server: str, info: McpToolInfo) -> None:
        self.hub = hub
        self.server = server
        self.tool = info.name
        parameters = info.input_schema or {"type": "object", "properties": {}}
        description = (info.description or info.title or info.name).strip()
        self.schema = ToolSchema(
            name=tool_name(server, info.name),
            description=f"{description}\n(From the MCP server `{server}`.)",
            parameters=parameters,
        )

    def summary(self, arguments: dict[str, Any]) -> str:
        shown = json.dumps(arguments, ensure_ascii=False)
        return shown if len(shown) <= 200 else shown[:200] + "…"

    def preview(self, arguments: dict[str, Any], sandbox: Sandbox) -> Preview:
        shown = json.dumps(arguments, ensure_ascii=False, indent=2)
        return Preview(f"{self.server}.{self.tool} on your machine, with\n{shown[:2000]}")

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        try:
            result = self.hub.call(
                self.server, self.tool, arguments, context.cancel, on_progress=_shown(context)
            )
        except McpCallInterrupted:
            return ToolOutcome(INTERRUPTED, ok=False, interrupted=True)
        except McpCallError as error:
            return ToolOutcome(f"Error: {error}", ok=False)
        capture = OutputCapture()
        capture.add(result.text.encode("utf-8", errors="replace"))
        text = capture.text()
        capture.close()
        return ToolOutcome(f"Error: {text}" if result.is_error else text, ok=not result.is_error)


def _shown(context: ToolContext) -> Callable[[str], None]:
    """A server's progress notes, shown as the call's live output."""
    return lambda note: context.emit(ToolOutput(call_id=context.call_id, text=f"{note}\n"))


def mcp_tools(hub: McpHub) -> list[McpTool]:
    """The tools of every server that started."""
    return [
        McpTool(hub, name, info)
        for name, state in hub.servers.items()
        if state.state == "ready"
        for info in state.tools
    ]
