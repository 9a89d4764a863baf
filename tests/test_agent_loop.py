"""The agent loop on a scripted model and a real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from k2text import completion, tool_call

from ponder.model.scripted import ScriptedBackend
from ponder.runtime.agent_settings import AgentSettings
from ponder.runtime.budgets import Budgets
from ponder.runtime.events import (
    Event,
    FileEdited,
    ReasoningText,
    RunFinished,
    StepStarted,
    ToolCallFinished,
    ToolCallStarted,
    ToolOutput,
    event_from_json,
    event_to_json,
)
from ponder.runtime.loop import Agent
from ponder.runtime.port import Unattended
from ponder.sandbox.base import Sandbox
from ponder.sandbox.local_sandbox import LocalSandbox


@pytest.fixture(name="sandbox")
def _local(local_sandbox: LocalSandbox) -> LocalSandbox:
    """The loop does not depend on Docker: these tests run on the local backend, in seconds."""
    return local_sandbox


def run(sandbox: Sandbox, *completions: str, max_steps: int = 10) -> tuple[Agent, list[Event]]:
    events: list[Event] = []
    agent = Agent(
        ScriptedBackend(completions),
        sandbox,
        settings=AgentSettings(budgets=Budgets(max_steps=max_steps)),
    )
    agent.run("do the task", Unattended(events.append))
    return agent, events


def finished(events: list[Event]) -> RunFinished:
    """The run's ending, without its usage (tests of usage look at it themselves)."""
    last = events[-1]
    assert isinstance(last, RunFinished)
    assert last.usage is not None
    return last.model_copy(update={"usage": None})


def test_a_run_calls_tools_and_feeds_results_back(sandbox: Sandbox, workspace: Path) -> None:
    (workspace / "greet.py").write_text('print("helo")\n')
    agent, events = run(
        sandbox,
        completion("Run it.", tool_call("bash", 0, {"command": "python3 greet.py"})),
        completion(
            "Typo.",
            tool_call(
                "str_replace", 1, {"path": "greet.py", "old_str": "helo", "new_str": "hello"}
            ),
        ),
        completion("Check.", tool_call("bash", 2, {"command": "python3 greet.py"})),
        completion("Works.", content="Fixed the greeting."),
    )
    assert finished(events) == RunFinished(reason="answered", answer="Fixed the greeting.", steps=4)
    assert (workspace / "greet.py").read_text() == 'print("hello")\n'
    outputs = "".join(e.text for e in events if isinstance(e, ToolOutput))
    assert outputs == "helo\nhello\n"
    (edit,) = [e for e in events if isinstance(e, FileEdited)]
    assert edit.path == "greet.py"
    assert '-print("helo")\n+print("hello")\n' in edit.diff
    assert (
        "".join(e.text for e in events if isinstance(e, ReasoningText))
        == "Run it.Typo.Check.Works."
    )

    # The conversation holds every result under the id of the call it answers.
    tool_messages = [m for m in agent.messages if m.role == "tool"]
    assert [m.tool_call_id for m in tool_messages] == [
        "functions.bash:0",
        "functions.str_replace:1",
        "functions.bash:2",
    ]
    assert tool_messages[0].content == "helo\n[exit code 0]"
    assistant = [m for m in agent.messages if m.role == "assistant"]
    assert assistant[0].reasoning == "Run it."
    assert assistant[0].to_openai()["tool_calls"][0]["function"]["arguments"] == (
        '{"command": "python3 greet.py"}'
    )


def test_model_mistakes_go_back_to_the_model_and_the_run_goes_on(sandbox: Sandbox) -> None:
    agent, events = run(
        sandbox,
        completion(
            "Oops.",
            tool_call("bash", 0, '{"command": "ls"'),
            tool_call("teleport", 1, {"to": "mars"}),
            tool_call("view", 2, {"path": "/etc/passwd"}),
            tool_call("bash", 3, {"cmd": "ls"}),
        ),
        completion("Give up.", content="I could not do it."),
    )
    results = [m.content for m in agent.messages if m.role == "tool"]
    assert results[0].startswith("Error: the call to `bash` was not run: arguments are not valid")
    assert results[1].startswith("Error: no tool named `teleport`; tools: bash, view")
    assert results[2] == (
        f"Error: The path /etc/passwd is outside the workspace {sandbox.workdir}; only files "
        "inside it can be used."
    )
    assert results[3] == "Error: parameter `command` is required and must be a string"
    assert finished(events).reason == "answered"
    assert all(not e.ok for e in events if isinstance(e, ToolCallFinished))


