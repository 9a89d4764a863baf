"""``ponder serve`` on the tiny K2 GGUF: one warm model for every frontend, each conversation's
KV cache kept aside for its next turn, K2's special tokens intact, and clients that do not hang
when the server dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PONDER
from tiny_models import REASONING

from ponder.runtime.events import UsageReported, event_from_json


@pytest.fixture
def served(tiny_k2: Path, user_env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A ``ponder serve`` of the tiny model on a free port of 127.0.0.1, and its process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [PONDER, "serve", str(tiny_k2), "--port", str(port), "-c", "16384"],
        env=user_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        assert time.monotonic() < deadline, "ponder serve did not come up"
        time.sleep(0.1)
    yield url, server
    if server.poll() is None:
        server.terminate()
        server.wait(30)


def chat(url: str, messages: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A streamed completion: the usage and every chunk."""
    chunks = []
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={"model": "tiny", "messages": messages, "stream": True, "max_tokens": 64},
        timeout=60,
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    (usage,) = [c["usage"] for c in chunks if c.get("usage")]
    return usage, chunks


def test_two_one_liners_share_one_warm_model(
    served: tuple[str, subprocess.Popen[str]], tiny_k2: Path, user_env: dict[str, str],
    workspace: Path,
) -> None:  # fmt: skip
    url, _ = served
    runs = []
    for _ in range(2):
        result = subprocess.run(
            [PONDER, "exec", "--json", "list the files", "--model", f"llamacpp:{tiny_k2}",
             "--sandbox", "local", "--max-steps", "1"],
            cwd=workspace, env=user_env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert f"using the model `ponder serve` holds at {url}" in result.stderr
        events = [event_from_json(line) for line in result.stdout.splitlines()]
        runs.append(next(e for e in events if isinstance(e, UsageReported)))
    first, second = runs
    assert first.prompt_tokens == second.prompt_tokens
    # The second one-liner's prompt came out of the server's KV cache, not a fresh prefill.
    assert second.cached_tokens >= second.prompt_tokens - 1
    assert httpx.get(f"{url}/metrics").json()["requests"] == 2


def test_alternating_conversations_each_keep_their_cache(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _ = served
    one = [{"role": "user", "content": "Tell me about the first topic. " * 20}]
    two = [{"role": "user", "content": "Something else entirely, please. " * 20}]
    usage_one, _ = chat(url, one)
    usage_two, _ = chat(url, two)
    again = {"role": "user", "content": "And then?"}
    answer = {"role": "assistant", "content": "Looking."}
    later_one, _ = chat(url, [*one, answer, again])
    later_two, _ = chat(url, [*two, answer, again])
    assert later_one["prompt_tokens_details"]["cached_tokens"] >= usage_one["prompt_tokens"] - 1
    assert later_two["prompt_tokens_details"]["cached_tokens"] >= usage_two["prompt_tokens"] - 1
    metrics = httpx.get(f"{url}/metrics").json()
    assert metrics["kv_restores"] >= 2
    assert metrics["cached_conversations"] >= 1


def test_special_tokens_survive_the_trip(served: tuple[str, subprocess.Popen[str]]) -> None:
    """The tool call a client gets is exactly the one the model generated, markers parsed by
    ponder's own K2 parser on the server."""
    url, _ = served
    _, chunks = chat(url, [{"role": "user", "content": "list the files"}])
    deltas = [choice["delta"] for c in chunks for choice in c["choices"]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == REASONING
    assert "".join(d.get("content", "") for d in deltas) == "Looking."
    (call,) = [piece for d in deltas for piece in d.get("tool_calls", [])]
    assert call["id"] == "functions.bash:0"
    assert call["function"] == {"name": "bash", "arguments": '{"command": "ls"}'}
    finish = [choice["finish_reason"] for c in chunks for choice in c["choices"]]
    assert finish[-1] == "tool_calls"


def test_a_server_that_dies_mid_request_gives_exit_75_not_a_hang(
    served: tuple[str, subprocess.Popen[str]], tiny_k2: Path, user_env: dict[str, str],
    workspace: Path,
) -> None:  # fmt: skip
    url, server = served
    config = Path(user_env["XDG_CONFIG_HOME"]) / "ponder" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[openai]\nmax_retries = 1\n")
    client = subprocess.Popen(
        [PONDER, "exec", "list the files", "--model", f"llamacpp:{tiny_k2}", "--sandbox", "local"],
        cwd=workspace, env=user_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/metrics").json()["requests"] == 0:  # the client is at work
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(server.pid, signal.SIGKILL)  # in the middle of its run
    started = time.monotonic()
    _, stderr = client.communicate(timeout=60)
    assert client.returncode == 75, stderr
    assert time.monotonic() - started < 30
    assert "cannot reach" in stderr or "dropped the connection" in stderr


def test_a_hang_up_ends_the_server(served: tuple[str, subprocess.Popen[str]]) -> None:
    """Issue 24, 0: `ponder serve` in a terminal that closes ends with it."""
    url, server = served
    chat(url, [{"role": "user", "content": "list the files"}])
    server.send_signal(signal.SIGHUP)
    assert server.wait(30) == 129
