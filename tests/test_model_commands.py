"""``ponder model render | parse | info | plan`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import PONDER
from tiny_models import REASONING, SCRIPT_TEXT

from ponder.model.chat_template import ChatTemplate


def ponder(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PONDER, "model", *args], input=stdin, capture_output=True, text=True, env=env, check=False
    )


def test_parse_prints_the_documented_json(user_env: dict[str, str]) -> None:
    broken = "<|tool_call_begin|>functions.bash:1<|tool_call_argument_begin|>{oops<|tool_call_end|>"
    result = ponder(
        "parse", "-", env=user_env, stdin=SCRIPT_TEXT.replace("<|im_end|>", "") + broken
    )
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert parsed["reasoning"] == REASONING
    assert parsed["content"] == "Looking."
    good, bad = parsed["tool_calls"]
    assert good == {
        "id": "functions.bash:0",
        "name": "bash",
        "arguments": {"command": "ls"},
        "raw_arguments": '{"command": "ls"}',
        "error": None,
    }
    assert bad["arguments"] is None
    assert bad["raw_arguments"] == "{oops"
    assert "not valid JSON" in bad["error"]
    # A call whose arguments marker is missing cannot run: it is listed, and said, not lost.
    unmarked = "<|tool_call_begin|>functions.bash:2 {}<|tool_call_end|>"
    dropped = ponder("parse", "-", env=user_env, stdin=unmarked)
    assert json.loads(dropped.stdout)["dropped_calls"] == [
        {"raw_id": "functions.bash:2 {}", "why": "its id 'functions.bash:2 {}' is not NAME:N"}
    ]
    assert "ponder: a call was dropped: its id" in dropped.stderr


def test_render_prints_exactly_what_the_model_sees(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Grüße"}]
    (tmp_path / "m.json").write_text(json.dumps(messages))
    result = ponder("render", "--messages", str(tmp_path / "m.json"), env=user_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ChatTemplate.official().render(messages)
    piped = ponder("render", "--messages", "-", env=user_env, stdin=json.dumps(messages))
    assert piped.stdout == result.stdout
    bare = ponder(
        "render", "--messages", str(tmp_path / "m.json"), "--no-generation-prompt", env=user_env
    )
    assert not bare.stdout.endswith("<|im_assistant|>assistant<|im_middle|>")


def test_render_reports_a_missing_file(tmp_path: Path, user_env: dict[str, str]) -> None:
    result = ponder("render", "--messages", str(tmp_path / "none.json"), env=user_env)
    assert result.returncode == 2
    assert "messages file not found" in result.stderr


def test_info_describes_a_gguf(tiny_k2: Path, user_env: dict[str, str]) -> None:
    result = ponder("info", str(tiny_k2), "--json", env=user_env)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["architecture"] == "deepseek2"
    assert (info["blocks"], info["dense_blocks"]) == (3, 1)
    assert (info["experts"], info["experts_used"], info["experts_shared"]) == (4, 2, 1)
    assert info["types_by_group"]["routed_experts"] == ["Q4_0"]
    assert info["chat_template"] is True
    assert info["tokenizer"] == "gpt2"
    text = ponder("info", str(tiny_k2), env=user_env).stdout
    assert "routed experts" in text
    assert "Q4_0" in text
    assert "parameters: 0.000 B" not in text  # a small model's count is in K or M
    assert "None pre-tokenizer" not in text


def test_info_on_a_dense_model_leaves_out_what_it_has_not(
    tiny_llama: Path, user_env: dict[str, str]
) -> None:
    text = ponder("info", str(tiny_llama), env=user_env).stdout
    assert "blocks:" in text
    assert "None" not in text  # no "dense blocks: None"


def test_plan_on_a_gguf(tiny_k2: Path, user_env: dict[str, str]) -> None:
    result = ponder(
        "plan", str(tiny_k2), "--gpu-mem", "24GiB", "--ctx", "4096", "--json", env=user_env
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["fits"] is True
    assert plan["n_cpu_moe"] == 0
    assert plan["llama_cpp_flags"] == "-ngl 999"
    table = ponder("plan", str(tiny_k2), "--gpu-mem", "0", env=user_env).stdout
    assert "decode bound" in table
    trained = json.loads(ponder("info", str(tiny_k2), "--json", env=user_env).stdout)
    assert f"context: {trained['context_length']} tokens (the model's trained length" in table
