"""The OpenAI-compatible backend against real HTTP servers on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import PONDER
from fake_openai import Reply, delta_chunk, fake_openai
from tiny_models import REASONING, SCRIPT

from ponder.model.backend import BackendError, BackendUnavailable, ConfigurationError
from ponder.model.deltas import (
    ContentDelta,
    Delta,
    Finished,
    ReasoningDelta,
    Retrying,
    ToolCallEnd,
    Usage,
)
from ponder.model.messages import Message, ToolCall, ToolSchema
from ponder.model.openai_compat import OpenAICompatBackend
from ponder.model.options import GenerationSettings, OpenAIOptions

FAST = OpenAIOptions(retry_base_s=0.01, max_retries=3, api_key_env="PONDER_TEST_KEY")
TOOLS = [ToolSchema(name="bash", description="run", parameters={"type": "object"})]
K2_STREAM = [
    delta_chunk(role="assistant", reasoning_content="Let me "),
    delta_chunk(reasoning_content="look."),
    delta_chunk(content="Checking."),
    delta_chunk(
        tool_calls=[
            {"index": 0, "id": "functions.bash:0", "function": {"name": "bash", "arguments": ""}}
        ]
    ),
    delta_chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"command": '}}]),
    delta_chunk(tool_calls=[{"index": 0, "function": {"arguments": '"ls"}'}}]),
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {
        "choices": [],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 9,
            "prompt_tokens_details": {"cached_tokens": 100},
        },
    },
]
HISTORY = [
    Message(role="user", content="list"),
    Message(
        role="assistant",
        tool_calls=[ToolCall(id="functions.bash:0", name="bash", arguments='{"command": "ls"}')],
    ),
    Message(role="tool", tool_call_id="functions.bash:0", name="bash", content="a.py"),
]


def run(backend: OpenAICompatBackend, messages: list[Message] | None = None) -> list[Delta]:
    return list(backend.stream(messages or HISTORY, TOOLS, GenerationSettings()))


def test_streams_reasoning_content_and_tool_calls() -> None:
    with fake_openai(Reply(chunks=K2_STREAM)) as server:
        deltas = run(OpenAICompatBackend(f"{server.url}#kimi-k2-thinking", FAST))
    assert "".join(d.text for d in deltas if isinstance(d, ReasoningDelta)) == "Let me look."
    assert "".join(d.text for d in deltas if isinstance(d, ContentDelta)) == "Checking."
    (end,) = [d for d in deltas if isinstance(d, ToolCallEnd)]
    assert (end.call.id, end.call.name) == ("functions.bash:0", "bash")
    assert end.call.arguments == {"command": "ls"}
    (usage,) = [d for d in deltas if isinstance(d, Usage)]
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (120, 100, 9)
    assert usage.decode_tokens_per_s  # timed here: servers do not send it
    assert deltas[-1] == Finished("stop")


def test_what_the_server_receives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_TEST_KEY", "sk-test")
    with fake_openai(Reply(chunks=K2_STREAM)) as server:
        run(OpenAICompatBackend(f"{server.url}#kimi-k2-thinking", FAST))
    (sent,) = server.requests
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    assert sent["model"] == "kimi-k2-thinking"
    assert sent["stream"] is True
    assert sent["tools"][0]["function"]["name"] == "bash"
    assistant = sent["messages"][1]
    # Thinking servers reject a tool-call message without reasoning_content.
    assert assistant["reasoning_content"] == ""
    assert assistant["content"] is None
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"command": "ls"}'
    assert sent["messages"][2] == {
        "role": "tool",
        "content": "a.py",
        "tool_call_id": "functions.bash:0",
        "name": "bash",
    }


def test_raw_k2_markers_in_content_are_parsed() -> None:
    raw = "<think>hm</think>ok<|tool_calls_section_begin|><|tool_call_begin|>functions.view:0"
    rest = '<|tool_call_argument_begin|>{"path": "."}<|tool_call_end|><|tool_calls_section_end|>'
    chunks = [delta_chunk(content=raw[:20]), delta_chunk(content=raw[20:] + rest)]
    with fake_openai(Reply(chunks=chunks)) as server:
        deltas = run(OpenAICompatBackend(f"{server.url}#m", FAST))
    assert "".join(d.text for d in deltas if isinstance(d, ReasoningDelta)) == "hm"
    assert "".join(d.text for d in deltas if isinstance(d, ContentDelta)) == "ok"
    (end,) = [d for d in deltas if isinstance(d, ToolCallEnd)]
    assert (end.call.name, end.call.arguments) == ("view", {"path": "."})


def test_rate_limits_and_server_errors_are_retried() -> None:
    replies = [
        Reply(429, headers={"Retry-After": "0"}, error="slow down"),
        Reply(500, error="boom"),
        Reply(503, error="overloaded"),
        Reply(chunks=K2_STREAM),
    ]
    with fake_openai(*replies) as server:
        deltas = run(OpenAICompatBackend(f"{server.url}#m", FAST))
    assert len(server.requests) == 4
    assert deltas[-1] == Finished("stop")
    # Each failed attempt is told as it happens, with why and when the next comes.
    retries = [d for d in deltas if isinstance(d, Retrying)]
    assert [(r.attempt, r.attempts) for r in retries] == [(1, 4), (2, 4), (3, 4)]
    assert retries[0].error.endswith("answered 429: slow down")
    assert retries[0].delay_s == 0  # Retry-After: 0
    assert retries[2].error.endswith("answered 503: overloaded")


def test_retries_end_with_a_retryable_error() -> None:
    with (
        fake_openai(*[Reply(429, error="quota")] * 5) as server,
        pytest.raises(BackendUnavailable, match="answered 429: quota; gave up after 4"),
    ):
        run(OpenAICompatBackend(f"{server.url}#m", FAST))
    assert len(server.requests) == 4


def test_retry_after_is_honoured() -> None:
    with fake_openai(Reply(429, headers={"Retry-After": "1"}), Reply(chunks=K2_STREAM)) as server:
        started = time.monotonic()
        run(OpenAICompatBackend(f"{server.url}#m", FAST))
        waited = time.monotonic() - started
    assert waited >= 1.0  # the server asked for a second; the backoff alone is 0.01 s


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (400, "thinking is enabled but reasoning_content is missing", BackendError),
        (404, "model not found", BackendError),
        (401, "invalid api key", ConfigurationError),
    ],
)
def test_client_errors_are_reported_and_not_retried(
    status: int, error: str, kind: type[Exception]
) -> None:
    with (
        fake_openai(Reply(status, error=error), Reply(chunks=K2_STREAM)) as server,
        pytest.raises(kind, match=error),
    ):
        run(OpenAICompatBackend(f"{server.url}#m", FAST))
    assert len(server.requests) == 1


def test_an_unreachable_server_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        run(OpenAICompatBackend(f"http://127.0.0.1:{port}/v1#m", FAST))


def test_a_bad_spec_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="openai:http"):
        OpenAICompatBackend("api.moonshot.ai/v1", FAST)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_against_llama_cpp_pythons_own_server(tiny_k2: Path, tmp_path: Path) -> None:
    """The tiny K2 always writes the same answer, so its server's stream is known exactly."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(tiny_k2),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(f"llama_cpp.server did not start:\n{(tmp_path / 'server.log').read_text()}")
        backend = OpenAICompatBackend(f"{base}#tiny", FAST)
        deltas = list(
            backend.stream([Message(role="user", content="hi")], [], GenerationSettings())
        )
        backend.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    # llama-cpp-python's server detokenizes without special tokens: <think> and every tool-call
    # marker are lost and only the words arrive (why ponder runs llama.cpp with its own loop).
    content = "".join(d.text for d in deltas if isinstance(d, ContentDelta))
    assert content == REASONING + 'Looking.functions.bash:0{"command": "ls"}'
    assert not [d for d in deltas if isinstance(d, ToolCallEnd)]
    # It sends no usage while streaming; one is estimated, so budgets and the status line work.
    (usage,) = [d for d in deltas if isinstance(d, Usage)]
    assert 0 < usage.completion_tokens <= len(SCRIPT)
    assert usage.estimated  # and says so (issue 24, 5)
    assert usage.prompt_tokens > 0
    assert deltas[-1] == Finished("stop")