def test_submit_ends_the_run(sandbox: Sandbox) -> None:
    _, events = run(
        sandbox,
        completion("Done.", tool_call("submit", 0, {"summary": "Changed nothing."})),
        completion("never reached"),
    )
    assert finished(events) == RunFinished(reason="submitted", answer="Changed nothing.", steps=1)


def test_the_step_limit_ends_the_run(sandbox: Sandbox) -> None:
    loop = completion("Again.", tool_call("bash", 0, {"command": "true"}))
    _, events = run(sandbox, loop, loop, loop, max_steps=2)
    assert finished(events).reason == "max_steps"
    assert [e.step for e in events if isinstance(e, StepStarted)] == [1, 2]


def test_a_backend_failure_ends_the_run_with_its_reason(sandbox: Sandbox) -> None:
    _, events = run(sandbox, completion("Look.", tool_call("bash", 0, {"command": "true"})))
    last = finished(events)
    assert last.reason == "error"
    assert last.error is not None
    assert "no completion left for step 2" in last.error


def test_every_event_survives_json(sandbox: Sandbox) -> None:
    _, events = run(
        sandbox,
        completion("a", tool_call("bash", 0, {"command": "echo hi > f.txt; cat f.txt"})),
        completion(
            "b", tool_call("str_replace", 1, {"path": "f.txt", "old_str": "hi", "new_str": "ho"})
        ),
        completion("c", content="done"),
    )
    kinds = {type(e) for e in events}
    assert {ToolCallStarted, ToolOutput, ToolCallFinished, FileEdited} <= kinds
    # An edit's whole file texts are for clients in this process only (ACP); the JSON (session
    # files, --json) keeps the diff alone.
    (edited,) = [e for e in events if isinstance(e, FileEdited)]
    assert edited.texts is not None
    assert "texts" not in event_to_json(edited)
    in_memory_only = [e.model_copy(update={"texts": None}) if e is edited else e for e in events]
    assert [event_from_json(event_to_json(e)) for e in events] == in_memory_only


def test_a_run_on_llama_cpp(tiny_k2: Path, sandbox: Sandbox, workspace: Path) -> None:
    """Real llama.cpp, real sandbox: the tiny K2 asks for `ls` every step."""
    from ponder.model.llamacpp import LlamaCppBackend
    from ponder.model.options import LlamaOptions
    from ponder.runtime.events import UsageReported

    (workspace / "hello.txt").write_text("hi\n")
    events: list[Event] = []
    backend = LlamaCppBackend(tiny_k2, LlamaOptions(context_size=8192))
    agent = Agent(backend, sandbox, settings=AgentSettings(budgets=Budgets(max_steps=2)))
    agent.run("what is here?", Unattended(events.append))
    backend.close()
    assert finished(events).reason == "max_steps"
    assert "".join(e.text for e in events if isinstance(e, ToolOutput)) == "hello.txt\nhello.txt\n"
    usages = [e for e in events if isinstance(e, UsageReported)]
    assert len(usages) == 2
    assert usages[1].cached_tokens >= usages[0].prompt_tokens


def test_the_reasoning_budget_makes_a_local_model_act(tiny_k2: Path, sandbox: Sandbox) -> None:
    """Past its budget the reasoning is closed with </think>; the model goes on to act."""
    from ponder.model.llamacpp import LlamaCppBackend
    from ponder.model.options import LlamaOptions
    from ponder.runtime.events import ReasoningBudgetReached

    backend = LlamaCppBackend(tiny_k2, LlamaOptions(context_size=8192))
    events: list[Event] = []
    settings = AgentSettings(budgets=Budgets(max_steps=1, max_reasoning_tokens=2))
    agent = Agent(backend, sandbox, settings=settings)
    agent.run("what is here?", Unattended(events.append))
    backend.close()
    assert [e.tokens for e in events if isinstance(e, ReasoningBudgetReached)] == [2]
    (assistant,) = [m for m in agent.messages if m.role == "assistant"]
    # Without the budget it would have been "Let me look. First, then act."
    assert assistant.reasoning == "Let me look. First,"
    assert assistant.content == "Looking."
    assert [c.name for c in assistant.tool_calls] == ["bash"]
