"""The ``bash`` tool: one command in the sandbox, output streamed live, exit code reported."""

from __future__ import annotations

import re
from typing import Any

from ponder.model.messages import ToolSchema
from ponder.runtime.events import ToolOutput
from ponder.runtime.tool_events import ToolKind
from ponder.runtime.tools.base import (
    BaseTool,
    Preview,
    ToolContext,
    ToolInputError,
    ToolOutcome,
    require_str,
)
from ponder.sandbox.base import ExecResult, Sandbox

DEFAULT_TIMEOUT_S = 120
MAX_TIMEOUT_S = 600

SCHEMA = ToolSchema(
    name="bash",
    description=(
        "Run a bash command in the sandbox and return its output and exit code. The working "
        "directory and the workspace persist between calls; stdin is closed, so interactive "
        "programs get end-of-file. Long output is shortened to its beginning and end. Run long "
        "jobs in the background with output redirected to a file (cmd > log 2>&1 &); what they "
        "print after the command ends is not shown."
    ),
    parameters={
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The bash command to run."},
            "timeout": {
                "type": "integer",
                "description": (
                    f"Seconds before the command is stopped (default {DEFAULT_TIMEOUT_S}, "
                    f"at most {MAX_TIMEOUT_S})."
                ),
            },
        },
        "required": ["command"],
    },
)


READ_ONLY_GIT = re.compile(r"\.git\b[^\n]*Read-only file system")
READ_ONLY_GIT_NOTE = (
    "[the repository's .git is read-only in this sandbox: git can read it (status, diff, log, "
    "show, blame) but not change it (no add, commit, checkout, stash or reset); leave the "
    "changes in the files: ponder keeps checkpoints of them, and the user commits]"
)


def format_result(result: ExecResult, timeout: float) -> str:
    """The command's output for the model, then how it ended."""
    text = result.output.rstrip("\n") if result.output.strip() else "(no output)"
    if result.notice:
        text += f"\n[{result.notice}]"
    if READ_ONLY_GIT.search(result.output):
        text += f"\n{READ_ONLY_GIT_NOTE}"
    if result.interrupted:
        return f"{text}\n[the user interrupted the command]"
    if result.timed_out:
        return (
            f"{text}\n[the command was stopped after {timeout:g} s: it may have been waiting for "
            "input or running forever. Run long jobs in the background with output redirected, "
            "or pass a larger timeout.]"
        )
    return f"{text}\n[exit code {result.exit_code}]"


class BashTool(BaseTool):
    schema = SCHEMA
    kind: ToolKind = "execute"

    def summary(self, arguments: dict[str, Any]) -> str:
        return f"$ {arguments.get('command', '')}"

    def preview(self, arguments: dict[str, Any], sandbox: Sandbox) -> Preview:
        """The command itself (the approval rules read it too)."""
        return Preview(str(arguments.get("command", "")))

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        command = require_str(arguments, "command")
        if "\0" in command:
            raise ToolInputError("the command holds a NUL character, which bash cannot take")
        timeout = arguments.get("timeout", DEFAULT_TIMEOUT_S)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ToolInputError("parameter `timeout` must be a positive number of seconds")
        timeout = min(float(timeout), MAX_TIMEOUT_S)

        def forward(text: str) -> None:
            context.emit(ToolOutput(call_id=context.call_id, text=text))

        result = context.sandbox.exec(
            command, timeout=timeout, on_output=forward, cancel=context.cancel
        )
        return ToolOutcome(
            text=format_result(result, timeout),
            ok=result.exit_code == 0 and not result.timed_out,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            interrupted=result.interrupted,
            notice=result.notice,
        )
