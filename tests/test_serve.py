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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import PONDER
from tiny_models import REASONING

from ponder.runtime.events import UsageReported, event_from_json


@contextmanager
def serving(model: Path, env: dict[str, str], *flags: str) -> Iterator[tuple[str, Any]]:
    """A ``ponder serve`` of ``model`` on a free port of 127.0.0.1, and its process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [PONDER, "serve", str(model), "--port", str(port), *flags],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        assert time.monotonic() < deadline, "ponder serve did not come up"
        time.sleep(0.1)
    try:
        yield url, server
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(30)


@pytest.fixture
def served(tiny_k2: Path, user_env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The tiny K2 served, with a context of 16,384."""
    with serving(tiny_k2, user_env, "-c", "16384") as served:
        yield served


def chat(url: str, messages: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A streamed completion: the usage and every chunk."""
    chunks = []
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={
            "model": "tiny-k2.gguf",
            "messages": messages,
            "stream": True,
            "max_tokens": 64,
            "stream_options": {"include_usage": True},
        },
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


def sdk(url: str) -> Any:
    """The official OpenAI SDK's client, as its docs make one (no retries: a 4xx is final)."""
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_the_openai_sdk_streams_and_calls_tools_as_its_docs_show(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    """Issue 25, 1: the loop of OpenAI's docs raised IndexError on ponder's usage chunk, which
    came unasked, before the finish, and no chunk carried the role."""
    url, _ = served
    client = sdk(url)
    (model,) = [m.id for m in client.models.list().data]
    ask = [{"role": "user", "content": "list the files"}]
    stream = client.chat.completions.create(model=model, messages=ask, stream=True)
    text = ""
    for chunk in stream:  # as OpenAI's docs write it
        text += chunk.choices[0].delta.content or ""
    assert text == "Looking."
    chunks = list(client.chat.completions.create(
        model=model, messages=ask, stream=True, stream_options={"include_usage": True}
    ))  # fmt: skip
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks[:-1]][-1] == "tool_calls"
    with client.chat.completions.stream(model=model, messages=ask) as helper:  # SDK's helper
        final = helper.get_final_completion()
    assert final.choices[0].message.role == "assistant"
    assert final.choices[0].message.tool_calls[0].function.name == "bash"
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
    whole = client.chat.completions.create(model=model, messages=ask, tools=tools)
    (call,) = whole.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments) == ("bash", '{"command": "ls"}')
    assert whole.choices[0].finish_reason == "tool_calls"
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    assert client.models.retrieve(model).created > 0
    # A stop sequence ends the answer there, and nothing after it is sent.
    stopped = client.chat.completions.create(model=model, messages=ask, stop=["ok"])
    assert stopped.choices[0].message.content == "Lo"
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.tool_calls is None


