"""The llama.cpp backend on tiny GGUFs, with real llama.cpp through llama-cpp-python."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from conftest import PONDER
from tiny_models import REASONING, SCRIPT, SCRIPT_TEXT, write_tiny_k2

from ponder.model.backend import BackendError, ConfigurationError, open_backend
from ponder.model.deltas import Delta, Finished, ReasoningDelta, ToolCallEnd, Usage
from ponder.model.k2_parser import parse_completion
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.messages import Message, ToolCall
from ponder.model.options import GenerationSettings, LlamaOptions

SETTINGS = GenerationSettings()


def one_step(backend: LlamaCppBackend, messages: list[Message]) -> list[Delta]:
    return list(backend.stream(messages, [], SETTINGS))


def usage(deltas: list[Delta]) -> Usage:
    (found,) = [d for d in deltas if isinstance(d, Usage)]
    return found


def test_streams_reasoning_content_and_a_tool_call(tiny_k2: Path) -> None:
    backend = LlamaCppBackend(tiny_k2, LlamaOptions(context_size=1024))
    deltas = one_step(backend, [Message(role="user", content="list the files")])
    expected = parse_completion(SCRIPT_TEXT)
    (end,) = [d for d in deltas if isinstance(d, ToolCallEnd)]
    # Every special token survived detokenization, or the parser could not have split these.
    assert end.call == expected.tool_calls[0]
    assert end.call.arguments == {"command": "ls"}
    assert deltas[-1] == Finished("stop")
    counts = usage(deltas)
    assert counts.completion_tokens == len(SCRIPT)
    assert counts.cached_tokens == 0
    assert counts.prefill_tokens_per_s
    assert counts.decode_tokens_per_s
    backend.close()


def test_the_next_step_prefills_only_the_new_tokens(tiny_k2: Path) -> None:
    backend = LlamaCppBackend(tiny_k2, LlamaOptions(context_size=2048))
    messages = [Message(role="user", content="list the files")]
    first = usage(one_step(backend, messages))
    messages += [
        Message(
            role="assistant",
            reasoning=REASONING,
            content="Looking.",
            tool_calls=[
                ToolCall(id="functions.bash:0", name="bash", arguments='{"command": "ls"}')
            ],
        ),
        Message(role="tool", tool_call_id="functions.bash:0", name="bash", content="a.py\n"),
    ]
    second = usage(one_step(backend, messages))
    assert second.prompt_tokens > first.prompt_tokens
    # The whole first prompt (and more) came from the KV cache.
    assert second.cached_tokens >= first.prompt_tokens
    assert second.prompt_tokens - second.cached_tokens < second.prompt_tokens - first.prompt_tokens
    backend.close()


def test_an_interrupt_stops_prefill_and_decode_and_the_next_step_is_whole(
    tiny_k2: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    backend = LlamaCppBackend(tiny_k2, LlamaOptions(context_size=2048, n_batch=64))
    messages = [Message(role="user", content="list the files " * 100)]  # several micro-batches
    cancel = threading.Event()
    cancel.set()  # llama.cpp's abort callback stops the prefill
    prefill = list(backend.stream(messages, [], SETTINGS, cancel))
    assert prefill[-1] == Finished("cancelled")
    assert usage(prefill).completion_tokens == 0
    cancel = threading.Event()
    decode: list[Delta] = []
    for delta in backend.stream(messages, [], SETTINGS, cancel):
        decode.append(delta)
        if isinstance(delta, ReasoningDelta):
            cancel.set()  # as Esc does, from another thread, while tokens come
    assert decode[-1] == Finished("cancelled")
    assert 0 < usage(decode).completion_tokens < len(SCRIPT)
    # Whatever the aborted decodes left in the KV cache does not leak into the next step.
    after = one_step(backend, messages)
    (end,) = [d for d in after if isinstance(d, ToolCallEnd)]
    assert end.call == parse_completion(SCRIPT_TEXT).tool_calls[0]
    assert usage(after).completion_tokens == len(SCRIPT)
    backend.close()
    # llama.cpp logs an aborted decode as an error; none of it reaches the terminal.
    assert capfd.readouterr().err == ""


class SignalInsideTheDecode(threading.Event):
    """Raises SystemExit the first time llama.cpp's abort callback asks it: what happens when
    SIGTERM's handler (ponder's raises SystemExit) runs while llama.cpp is decoding, since the
    handler runs wherever Python code runs next. A real signal cannot be aimed at that moment."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def is_set(self) -> bool:
        self.asked += 1
        if self.asked == 1:
            raise SystemExit(143)
        return super().is_set()


