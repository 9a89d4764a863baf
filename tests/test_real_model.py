"""Real weights on the real kernels: Gemma 3 270M, Q4_K_M, through llama.cpp as installed.

The tiny GGUFs of the other tests are Q4_0 and too small for some of llama.cpp's kernels (its
AMX path takes the K-quant and Q8_0 tensors of real models), so a build that dies on every real
model passed them all. These load real K-quants. Anything that could crash runs in a child
process, so a SIGILL is a failing test with its signal named, not a dead pytest. The model does
not call ponder's tools (it is no K2); what is checked is the local model's whole path: the
answer, usage, budgets, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest
from conftest import PONDER

from ponder.app.commands.doctor import SMOKE
from ponder.model.cpu_features import built_features, probe_cached, unusable

pytestmark = pytest.mark.usefixtures("sandbox_image")
LONG_TASK = "Count from 1 to 3000, one number per line, nothing else."


def model_spec(gemma: Path) -> str:
    return f"llamacpp:{gemma}"


def test_the_installed_build_runs_on_this_cpu() -> None:
    info = subprocess.run(
        [sys.executable, "-c", "import llama_cpp; print(llama_cpp.llama_print_system_info())"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert unusable(built_features(info.stdout), probe_cached()) == []


def test_real_k_quants_generate_in_a_child_process(gemma: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SMOKE, str(gemma)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if done.returncode < 0:
        pytest.fail(f"llama.cpp died with {signal.Signals(-done.returncode).name} on real weights")
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["tokens"] > 0
    assert figures["text"].strip()


def test_a_one_liner_answers_on_real_weights(
    gemma: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    """Gemma 3 270M is a base model: it goes on writing, so the token budget ends the answer
    (what it wrote is printed, and the exit code says it was cut short)."""
    ran = subprocess.run(
        [PONDER, "-p", "Say hello.", "--max-tokens", "24", "--model", model_spec(gemma)],
        env=user_env, cwd=workspace, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in ran.stderr
    assert ran.stdout.strip()
    assert "the token budget is used up" in ran.stderr
    assert ran.returncode == 1


def test_exec_json_on_real_weights_reports_usage_and_holds_the_token_budget(
    gemma: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    ran = subprocess.run(
        [PONDER, "exec", "--json", "--max-tokens", "24", "--model", model_spec(gemma), LONG_TASK],
        env=user_env, cwd=workspace, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in ran.stderr
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    usage = [e for e in events if e["type"] == "usage"]
    assert usage
    assert usage[0]["prompt_tokens"] > 0
    assert 0 < usage[0]["completion_tokens"] <= 24
    assert usage[0]["decode_tokens_per_s"] > 0
    finished = events[-1]
    assert finished["type"] == "run_finished"
    assert finished["reason"] == "token_budget"
    assert ran.returncode == 1


def test_ctrl_c_stops_a_real_generation_and_the_session_goes_on(
    gemma: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    child = pexpect.spawn(
        PONDER, ["--plain", "--model", model_spec(gemma)],
        env={**user_env, "TERM": "xterm-256color"}, cwd=str(workspace), encoding="utf-8",
        timeout=120, dimensions=(40, 120),
    )  # fmt: skip
    child.expect_exact("›")
    child.send(LONG_TASK + "\r")
    child.expect_exact("step 1")
    child.expect(r"[A-Za-z0-9]{3}")  # the model's text is streaming
    child.sendintr()
    child.expect_exact("interrupted; the session goes on with the next message", timeout=30)
    child.expect_exact("›")  # the prompt is back: the session goes on
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    # The person ended the session at the prompt: that went well, whatever the last task did
    # (issue 17; one-liners and piped tasks still exit with their task's code).
    assert child.exitstatus == 0


def test_sigterm_during_a_real_generation_ends_quietly(
    gemma: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    process = subprocess.Popen(
        [PONDER, "exec", "--json", "--model", model_spec(gemma), LONG_TASK],
        env=user_env, cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    deadline = time.monotonic() + 240
    for line in process.stdout:  # until the model is generating
        if json.loads(line)["type"] in ("content", "reasoning") or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in err
    assert "llama.cpp failed" not in err


def test_esc_stops_a_real_generation_in_the_tui(
    gemma: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    from tmux import terminal

    command = [PONDER, "--model", model_spec(gemma), "--workspace", str(workspace)]
    with terminal(command, user_env, width=160) as pane:
        pane.wait_for("gemma-3-270m")
        pane.send(LONG_TASK, "Enter")
        pane.wait_for("answering", timeout=120)  # the model's text is streaming
        pane.send("Escape")
        pane.wait_for("interrupted", timeout=30)
        pane.send("C-q")
        pane.wait_for("EXIT=", timeout=30)
