"""The prompt is rendered byte for byte as K2's official chat template renders it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from ponder.model.chat_template import ChatTemplate
from ponder.model.messages import Message, ToolCall, ToolSchema

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "bash",
            "description": "Run a command <safely> & report",
            "parameters": {"type": "object", "properties": {"command": {"type": "string"}}},
        },
    }
]


def call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


CONVERSATIONS: dict[str, list[dict[str, Any]]] = {
    "no system": [{"role": "user", "content": "Hi"}],
    "system": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "tool loop with reasoning": [
        {"role": "user", "content": "List files"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "I should run ls.",
            "tool_calls": [call("functions.bash:0", "bash", '{"command": "ls"}')],
        },
        {"role": "tool", "tool_call_id": "functions.bash:0", "name": "bash", "content": "a.py\n"},
    ],
    "parallel calls, object arguments": [
        {"role": "user", "content": "Two things"},
        {
            "role": "assistant",
            "content": "Doing both.",
            "reasoning_content": "Both at once.",
            "tool_calls": [
                call("functions.bash:0", "bash", {"command": "pwd"}),
                call("functions.view:1", "view", {"path": "ü.py"}),
            ],
        },
        {"role": "tool", "tool_call_id": "functions.bash:0", "content": "/w"},
        {"role": "tool", "tool_call_id": "functions.view:1", "content": "x = '日本'"},
    ],
    "multi-turn drops old reasoning": [
        {"role": "user", "content": "First"},
        {"role": "assistant", "content": "Done one.", "reasoning_content": "old thoughts"},
        {"role": "user", "content": "Second"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "new thoughts",
            "tool_calls": [call("functions.bash:0", "bash", "{}")],
        },
        {"role": "tool", "tool_call_id": "functions.bash:0", "content": "ok"},
    ],
    "content as text parts": [
        {
            "role": "user",
            "content": [{"type": "text", "text": "part one, "}, {"type": "text", "text": "two"}],
        }
    ],
}


def peer(messages: list[dict[str, Any]], tools: Any, generation_prompt: bool) -> str:
    """llama-cpp-python's formatter, which follows Transformers' chat-template environment."""
    formatter = Jinja2ChatFormatter(
        ChatTemplate.official().source,
        eos_token="[EOS]",
        bos_token="[BOS]",
        add_generation_prompt=generation_prompt,
    )
    return formatter(messages=messages, tools=tools).prompt


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("with_tools", [True, False])
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_byte_identical_to_the_reference_renderer(
    name: str, with_tools: bool, generation_prompt: bool
) -> None:
    messages = CONVERSATIONS[name]
    tools = TOOLS if with_tools else None
    ours = ChatTemplate.official().render(messages, tools, add_generation_prompt=generation_prompt)
    assert ours == peer(messages, tools, generation_prompt)


def test_the_layout_of_a_tool_loop() -> None:
    text = ChatTemplate.official().render(CONVERSATIONS["tool loop with reasoning"], TOOLS)
    assert text == (
        "<|im_system|>tool_declare<|im_middle|>"
        + json.dumps(TOOLS, ensure_ascii=False)
        + "<|im_end|>"
        "<|im_system|>system<|im_middle|>"
        "You are Kimi, an AI assistant created by Moonshot AI.<|im_end|>"
        "<|im_user|>user<|im_middle|>List files<|im_end|>"
        "<|im_assistant|>assistant<|im_middle|><think>I should run ls.</think>"
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.bash:0<|tool_call_argument_begin|>"
        '{"command": "ls"}<|tool_call_end|><|tool_calls_section_end|><|im_end|>'
        "<|im_system|>bash<|im_middle|>## Return of functions.bash:0\na.py\n<|im_end|>"
        "<|im_assistant|>assistant<|im_middle|>"
    )


def test_reasoning_before_the_last_answer_is_dropped() -> None:
    text = ChatTemplate.official().render(CONVERSATIONS["multi-turn drops old reasoning"])
    assert "old thoughts" not in text
    assert "<think></think>Done one." in text
    assert "<think>new thoughts</think>" in text


def test_unicode_and_markup_in_tools_are_not_escaped() -> None:
    text = ChatTemplate.official().render([{"role": "user", "content": "ü"}], TOOLS)
    assert "<safely> & report" in text
    assert "\\u" not in text


def test_our_message_types_render_like_plain_dicts() -> None:
    ours = [
        Message(role="user", content="List files"),
        Message(
            role="assistant",
            reasoning="I should run ls.",
            tool_calls=[
                ToolCall(id="functions.bash:0", name="bash", arguments='{"command": "ls"}')
            ],
        ),
        Message(role="tool", content="a.py\n", tool_call_id="functions.bash:0", name="bash"),
    ]
    schema = ToolSchema(
        name="bash",
        description="Run a command <safely> & report",
        parameters={"type": "object", "properties": {"command": {"type": "string"}}},
    )
    template = ChatTemplate.official()
    assert template.render(ours, [schema]) == template.render(
        CONVERSATIONS["tool loop with reasoning"], TOOLS
    )