def test_a_signal_during_the_decode_ends_the_step_quietly(
    tiny_k2: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    backend = LlamaCppBackend(tiny_k2, LlamaOptions(context_size=2048))
    messages = [Message(role="user", content="list the files")]
    with pytest.raises(SystemExit) as stopped:
        list(backend.stream(messages, [], SETTINGS, SignalInsideTheDecode()))
    assert stopped.value.code == 143  # raised again once the decode stopped, so ponder exits
    assert capfd.readouterr().err == ""  # no traceback printed by ctypes, no llama.cpp error
    after = one_step(backend, messages)
    assert after[-1] == Finished("stop")
    backend.close()


@pytest.mark.parametrize(
    ("options", "blocks"),
    [(LlamaOptions(cpu_moe=True), {1, 2}), (LlamaOptions(n_cpu_moe=2), {1})],
)
def test_expert_placement_is_applied_and_confirmed_by_the_load_log(
    tiny_k2: Path, options: LlamaOptions, blocks: set[int]
) -> None:
    backend = LlamaCppBackend(tiny_k2, options)
    expected = {
        f"blk.{b}.ffn_{kind}_exps.weight" for b in blocks for kind in ("gate", "up", "down")
    }
    assert set(backend.placed) == expected
    assert all(buffer.startswith("CPU") for buffer in backend.placed.values())
    assert any("buffer type overridden" in line for line in backend.load_log)
    backend.close()


def test_an_unknown_buffer_type_is_refused(tiny_k2: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown buffer type 'CUDA7'"):
        LlamaCppBackend(tiny_k2, LlamaOptions(override_tensor=("exps=CUDA7",)))


def test_a_prompt_longer_than_the_context_fails_before_any_work(tiny_k2: Path) -> None:
    backend = LlamaCppBackend(tiny_k2, LlamaOptions(context_size=256))
    with pytest.raises(BackendError, match=r"the prompt is \d+ tokens but the context holds 256"):
        one_step(backend, [Message(role="user", content="x " * 400)])
    backend.close()


def test_a_model_without_a_template_gets_the_official_one(tiny_llama: Path) -> None:
    backend = LlamaCppBackend(tiny_llama, LlamaOptions(context_size=512))
    assert "official" in backend.template.origin
    # Greedy, so the random weights cannot sometimes sample an end token early.
    greedy = GenerationSettings(temperature=0, max_new_tokens=8)
    deltas = list(backend.stream([Message(role="user", content="hi")], [], greedy))
    assert usage(deltas).completion_tokens == 8
    assert deltas[-1] == Finished("length")
    backend.close()


def test_bad_model_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="model file not found"):
        open_backend(f"llamacpp:{tmp_path / 'missing.gguf'}")
    text = tmp_path / "notes.gguf"
    text.write_text("definitely not a model")
    with pytest.raises(ConfigurationError, match="is not a GGUF file"):
        open_backend(f"llamacpp:{text}")
    whole = write_tiny_k2(tmp_path / "whole.gguf")
    cut = tmp_path / "cut.gguf"
    for keep in (0.3, 0.95):  # in the tensor table, then in the weights
        cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * keep)])
        with pytest.raises(ConfigurationError, match="truncated or corrupt"):
            open_backend(f"llamacpp:{cut}")
    bare = write_tiny_k2(tmp_path / "bare.gguf", with_tokenizer=False)
    with pytest.raises(ConfigurationError, match="has no tokenizer"):
        open_backend(f"llamacpp:{bare}")


def test_a_missing_model_is_a_usage_error_on_the_command_line(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    result = subprocess.run(
        [PONDER, "--model", f"llamacpp:{tmp_path / 'nope.gguf'}", "--plain", "hi"],
        capture_output=True,
        text=True,
        env=user_env,
        check=False,
    )
    assert result.returncode == 2
    assert "model file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_override_that_matches_nothing_is_refused(tiny_k2: Path) -> None:
    with pytest.raises(BackendError, match="match no tensor"):
        LlamaCppBackend(tiny_k2, LlamaOptions(override_tensor=(r"nothing\.like\.this=CPU",)))


def test_a_tensor_the_load_log_does_not_confirm_is_reported(tiny_k2: Path) -> None:
    """The check behind the load: llama.cpp cannot be made to misplace a tensor on purpose, so
    this feeds it the log of a load that left one expert tensor where it was."""
    from ponder.model.gguf_file import read_gguf
    from ponder.model.offload import cpu_moe_overrides
    from ponder.model.placement import placement_problem

    model = read_gguf(tiny_k2)
    placed = {f"blk.{b}.ffn_{k}_exps.weight": "CPU_REPACK" for b in (1, 2) for k in ("gate", "up")}
    placed["blk.1.ffn_down_exps.weight"] = "CPU"
    problem = placement_problem(model, cpu_moe_overrides(), placed)
    assert problem == (
        "llama.cpp did not apply the placement of blk.2.ffn_down_exps.weight (wanted CPU)"
    )
    placed["blk.2.ffn_down_exps.weight"] = "CUDA0"
    assert placement_problem(model, cpu_moe_overrides(), placed) == (
        "blk.2.ffn_down_exps.weight landed in CUDA0, not CPU"
    )


def test_a_split_model_opens_from_its_first_file(tmp_path: Path) -> None:
    first = write_tiny_k2(tmp_path / "tiny-k2.gguf", split_max_tensors=20)
    shards = sorted(tmp_path.glob("tiny-k2-*-of-*.gguf"))
    assert first == shards[0]
    assert len(shards) > 1
    backend = LlamaCppBackend(first, LlamaOptions(context_size=1024))
    assert len(backend.model_file.shards) == len(shards)
    deltas = one_step(backend, [Message(role="user", content="hi")])
    assert [d.call.name for d in deltas if isinstance(d, ToolCallEnd)] == ["bash"]
    backend.close()
    shards[-1].unlink()
    with pytest.raises(ConfigurationError, match="is missing beside it"):
        LlamaCppBackend(first)