class _Models(BaseHTTPRequestHandler):
    """GET /v1/models as a hostile server answers it (chosen by the port's server attribute)."""

    def do_GET(self) -> None:
        kind = self.server.kind  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if kind == "drip":  # a byte at a time, never done (until the client leaves)
            with contextlib.suppress(OSError):
                while True:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.5)
        elif kind == "deep":
            self.wfile.write(b"[" * 200_000)
        else:
            body = {"data": [{"id": "m", "max_model_len": kind}]}
            self.wfile.write(json.dumps(body).encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("kind", ["drip", "deep", True, 10**40, -5, "32768"])
def test_a_hostile_model_list_gives_a_stated_assumption_in_bounded_time(kind: object) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Models)
    server.kind = kind  # type: ignore[attr-defined]
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # (Without a deadline of its own, the drip would keep this from ever returning.)
        backend = OpenAICompatBackend(f"http://127.0.0.1:{server.server_port}/v1#m", FAST)
        assert (backend.context_size, backend.context_source.split(":")[0]) == (262_144, "assumed")
        backend.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_nobody_listens_at_gets_few_retries() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = OpenAIOptions(retry_base_s=0.01, max_retries=5, context_size=4096)
    backend = OpenAICompatBackend(f"http://127.0.0.1:{port}/v1#m", options)
    stream = backend.stream([Message(role="user", content="hi")], [], GenerationSettings())
    retries = []
    with pytest.raises(BackendUnavailable, match="gave up after 3 attempts"):
        retries.extend(d for d in stream if isinstance(d, Retrying))
    assert [(r.attempt, r.attempts) for r in retries] == [(1, 3), (2, 3)]
    backend.close()


