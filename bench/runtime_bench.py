"""Runtime overhead per step on a 300-step scripted run in a real Docker sandbox.

Overhead is everything a step costs except the model and the sandbox: the time inside the
backend's stream and tokenizer and inside sandbox calls is measured by thin wrappers and taken
out of each step's wall time. What is left is ponder's own work: events, parsing tool calls,
approvals, the loop guard, context tracking, and (in the full configuration) the session file
flushed per event and a git checkpoint after every step that ran a tool.

Three runs on the same script, sandbox image and repository:
1. ponder, as a session runs it: session file, checkpoints, approval policy;
2. ponder with no session file and no checkpoints;
3. the peer, a minimal agent loop in a dozen lines (stream, run the call, append the result),
   which is the least any agent can do per step.
Then the memory per step of run 1, traced with tracemalloc in a separate run, and how long an
interrupt takes to stop the run while the model generates and while a command runs (the target
is under a second; there is no peer for this one).

Run: .venv/bin/python bench/runtime_bench.py  (or bench/run for every benchmark)
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ponder.model.deltas import ContentDelta, Delta, ReasoningDelta, ToolCallEnd
from ponder.model.messages import Message, ToolCall
from ponder.model.options import GenerationSettings
from ponder.model.scripted import ScriptedBackend
from ponder.runtime.agent_settings import AgentSettings
from ponder.runtime.approvals import ApprovalPolicy
from ponder.runtime.budgets import Budgets
from ponder.runtime.checkpoints import Checkpoints
from ponder.runtime.events import Event, StepFinished
from ponder.runtime.loop import Agent
from ponder.runtime.port import Unattended
from ponder.runtime.sessions import SessionRecorder
from ponder.runtime.tools import default_tools
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import connect
from ponder.sandbox.image import DEFAULT_IMAGE, build_default_image

STEPS = 300
MODULES = 200
CONTEXT = 262_144


def make_repository(root: Path) -> None:
    """A small Python project under git: MODULES files, each with a value the run edits."""
    package = root / "project"
    package.mkdir(parents=True)
    for k in range(MODULES):
        (package / f"module_{k}.py").write_text(
            f'"""Module {k}."""\n\nVALUE_{k} = 0\n\n\ndef get_{k}():\n    return VALUE_{k}\n'
        )
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "start"],
        cwd=root,
        check=True,
    )


def script() -> list[str]:
    """Steps of reasoning and one call: mostly commands, every tenth an edit, some views."""
    completions = []
    for i in range(STEPS + 1):
        k = i % MODULES
        if i % 10 == 9:
            name = "str_replace"
            args = (
                f'{{"path": "project/module_{k}.py", '
                f'"old_str": "VALUE_{k} = 0", "new_str": "VALUE_{k} = 1"}}'
            )
        elif i % 10 == 4:
            name, args = "view", f'{{"path": "project/module_{k}.py"}}'
        else:
            name, args = "bash", f'{{"command": "grep -c VALUE project/module_{k}.py"}}'
        reasoning = (
            f"Step {i}. Module {k} holds VALUE_{k}; I check how get_{k} uses it before I "
            f"change anything, then I look at module {k + 1}. " * 4
        )
        completions.append(
            f"<think>{reasoning}</think><|tool_calls_section_begin|><|tool_call_begin|>"
            f"functions.{name}:{i}<|tool_call_argument_begin|>{args}<|tool_call_end|>"
            "<|tool_calls_section_end|><|im_end|>"
        )
    return completions


class Stopwatch:
    def __init__(self) -> None:
        self.seconds = 0.0

    def timed(self, action: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return action(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        return run


class TimedBackend:
    """The scripted backend, with the time spent inside it counted."""

    def __init__(self, inner: ScriptedBackend, watch: Stopwatch) -> None:
        self.inner, self.watch = inner, watch
        self.name, self.context_size = inner.name, inner.context_size
        self.count_tokens = watch.timed(inner.count_tokens)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Delta]:
        deltas = self.watch.timed(self.inner.stream)(*args, **kwargs)
        take = self.watch.timed(next)
        while True:
            try:
                delta = take(deltas)
            except StopIteration:
                return
            yield delta

    def close(self) -> None:
        self.inner.close()


class TimedSandbox:
    """The Docker sandbox, with the time spent in its calls counted (less ponder's own output
    handling, which runs inside ``exec``)."""

    def __init__(self, inner: DockerSandbox, watch: Stopwatch) -> None:
        self.inner, self.watch = inner, watch
        self.read_file = watch.timed(inner.read_file)
        self.write_file = watch.timed(inner.write_file)
        self.list_dir = watch.timed(inner.list_dir)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def exec(self, command: str, timeout: float, on_output: Any = None, cancel: Any = None) -> Any:
        handling = Stopwatch()
        callback = handling.timed(on_output) if on_output is not None else None
        result = self.watch.timed(self.inner.exec)(command, timeout, callback, cancel)
        self.watch.seconds -= handling.seconds
        return result


def ponder_run(
    sandbox: DockerSandbox, workspace: Path, data: Path, full: bool, memory: bool = False
) -> list[float]:
    """Per-step overheads in seconds; ``memory`` traces allocations and prints their growth."""
    model, tools = Stopwatch(), Stopwatch()
    backend = TimedBackend(ScriptedBackend(script(), context_size=CONTEXT), model)
    overheads: list[float] = []
    traced: dict[int, int] = {}
    last = [0.0]
    recorder = SessionRecorder(data / "sessions", {"workspace": str(workspace)}) if full else None

    def emit(event: Event) -> None:
        if recorder is not None:
            recorder(event)
        if isinstance(event, StepFinished):
            spent = model.seconds + tools.seconds
            overheads.append(event.elapsed_s - (spent - last[0]))
            last[0] = spent
            if memory and event.step in (50, STEPS):
                gc.collect()  # the scripted backend's template rendering leaves cycles behind
                traced[event.step] = tracemalloc.get_traced_memory()[0]

    checkpoints = Checkpoints(workspace, recorder.id, data / "store") if recorder else None
    agent = Agent(
        backend,  # type: ignore[arg-type]
        TimedSandbox(sandbox, tools),  # type: ignore[arg-type]
        settings=AgentSettings(budgets=Budgets(max_steps=STEPS)),
        policy=ApprovalPolicy(mode="auto") if full else None,
        checkpoints=checkpoints,
    )
    if memory:
        tracemalloc.start()
    task = "Look through every module and set each value to one."
    finished = agent.run(task, Unattended(emit))
    if memory:
        tracemalloc.stop()
    if recorder is not None:
        recorder.close()
    if checkpoints is not None:
        checkpoints.close()
    assert finished.reason == "max_steps", finished
    if memory:
        transcript = sum(len(m.model_dump_json()) for m in agent.messages) / STEPS
        print(
            f"   memory per step (full session, tracemalloc, steps 50-{STEPS}): "
            f"{(traced[STEPS] - traced[50]) / (STEPS - 50):.0f} B; "
            f"the transcript as JSON: {transcript:.0f} B per step"
        )
    return overheads


def minimal_run(sandbox: DockerSandbox) -> list[float]:
    """The peer: the least an agent loop does per step, on the same script and sandbox."""
    model, tools = Stopwatch(), Stopwatch()
    backend = TimedBackend(ScriptedBackend(script(), context_size=CONTEXT), model)
    timed = TimedSandbox(sandbox, tools)
    schemas = [tool.schema for tool in default_tools()]
    messages = [Message(role="system", content="..."), Message(role="user", content="Go.")]
    overheads = []
    for _ in range(STEPS):
        started, spent = time.monotonic(), model.seconds + tools.seconds
        reasoning, content, calls = "", "", []
        for delta in backend.stream(messages, schemas, GenerationSettings()):
            if isinstance(delta, ReasoningDelta):
                reasoning += delta.text
            elif isinstance(delta, ContentDelta):
                content += delta.text
            elif isinstance(delta, ToolCallEnd):
                calls.append(delta.call)
        messages.append(
            Message(
                role="assistant",
                content=content,
                reasoning=reasoning,
                tool_calls=[
                    ToolCall(id=c.id, name=c.name, arguments=c.raw_arguments) for c in calls
                ],
            )
        )
        for call in calls:
            args = call.arguments or {}
            if call.name == "bash":
                output = timed.exec(args["command"], 60).output
            elif call.name == "view":
                output = timed.read_file(args["path"]).decode()
            else:
                text = timed.read_file(args["path"]).decode()
                timed.write_file(
                    args["path"], text.replace(args["old_str"], args["new_str"]).encode()
                )
                output = "edited"
            messages.append(Message(role="tool", content=output, tool_call_id=call.id))
        overheads.append(time.monotonic() - started - (model.seconds + tools.seconds - spent))
    return overheads


def interrupt_latency(sandbox: DockerSandbox, during: str, rounds: int = 5) -> list[float]:
    """Seconds from ``Agent.interrupt`` to ``Agent.run`` returning."""
    slow = "<think>" + "Thinking it over. " * 2000 + "</think><|im_end|>"
    command = (
        "<think>Wait.</think><|tool_calls_section_begin|><|tool_call_begin|>functions.bash:0"
        '<|tool_call_argument_begin|>{"command": "sleep 200"}<|tool_call_end|>'
        "<|tool_calls_section_end|><|im_end|>"
    )
    latencies = []
    asked = [0.0]
    for _ in range(rounds):
        completion = slow if during == "generation" else command
        backend = ScriptedBackend([completion], chunk_delay=0.005)
        agent = Agent(backend, sandbox)

        def interrupt(agent: Agent = agent) -> None:
            asked[0] = time.monotonic()
            agent.interrupt()

        threading.Timer(1.0, interrupt).start()
        assert agent.run("wait", Unattended(lambda event: None)).reason == "interrupted"
        latencies.append(time.monotonic() - asked[0])
    return latencies


def summary(overheads: list[float]) -> tuple[float, float]:
    ordered = sorted(overheads)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def main() -> None:
    client = connect()
    build_default_image(client, log=lambda line: None)
    results: dict[str, tuple[float, float]] = {}
    runs: dict[str, Callable[[DockerSandbox, Path, Path], list[float]]] = {
        "ponder, full session": lambda s, w, d: ponder_run(s, w, d, full=True),
        "ponder, no session file or checkpoints": lambda s, w, d: ponder_run(s, w, d, full=False),
        "minimal loop (peer)": lambda s, w, d: minimal_run(s),
    }
    print(
        f"Runtime overhead per step, {STEPS}-step scripted run, Docker sandbox, {MODULES}-file repo"
    )
    for label, run in runs.items():
        with tempfile.TemporaryDirectory() as tmp:
            workspace, data = Path(tmp) / "repo", Path(tmp) / "data"
            make_repository(workspace)
            with DockerSandbox(workspace, DEFAULT_IMAGE, client=client) as sandbox:
                results[label] = summary(run(sandbox, workspace, data))
        median, p99 = results[label]
        print(f"   {label:40} median {median * 1000:6.2f} ms   p99 {p99 * 1000:6.2f} ms")
    peer = results["minimal loop (peer)"][0]
    for label in list(runs)[:2]:
        print(f"   ratio {label} / peer (median): {results[label][0] / peer:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        workspace, data = Path(tmp) / "repo", Path(tmp) / "data"
        make_repository(workspace)
        with DockerSandbox(workspace, DEFAULT_IMAGE, client=client) as sandbox:
            ponder_run(sandbox, workspace, data, full=True, memory=True)
            for during in ("generation", "a command"):
                latencies = interrupt_latency(sandbox, during)
                median, worst = statistics.median(latencies), max(latencies)
                print(
                    f"   interrupt during {during:10}: median {median:.3f} s, "
                    f"worst {worst:.3f} s of {len(latencies)}"
                )


if __name__ == "__main__":
    main()