def test_bad_requests_are_4xx_in_openais_shape(served: tuple[str, subprocess.Popen[str]]) -> None:
    """Issue 25, 2 and 3: wrong input got a 500 with a traceback (which the SDK retries), or a
    200 with an empty stream; parameters ponder cannot honour were silently ignored."""
    import openai

    url, _ = served
    client = sdk(url)
    model = client.models.list().data[0].id
    ask = [{"role": "user", "content": "hi"}]
    refused = {
        "nope": ({"model": "nope", "messages": ask}, openai.NotFoundError, "model_not_found"),
        "text": ({"model": model, "messages": "hi"}, openai.BadRequestError, "invalid_value"),
        "list": ({"model": model, "messages": ["hi"]}, openai.BadRequestError, "invalid_value"),
        "hot": ({"model": model, "messages": ask, "temperature": "hot"}, openai.BadRequestError,
                "invalid_value"),
        "calls": ({"model": model, "messages": [*ask, {"role": "assistant", "tool_calls": ["x"]}]},
                  openai.BadRequestError, "invalid_value"),
        "n": ({"model": model, "messages": ask, "n": 2}, openai.BadRequestError, None),
        "forced": ({"model": model, "messages": ask, "tool_choice": "required"},
                   openai.BadRequestError, None),
        "format": ({"model": model, "messages": ask, "response_format": {"type": "json_object"}},
                   openai.BadRequestError, None),
        "long": ({"model": model, "messages": [{"role": "user", "content": "word " * 20_000}]},
                 openai.BadRequestError, "context_length_exceeded"),
    }  # fmt: skip
    for name, (body, error, code) in refused.items():
        with pytest.raises(error) as raised:
            client.chat.completions.create(**body)
        assert raised.value.code == code, name
        assert raised.value.body["message"], name
    # Raw HTTP: what no SDK would send.
    deep = "[" * 100_000 + "]" * 100_000
    streamed_bad = {"model": model, "messages": ask, "stream": True, "top_k": "x"}
    surrogate = '{"messages": [{"role": "user", "content": "hi \\ud800"}]}'
    for body in (deep, json.dumps(streamed_bad), surrogate):
        answer = httpx.post(f"{url}/v1/chat/completions", content=body,
                            headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 400
        assert answer.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{url}/v1/models/nope").status_code == 404
    huge = httpx.post(f"{url}/v1/chat/completions", content=b" " * (33 * 2**20),
                      headers={"Content-Type": "application/json"}, timeout=60)  # fmt: skip
    assert huge.status_code == 413


def test_web_pages_are_refused(served: tuple[str, subprocess.Popen[str]]) -> None:
    """Issue 25, 4: a page in the browser could use the model (a text/plain POST needs no CORS
    preflight) and, through DNS rebinding (a Host of the page's own name), read the answers."""
    url, _ = served
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    attempts = [
        {"Content-Type": "text/plain", "Origin": "http://evil.example", "Host": "evil.example"},
        {"Content-Type": "application/json", "Host": "evil.example"},
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "text/plain; x=json"},  # what a page may still send unasked
        {"Content-Type": "application/json", "Origin": "http://localhost:3000"},  # another port
        {"Content-Type": "application/json", "Host": "[::1].attacker.example"},
        {"Content-Type": "application/json", "Host": "127.0.0.1:1@evil.example"},
    ]
    for headers in attempts:
        answer = httpx.post(f"{url}/v1/chat/completions", content=body, headers=headers)
        assert answer.status_code in (403, 415), headers
        assert "access-control-allow-origin" not in answer.headers
    assert httpx.get(f"{url}/metrics", headers={"Host": "rebound.example"}).status_code == 403
    fine = httpx.post(f"{url}/v1/chat/completions", content=body,
                      headers={"Content-Type": "application/json"}, timeout=60)  # fmt: skip
    assert fine.status_code == 200


def test_a_busy_port_is_found_before_the_model_loads(
    tiny_k2: Path, user_env: dict[str, str]
) -> None:
    """Issue 25, 6: on a port in use, the whole model loaded, the server said it served, then
    died with exit 3. Also: listening beyond loopback needs a key."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = subprocess.run(
            [PONDER, "serve", str(tiny_k2), "--port", str(port)], env=user_env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert ran.returncode == 2
    assert f"port {port} is in use" in ran.stderr
    assert "loading" not in ran.stderr
    open_to_all = subprocess.run(
        [PONDER, "serve", str(tiny_k2), "--host", "0.0.0.0"], env=user_env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert open_to_all.returncode == 2
    assert "give --api-key" in open_to_all.stderr


def test_real_weights_through_the_sdk_and_clients_that_leave(
    gemma: Path, user_env: dict[str, str]
) -> None:
    """The OpenAI SDK against real K-quant weights (Gemma 3 270M); and issue 25, 4: a client
    that gave up after 2 s kept the model busy for 139 s. A request whose client is gone, streamed
    or not, stops generating (the server counts it as abandoned)."""
    with serving(gemma, user_env, "-c", "4096") as (url, server):
        client = sdk(url)
        model = client.models.list().data[0].id
        ask = [{"role": "user", "content": "Say hello in one short sentence."}]
        whole = client.chat.completions.create(model=model, messages=ask, max_tokens=24)
        assert whole.choices[0].message.content
        assert whole.usage.completion_tokens > 0
        chunks = list(client.chat.completions.create(
            model=model, messages=ask, max_tokens=24, stream=True,
            stream_options={"include_usage": True},
        ))  # fmt: skip
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage.completion_tokens > 0
        long = {"model": model, "max_tokens": 3000, "messages": [
            {"role": "user", "content": "Count from 1 to 2000, one number per line."}]}  # fmt: skip
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=long, timeout=2)
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**long, "stream": True},
                          timeout=60) as streamed:  # fmt: skip
            next(streamed.iter_lines())  # it has begun; then the client goes
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/metrics").json()["abandoned"] < 2:
            assert time.monotonic() < deadline, "a request whose client left went on generating"
            time.sleep(0.2)
        metrics = httpx.get(f"{url}/metrics").json()
        assert metrics["waiting"] == 0
        assert metrics["last_completion_tokens"] < 1000  # stopped well before its 3,000
        # Stopping the server ends an answer under way as at a limit: its stream closes whole.
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**long, "stream": True},
                          timeout=60) as streamed:  # fmt: skip
            lines = streamed.iter_lines()
            next(lines)
            server.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        assert server.wait(30) == 128 + signal.SIGTERM
