"""The K2 output parser: what the model writes becomes reasoning, content and tool calls."""

from __future__ import annotations

import random

import pytest

from ponder.model.deltas import (
    CallDropped,
    ContentDelta,
    ReasoningDelta,
    ToolCallEnd,
)
from ponder.model.k2_parser import K2OutputParser, ParsedCompletion, parse_completion

SECTION = "<|tool_calls_section_begin|>"
SECTION_END = "<|tool_calls_section_end|>"
CALL = "<|tool_call_begin|>"
ARGS = "<|tool_call_argument_begin|>"
CALL_END = "<|tool_call_end|>"
END = "<|im_end|>"


def call(call_id: str, arguments: str) -> str:
    return f"{CALL}{call_id}{ARGS}{arguments}{CALL_END}"


SAMPLES = {
    "answer only": "<think>Simple question.</think>The answer is 4.<|im_end|>",
    "two calls": (
        f"<think>Look first, then run.</think>{SECTION}"
        + call("functions.view:0", '{"path": "a.py"}')
        + call("functions.bash:1", '{"command": "ls -la | head"}')
        + f"{SECTION_END}{END}"
    ),
    "content before calls": (
        f"<think>r</think>I will check.{SECTION}"
        + call("functions.bash:2", '{"command": "echo <tag> &lt; ü"}')
        + f"{SECTION_END}{END}"
    ),
    "section inside reasoning": f"<think>I should look{SECTION}"
    + call("functions.view:0", '{"path": "."}')
    + SECTION_END,
    "bare call, no section, no ends": "<think>go</think>"
    + f'{CALL}functions.bash:0{ARGS}{{"command": "ls"}}',
    "singular section tokens": (
        "<think>x</think><|tool_call_section_begin|>"
        + call("bash:3", '{"command": "pwd"}')
        + "<|tool_call_section_end|>"
    ),
    "text after the section": f"<think>a</think>{SECTION}"
    + call("functions.bash:0", "{}")
    + f"{SECTION_END} and more text{END}ignored after the end",
    "no think": "Plain content with a < sign and <b>html</b>.",
    "unicode": "<think>Überlegung: 日本語 🙂</think>Antwort: café ☕<|im_end|>",
    "noise in the section": (
        f"<think>r</think>Checking.{SECTION} spurious noise \n"
        + call(" functions.view:0 ", ' {"path": "a"} \n')
        + "\n  \n"
        + call("functions.bash:1", '{"command": "ls"}')
        + f" trailing {SECTION_END}{END}"
    ),
    "interrupted call": (
        f'{SECTION}{CALL}functions.view:0{ARGS}{{"path": "a'
        + call("functions.bash:1", '{"command": "ls"}')
        + SECTION_END
    ),
    "call without its end": (
        f'{SECTION}{CALL}functions.view:0{ARGS}{{"path": "a"}}'
        + call("functions.bash:1", '{"command": "ls"}')
        + SECTION_END
    ),
    "calls without ends in the reasoning": (
        f'<think>Look first.{CALL}functions.view:0{ARGS}{{"path": "a"}}'
        f'{CALL}functions.bash:1{ARGS}{{"command": "ls"}}'
    ),
    "whitespace before think": "\n \n<think>reasoning</think>answer",
    "call without an index": SECTION + call("functions.bash", '{"command": "ls"}') + SECTION_END,
}


def feed_in_pieces(text: str, sizes: list[int]) -> tuple[ParsedCompletion, list[object]]:
    parser = K2OutputParser()
    deltas: list[object] = []
    position = 0
    index = 0
    while position < len(text):
        size = sizes[index % len(sizes)]
        deltas += parser.feed(text[position : position + size])
        position += size
        index += 1
    deltas += parser.close()
    return parser.result, deltas


def test_reasoning_and_answer_are_split() -> None:
    result = parse_completion(SAMPLES["answer only"])
    assert result.reasoning == "Simple question."
    assert result.content == "The answer is 4."
    assert result.tool_calls == []


def test_calls_keep_their_ids_names_and_arguments() -> None:
    result = parse_completion(SAMPLES["two calls"])
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("functions.view:0", "view", {"path": "a.py"}),
        ("functions.bash:1", "bash", {"command": "ls -la | head"}),
    ]
    assert result.content == ""


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_any_chunking_gives_the_same_result(name: str) -> None:
    text = SAMPLES[name]
    whole = parse_completion(text)
    rng = random.Random(name)
    chunkings = [[1], [2], [3], [7], [len(text)]]
    chunkings += [[rng.randint(1, 12) for _ in range(50)] for _ in range(20)]
    for sizes in chunkings:
        result, deltas = feed_in_pieces(text, sizes)
        assert result == whole, sizes
        # The streamed deltas add up to the same text.
        assert "".join(d.text for d in deltas if isinstance(d, ReasoningDelta)) == whole.reasoning
        assert "".join(d.text for d in deltas if isinstance(d, ContentDelta)) == whole.content
        ends = [d.call for d in deltas if isinstance(d, ToolCallEnd)]
        assert ends == whole.tool_calls


def test_tool_section_inside_reasoning_ends_the_reasoning() -> None:
    result = parse_completion(SAMPLES["section inside reasoning"])
    assert result.reasoning == "I should look"
    assert [c.name for c in result.tool_calls] == ["view"]


def test_missing_end_markers_still_give_the_call() -> None:
    result = parse_completion(SAMPLES["bare call, no section, no ends"])
    assert result.reasoning == "go"
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("bash", {"command": "ls"})]


