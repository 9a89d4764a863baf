"""The conversation as the model layer sees it.

Messages follow the OpenAI chat shape because that is what K2's chat template and every
OpenAI-compatible server consume; ``to_openai`` produces exactly that dict. Tool-call arguments
stay the raw text the model wrote, so a conversation renders back byte for byte.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """One call the assistant made; ``id`` goes back verbatim as the result's ``tool_call_id``."""

    id: str
    name: str
    arguments: str
    """The arguments exactly as generated (normally a JSON object)."""


class Message(BaseModel):
    role: Role
    content: str = ""
    reasoning: str | None = None
    """Assistant only: the text between ``<think>`` and ``</think>``."""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """Assistant only."""
    tool_call_id: str | None = None
    """Tool only: the id of the call this message answers."""
    name: str | None = None
    """Tool only: the tool's name (K2's template uses it as the speaker of the result)."""

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-completions form, which is also what K2's chat template reads.

        Every assistant message with tool calls carries ``reasoning_content`` (empty when there was
        no reasoning): Moonshot-style servers reject the request otherwise.
        """
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.role == "assistant":
            if self.reasoning is not None or self.tool_calls:
                out["reasoning_content"] = self.reasoning or ""
            if self.tool_calls:
                out["tool_calls"] = [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in self.tool_calls
                ]
        elif self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
            if self.name:
                out["name"] = self.name
        return out

    @classmethod
    def from_openai(cls, data: dict[str, Any]) -> Message:
        """The inverse of :meth:`to_openai` (text parts are joined; object arguments dumped)."""
        content = data.get("content") or ""
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        calls = []
        for call in data.get("tool_calls") or []:
            function = call.get("function", {})
            arguments = function.get("arguments", "")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments, ensure_ascii=False)
            calls.append(
                ToolCall(id=call["id"], name=function.get("name", ""), arguments=arguments)
            )
        return cls(
            role=data["role"],
            content=content,
            reasoning=data.get("reasoning_content"),
            tool_calls=calls,
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
        )


class ToolSchema(BaseModel):
    """A tool the model may call, in the OpenAI function format."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }
