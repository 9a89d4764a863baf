"""TUI benchmarks, each against a peer measured in the same run.

1. Streaming: 100K reasoning tokens (about 4 characters each, a line break every 20) pushed into
   the TUI, running headless, as fast as it takes them. Tokens/s rendered (until the last token
   is on screen) and the process's peak memory, with coalescing (one update per frame) and
   without (one update per token). Each variant runs in its own process so peaks do not mix;
   a variant still going after LIMIT_S seconds reports the rate it reached.
2. Start-up: `ponder --help` against a bare `python -c pass`, and the TUI's first paint against
   a bare Textual app's first paint (both headless, from process start, median of 5).

Run: .venv/bin/python bench/tui_bench.py  (or bench/run for every benchmark)
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TOKENS = 100_000
LIMIT_S = 30.0
ROUNDS = 5
HERE = Path(__file__).resolve()


def stream(coalesce: bool) -> dict[str, float]:
    """Run in a child process: push the tokens through a headless PonderApp."""
    from ponder.app.frontends.tui.app import PonderApp
    from ponder.app.frontends.tui.blocks import ReasoningBlock
    from ponder.runtime.events import Event, ReasoningText, RunFinished, RunStarted, StepStarted
    from ponder.runtime.port import RunPort

    words = ["the", "model", "reads", "stats.py", "and", "thinks", "about", "median"]
    pieces = [f" {words[i % len(words)]}" + ("\n" if i % 20 == 19 else "") for i in range(TOKENS)]
    total = sum(len(p) for p in pieces)

    def run_task(task: str, port: RunPort) -> RunFinished:
        def emit(event: Event) -> None:
            if coalesce:  # the TUI's own port: shown at the next frame, merged
                port.event(event)
            else:  # the peer: each event handed to the UI thread, which shows it at once
                app.call_from_thread(app._take, event)

        emit(RunStarted(task=task, model="bench", sandbox="none", max_steps=1))
        emit(StepStarted(step=1, max_steps=1))
        for piece in pieces:
            emit(ReasoningText(step=1, text=piece))
        return RunFinished(reason="answered", answer="", steps=1)

    app = PonderApp(run_task, model="bench", task="think", interactive=False)

    async def main() -> dict[str, float]:
        async with app.run_test(size=(120, 40)) as pilot:
            started = time.perf_counter()
            shown = 0
            while time.perf_counter() - started < LIMIT_S:
                await pilot.pause(0.02)
                blocks = app.query(ReasoningBlock)
                shown = len(blocks.first().text) if blocks else 0
                if shown >= total:
                    break
            await pilot.pause()  # the last frame painted
            elapsed = time.perf_counter() - started
        return {"tokens_per_s": TOKENS * shown / total / elapsed, "done": shown >= total}

    result = asyncio.run(main())
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def first_paint(bare: bool) -> None:
    """Run in a child process: start a TUI headless and leave after its first paint."""
    from textual.app import App

    if bare:
        from textual.widgets import Static

        class Bare(App[None]):
            def compose(self):  # type: ignore[no-untyped-def]
                yield Static("hello")

            def on_mount(self) -> None:
                self.call_after_refresh(self.exit)

        Bare().run(headless=True)
        return
    from ponder.app.frontends.tui.app import PonderApp
    from ponder.runtime.events import RunFinished
    from ponder.runtime.port import RunPort

    def idle(task: str, port: RunPort) -> RunFinished:
        return RunFinished(reason="answered", answer="", steps=0)

    class FirstPaint(PonderApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.call_after_refresh(self.exit)

    FirstPaint(idle, model="bench").run(headless=True)


def child(*args: str) -> str:
    return subprocess.run(
        [sys.executable, str(HERE), *args], capture_output=True, text=True, check=True
    ).stdout


def timed(command: list[str]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    print(f"1. Streaming {TOKENS:,} reasoning tokens into the TUI (headless, 120x40)")
    results = {}
    for label, flag in (("coalesced", "--coalesce"), ("one update per token", "--no-coalesce")):
        results[label] = json.loads(child("--stream", flag))
        r = results[label]
        note = "" if r["done"] else f" (stopped after {LIMIT_S:.0f} s)"
        print(
            f"   {label:22} {r['tokens_per_s']:9,.0f} tokens/s   peak {r['peak_mb']:6.0f} MB{note}"
        )
    ratio = results["coalesced"]["tokens_per_s"] / results["one update per token"]["tokens_per_s"]
    print(f"   coalescing is {ratio:.1f}x faster (target: at least 5,000 tokens/s with it)")

    print(f"2. Start-up, median of {ROUNDS}")
    ponder = str(Path(sys.executable).parent / "ponder")
    help_s = timed([ponder, "--help"])
    bare_s = timed([sys.executable, "-c", "pass"])
    print(f"   ponder --help      {help_s * 1000:6.0f} ms   python -c pass {bare_s * 1000:6.0f} ms")
    tui_s = timed([sys.executable, str(HERE), "--first-paint"])
    bare_tui_s = timed([sys.executable, str(HERE), "--first-paint-bare"])
    print(
        f"   TUI first paint    {tui_s * 1000:6.0f} ms   "
        f"bare Textual app {bare_tui_s * 1000:6.0f} ms   ratio {tui_s / bare_tui_s:.2f}"
    )


if __name__ == "__main__":
    if "--stream" in sys.argv:
        print(json.dumps(stream(coalesce="--coalesce" in sys.argv)))
    elif "--first-paint" in sys.argv:
        first_paint(bare=False)
    elif "--first-paint-bare" in sys.argv:
        first_paint(bare=True)
    else:
        main()