def exec_(
    model: str, flags: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PONDER, "exec", *flags, "--sandbox", "local", "--model", model, "hi"],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_counts_ponder_makes_up_are_marked_as_estimates(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    """Issue 24, 5: a server that sends no usage got figures ponder counted, shown as fact."""
    answer = [delta_chunk(role="assistant", content="All "), delta_chunk(content="done.")]
    answer.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    with fake_openai(Reply(chunks=answer), Reply(chunks=answer)) as server:
        model = f"openai:{server.url}/v1#k2"
        ran, said = (exec_(model, flags, user_env, tmp_path) for flags in (["--json"], []))
    assert ran.returncode == 0, ran.stderr
    assert "completion tokens (estimated: the server sent no counts)" in said.stderr
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    (usage,) = [e for e in events if e["type"] == "usage"]
    assert usage["estimated"] is True
    assert events[-1]["usage"]["estimated"] is True


def test_usage_without_both_counts_is_counted_by_ponder() -> None:
    """A usage with a null or missing count crashed the run (TypeError), or was taken as 0."""
    for said in ({"prompt_tokens": None, "completion_tokens": 3}, {"total_tokens": 7}, [1]):
        chunks = [delta_chunk(role="assistant", content="ok")]
        chunks += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
        chunks += [{"choices": [], "usage": said}]
        with fake_openai(Reply(chunks=chunks)) as server:
            backend = OpenAICompatBackend(f"{server.url}/v1#k2", FAST)
            (usage,) = [d for d in run(backend) if isinstance(d, Usage)]
            backend.close()
        assert usage.estimated
        assert usage.prompt_tokens > 0
