"""The scripted backend replays recorded completions through the real K2 parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from k2text import write_script

from ponder.model.backend import BackendError, ConfigurationError, open_backend
from ponder.model.deltas import ContentDelta, Finished, ReasoningDelta, ToolCallEnd
from ponder.model.options import GenerationSettings


def test_each_step_replays_the_next_completion(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.jsonl",
        "<think>look</think><|tool_calls_section_begin|><|tool_call_begin|>functions.bash:0"
        '<|tool_call_argument_begin|>{"command": "ls"}<|tool_call_end|><|tool_calls_section_end|>',
        "<think>done</think>All good.<|im_end|>",
    )
    backend = open_backend(f"scripted:{script}")
    first = list(backend.stream([], [], GenerationSettings()))
    second = list(backend.stream([], [], GenerationSettings()))

    assert "".join(d.text for d in first if isinstance(d, ReasoningDelta)) == "look"
    (end,) = [d for d in first if isinstance(d, ToolCallEnd)]
    assert end.call.arguments == {"command": "ls"}
    assert first[-1] == Finished("stop")
    assert "".join(d.text for d in second if isinstance(d, ContentDelta)) == "All good."
    # Streamed in small pieces, as a model would.
    assert len([d for d in second if isinstance(d, ReasoningDelta)]) > 1


def test_running_out_of_completions_is_a_clear_error(tmp_path: Path) -> None:
    backend = open_backend(f"scripted:{write_script(tmp_path / 's.jsonl', 'only one')}")
    list(backend.stream([], [], GenerationSettings()))
    with pytest.raises(BackendError, match="no completion left for step 2"):
        list(backend.stream([], [], GenerationSettings()))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"completion": "a"}\nnot json\n', r"s.jsonl:2: not JSON"),
        ('{"text": "a"}\n', r's.jsonl:1: expected {"completion": "<text>"}'),
        ("\n\n", "holds no completions"),
    ],
)
def test_bad_script_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "s.jsonl").write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        open_backend(f"scripted:{tmp_path / 's.jsonl'}")


def test_missing_file_and_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        open_backend(f"scripted:{tmp_path / 'nope.jsonl'}")
    with pytest.raises(ConfigurationError, match="unknown model scheme 'gpt'"):
        open_backend("gpt:4")
    with pytest.raises(ConfigurationError, match="is not SCHEME:TARGET"):
        open_backend("model.gguf")
