"""Helpers to write K2 completions in tests, special tokens and all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def tool_call(name: str, index: int, arguments: dict[str, Any] | str) -> str:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return (
        f"<|tool_call_begin|>functions.{name}:{index}<|tool_call_argument_begin|>{raw}"
        "<|tool_call_end|>"
    )


def completion(reasoning: str, *calls: str, content: str = "") -> str:
    section = (
        f"<|tool_calls_section_begin|>{''.join(calls)}<|tool_calls_section_end|>" if calls else ""
    )
    return f"<think>{reasoning}</think>{content}{section}<|im_end|>"


def write_script(path: Path, *completions: str) -> Path:
    """A scripted backend's file: one ``{"completion": ...}`` line per model step."""
    path.write_text("".join(json.dumps({"completion": c}) + "\n" for c in completions))
    return path


SLEEP_THEN_ANSWER = (
    completion("Wait for it.", tool_call("bash", 0, {"command": "sleep 300"})),
    completion("Fine.", content="Stopped waiting."),
)
"""A command that runs for 5 minutes unless interrupted, then an answer to the next message."""
