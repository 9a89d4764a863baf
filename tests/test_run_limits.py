"""What keeps a long run on track: budgets, the loop guard, context management, interrupts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from k2text import completion, tool_call

from ponder.model.backend import ChatBackend
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.options import LlamaOptions
from ponder.model.scripted import ScriptedBackend
from ponder.runtime.agent_settings import AgentSettings
from ponder.runtime.budgets import Budgets
from ponder.runtime.context import ContextSettings
from ponder.runtime.events import (
    ContextCompacted,
    Event,
    LoopDetected,
    ReasoningText,
    RunFinished,
    ToolCallFinished,
    ToolCallStarted,
    UsageReported,
)
from ponder.runtime.loop import Agent
from ponder.runtime.port import Unattended
from ponder.sandbox.base import Sandbox
from ponder.sandbox.local_sandbox import LocalSandbox


@pytest.fixture(name="sandbox")
def _local(local_sandbox: LocalSandbox) -> LocalSandbox:
    """The loop does not depend on Docker: these tests run on the local backend, in seconds."""
    return local_sandbox


def agent_for(backend: ChatBackend, sandbox: Sandbox, **settings: object) -> Agent:
    return Agent(backend, sandbox, settings=AgentSettings(**settings))  # type: ignore[arg-type]


def last(events: list[Event]) -> RunFinished:
    finished = events[-1]
    assert isinstance(finished, RunFinished)
    return finished


def steps(count: int, reasoning: str = "Next.", output: int = 10) -> list[str]:
    """Steps that each run a different command printing ``output`` characters."""
    return [
        completion(
            f"{reasoning} ({i})",
            tool_call(
                "bash",
                i,
                {"command": f"head -c {output} /dev/zero | tr '\\0' {chr(97 + i % 26)}; echo"},
            ),
        )
        for i in range(count)
    ]


def test_token_and_time_budgets_end_the_run(sandbox: Sandbox) -> None:
    events: list[Event] = []
    agent = agent_for(ScriptedBackend(steps(20)), sandbox, budgets=Budgets(max_tokens=200))
    finished = agent.run("go", Unattended(events.append))
    assert finished.reason == "token_budget"
    assert 1 < finished.steps < 20
    events.clear()
    # 50 steps of at least 0.1 s each cannot all fit in the 1-second limit, however fast the
    # machine (steps that took no time could all finish before the clock ran out).
    slow = [
        completion(f"Next ({i}).", tool_call("bash", i, {"command": f"sleep 0.1; echo {i}"}))
        for i in range(50)
    ]
    agent = agent_for(ScriptedBackend(slow), sandbox, budgets=Budgets(time_limit=1))
    finished = agent.run("go", Unattended(events.append))
    assert finished.reason == "time_limit", finished.error
    # Everything done before the limit is kept.
    assert len([m for m in agent.messages if m.role == "tool"]) == finished.steps


def test_budgets_hold_inside_one_step(sandbox: Sandbox, tiny_k2: Path) -> None:
    """A command that runs for minutes, or a model that never stops talking, cannot carry a
    run past its wall clock or its token budget."""
    events: list[Event] = []
    waits = completion("Wait.", tool_call("bash", 0, {"command": "sleep 300"}))
    agent = agent_for(ScriptedBackend([waits]), sandbox, budgets=Budgets(time_limit=1))
    assert (
        agent.run("go", Unattended(events.append)).reason == "time_limit"
    )  # after about a second, not 300
    (done,) = [e for e in events if isinstance(e, ToolCallFinished)]
    assert done.interrupted

    events.clear()
    model = LlamaCppBackend(tiny_k2, LlamaOptions(context_size=8192))
    agent = agent_for(model, sandbox, budgets=Budgets(max_tokens=5))
    finished = agent.run("list the files", Unattended(events.append))
    (usage,) = [e for e in events if isinstance(e, UsageReported)]
    assert usage.completion_tokens == 5  # the step stopped at the budget, mid-answer
    assert finished.reason == "token_budget"
    model.close()


def test_the_same_call_is_nudged_then_stopped(sandbox: Sandbox) -> None:
    same = completion("Check again.", tool_call("bash", 0, {"command": "git status"}))
    events: list[Event] = []
    agent = agent_for(ScriptedBackend([same] * 10), sandbox)
    assert agent.run("check", Unattended(events.append)).reason == "loop"
    loops = [(e.kind, e.repeats, e.action) for e in events if isinstance(e, LoopDetected)]
    assert loops == [("repeated_call", 3, "nudge"), ("repeated_call", 5, "stop")]
    results = [m.content for m in agent.messages if m.role == "tool"]
    assert "same call 3 times in a row" in results[2]
    assert "same call" not in results[1]


def test_repeating_reasoning_is_nudged(sandbox: Sandbox) -> None:
    text = "I think the bug is in the parser, so I will look at the parser file again now."
    lines = [completion(text, tool_call("bash", i, {"command": f"echo {i}"})) for i in range(3)] + [
        completion("Done.", content="ok")
    ]
    events: list[Event] = []
    agent_for(ScriptedBackend(lines), sandbox).run("debug", Unattended(events.append))
    assert [(e.kind, e.action) for e in events if isinstance(e, LoopDetected)] == [
        ("repeated_reasoning", "nudge")
    ]


def test_old_tool_outputs_are_hidden_when_the_context_fills(sandbox: Sandbox) -> None:
    events: list[Event] = []
    backend = ScriptedBackend(
        [*steps(8, output=3000), completion("Done.", content="ok")], context_size=6000
    )
    agent = agent_for(backend, sandbox, context=ContextSettings(keep_recent_outputs=2))
    assert agent.run("read things", Unattended(events.append)).reason == "answered"
    compactions = [e for e in events if isinstance(e, ContextCompacted)]
    assert compactions
    assert {c.kind for c in compactions} == {"hide_outputs"}
    assert all(c.tokens_after <= 0.85 * 6000 for c in compactions)
    outputs = [m.content for m in agent.messages if m.role == "tool"]
    assert outputs[0].startswith("[output hidden to save context (3")
    assert outputs[-1].startswith("h" * 3000)  # the latest outputs are kept whole
    assert backend.count_tokens(agent.messages, agent.schemas) <= 6000


def test_long_reasoning_is_summarised_and_the_task_kept(sandbox: Sandbox) -> None:
    events: list[Event] = []
    # Reasoning stays in the prompt within a tool loop, and hiding outputs cannot shrink it.
    lines = steps(12, reasoning="Thinking about the next thing to try. " * 40)
    backend = ScriptedBackend([*lines, completion("Done.", content="ok")], context_size=5000)
    agent = agent_for(backend, sandbox)
    finished = agent.run("THE-TASK: keep going", Unattended(events.append))
    summaries = [e for e in events if isinstance(e, ContextCompacted) and e.kind == "summary"]
    assert summaries
    # The summary is a model call of its own: it used one of the scripted completions.
    assert (finished.reason, finished.steps) == ("answered", len(lines) + 1 - len(summaries))
    after = summaries[0].messages
    assert after[1] == {"role": "user", "content": "THE-TASK: keep going"}
    carried = after[2]["content"]
    assert "The earlier steps of this task were summarised" in carried
    assert "Task: THE-TASK: keep going" in carried
    assert summaries[0].tokens_after <= 0.85 * 5000
    # What the summaries generated counts in the run's usage, beside the steps' own.
    steps_used = sum(e.completion_tokens for e in events if isinstance(e, UsageReported))
    assert finished.usage is not None
    assert finished.usage.completion_tokens > steps_used


def test_an_interrupt_stops_generation_and_the_session_goes_on(sandbox: Sandbox) -> None:
    thought = "Thinking slowly " + "and carefully " * 200
    slow = completion(thought, tool_call("bash", 0, {"command": "ls"}))
    backend = ScriptedBackend(
        [slow, completion("Resumed.", content="continuing")], chunk_delay=0.01
    )
    events: list[Event] = []
    agent = agent_for(backend, sandbox)
    threading.Timer(0.5, agent.interrupt).start()
    finished = agent.run("think", Unattended(events.append))
    assert finished.reason == "interrupted"
    partial = "".join(e.text for e in events if isinstance(e, ReasoningText))
    assert partial.startswith("Thinking slowly")
    assert len(partial) < len(thought)  # cut short, and the call after it never ran
    assert not [e for e in events if isinstance(e, ToolCallFinished)]
    assistant = agent.messages[-1]
    assert (assistant.role, assistant.reasoning, assistant.tool_calls) == ("assistant", partial, [])
    assert agent.run("carry on", Unattended(events.append)).answer == "continuing"


def test_an_interrupt_stops_a_running_command(sandbox: Sandbox, workspace: Path) -> None:
    lines = [
        completion("Wait.", tool_call("bash", 0, {"command": "echo begun; sleep 7105"})),
        completion("Then.", content="after"),
    ]
    events: list[Event] = []
    agent = agent_for(ScriptedBackend(lines), sandbox)
    threading.Timer(1.0, agent.interrupt).start()
    assert agent.run("wait", Unattended(events.append)).reason == "interrupted"
    (done,) = [e for e in events if isinstance(e, ToolCallFinished)]
    assert done.result.startswith("begun\n")
    assert done.result.endswith("[the user interrupted the command]")
    left = sandbox.exec("ps -eo args | grep -c '^[s]leep 7105$' || true", 10).output.strip()
    assert left == "0"


def test_an_interrupt_as_a_call_starts_shows_the_call_interrupted(sandbox: Sandbox) -> None:
    """Ctrl-C right after the call is shown, before its command runs: the call still ends as
    interrupted, the words both frontends show, not as a plain failure."""
    lines = [completion("Wait.", tool_call("bash", 0, {"command": "echo never"}))]
    events: list[Event] = []
    agent = agent_for(ScriptedBackend(lines), sandbox)

    def interrupt_at_the_call(event: Event) -> None:
        events.append(event)
        if isinstance(event, ToolCallStarted):
            agent.interrupt()

    assert agent.run("wait", Unattended(interrupt_at_the_call)).reason == "interrupted"
    (done,) = [e for e in events if isinstance(e, ToolCallFinished)]
    assert (done.interrupted, done.result) == (True, "[not run: the user interrupted]")