def test_singular_section_tokens_and_ids_without_prefix() -> None:
    result = parse_completion(SAMPLES["singular section tokens"])
    assert [(c.id, c.name) for c in result.tool_calls] == [("bash:3", "bash")]


def test_text_after_the_section_is_not_content_but_later_calls_are_calls() -> None:
    # vLLM and SGLang agree: content is what comes before the tool section.
    result = parse_completion(SAMPLES["text after the section"])
    assert result.content == ""
    assert result.tool_calls[0].arguments == {}
    later = parse_completion(
        f"a{SECTION}{call('functions.view:0', '{}')}{SECTION_END} b "
        f"{SECTION}{call('functions.bash:1', '{}')}{SECTION_END}"
    )
    assert later.content == "a"
    assert [c.name for c in later.tool_calls] == ["view", "bash"]


def test_output_without_think_is_content() -> None:
    result = parse_completion(SAMPLES["no think"])
    assert result.reasoning == ""
    assert result.content == SAMPLES["no think"]


def test_noise_and_whitespace_in_the_section_are_not_content() -> None:
    result = parse_completion(SAMPLES["noise in the section"])
    assert result.content == "Checking."
    assert [(c.id, c.arguments, c.raw_arguments) for c in result.tool_calls] == [
        ("functions.view:0", {"path": "a"}, '{"path": "a"}'),
        ("functions.bash:1", {"command": "ls"}, '{"command": "ls"}'),
    ]


def test_a_call_cut_off_by_another_is_dropped_and_said() -> None:
    result = parse_completion(SAMPLES["interrupted call"])
    assert [c.name for c in result.tool_calls] == ["bash"]
    assert result.dropped == [CallDropped("functions.view:0", "another call began before it ended")]


@pytest.mark.parametrize("sample", ["call without its end", "calls without ends in the reasoning"])
def test_a_whole_call_without_its_end_marker_still_runs(sample: str) -> None:
    """Issue 24, 7: arguments already whole, then the next call's beginning: both calls run,
    as llama.cpp's Kimi K2 parser has them."""
    result = parse_completion(SAMPLES[sample])
    assert [(c.id, c.arguments) for c in result.tool_calls] == [
        ("functions.view:0", {"path": "a"}),
        ("functions.bash:1", {"command": "ls"}),
    ]
    assert result.dropped == []


def test_whitespace_before_think_leaves_the_reasoning_reasoning() -> None:
    result = parse_completion(SAMPLES["whitespace before think"])
    assert (result.reasoning, result.content) == ("reasoning", "answer")
    assert parse_completion("  \n").content == ""
    assert parse_completion(" hi <think>x").content == " hi x"  # not at the start: text


def test_a_call_without_an_index_is_reported() -> None:
    result = parse_completion(SAMPLES["call without an index"])
    assert result.tool_calls == []
    assert result.dropped == [
        CallDropped("functions.bash", "its id 'functions.bash' is not NAME:N")
    ]


def test_lone_surrogates_never_reach_the_result() -> None:
    text = "<think>think \ud800</think>say \udfff" + SECTION
    text += call("functions.bash:0", '{"command": "echo \\ud800"}') + SECTION_END
    result = parse_completion(text)
    assert (result.reasoning, result.content) == ("think \ufffd", "say \ufffd")
    (bad,) = result.tool_calls
    assert bad.arguments is None
    assert bad.error is not None
    assert "surrogate" in bad.error


def test_arguments_nested_100000_deep_are_an_error() -> None:
    deep = '{"command": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (parsed,) = parse_completion(SECTION + call("functions.bash:0", deep)).tool_calls
    assert parsed.arguments is None
    assert parsed.error == "arguments nest deeper than 200 levels"


def test_malformed_arguments_become_an_error_not_an_exception() -> None:
    text = f"<think>t</think>{SECTION}" + call("functions.bash:0", '{"command": "ls"') + SECTION_END
    (parsed,) = parse_completion(text).tool_calls
    assert parsed.arguments is None
    assert parsed.raw_arguments == '{"command": "ls"'
    assert parsed.error is not None
    assert "not valid JSON" in parsed.error


def test_arguments_that_are_not_an_object_are_an_error() -> None:
    (parsed,) = parse_completion(SECTION + call("functions.bash:0", '["ls"]')).tool_calls
    assert parsed.arguments is None
    assert parsed.error == "arguments must be a JSON object, got list"


def test_a_call_without_an_index_is_not_run() -> None:
    text = SECTION + call("functions.bash", "{}") + call("functions.view:1", "{}") + SECTION_END
    result = parse_completion(text)
    assert [c.id for c in result.tool_calls] == ["functions.view:1"]


def test_dotted_and_dashed_names_are_kept_whole() -> None:
    text = SECTION + call("functions.a.b:0", "{}") + call("my-tool:1", "{}")
    assert [c.name for c in parse_completion(text).tool_calls] == ["a.b", "my-tool"]


def test_stray_markers_are_dropped_from_the_text() -> None:
    text = f"<think>a{ARGS}b</think>c{SECTION_END}d{CALL_END}e</think>f"
    result = parse_completion(text)
    assert result.reasoning == "ab"
    assert result.content == "cdef"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_bytes_in_any_chunking_give_the_same_result(name: str) -> None:
    data = SAMPLES[name].encode()
    whole = parse_completion(SAMPLES[name])
    for size in (1, 2, 3, 5):
        parser = K2OutputParser()
        for start in range(0, len(data), size):
            list(parser.feed_bytes(data[start : start + size]))
        list(parser.close())
        assert parser.result == whole, size
