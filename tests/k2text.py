"""Helpers to write K2 completions in tests, special tokens and all."""

from __future__ import annotations

import json
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
