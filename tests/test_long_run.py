"""A 300-step run: it ends on the step limit, and only the transcript grows.

K2 Thinking keeps going for hundreds of tool calls, so anything the runtime keeps per step
(events, loop-guard history, tool state) would add up. Memory is traced with tracemalloc; what
the transcript itself takes is measured by building a fresh copy of it, and the run's memory must
grow by no more than that per step.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from k2text import completion, tool_call

from ponder.model.messages import Message
from ponder.model.scripted import ScriptedBackend
from ponder.runtime.agent_settings import AgentSettings
from ponder.runtime.budgets import Budgets
from ponder.runtime.events import Event, StepFinished
from ponder.runtime.loop import Agent
from ponder.runtime.port import Unattended
from ponder.sandbox.base import Sandbox
from ponder.sandbox.local_sandbox import LocalSandbox


@pytest.fixture(name="sandbox")
def _local(local_sandbox: LocalSandbox) -> LocalSandbox:
    """The loop does not depend on Docker: these tests run on the local backend, in seconds."""
    return local_sandbox


STEPS = 300
FIRST, LAST = 50, 300
"""Memory is compared between these steps."""


def script(count: int) -> list[str]:
    return [
        completion(
            f"Step {i}: look at part {i * 7} next, then decide.",
            tool_call("bash", i, {"command": f"echo part {i * 7}"}),
        )
        for i in range(count)
    ]


def transcript_bytes(messages: list[Message]) -> int:
    """What the transcript takes: the memory a fresh copy of it needs."""
    before = tracemalloc.get_traced_memory()[0]
    copy = [Message.model_validate_json(m.model_dump_json()) for m in messages]
    taken = tracemalloc.get_traced_memory()[0] - before
    del copy
    return taken


def test_300_steps_end_on_the_limit_and_only_the_transcript_grows(
    sandbox: Sandbox,
) -> None:
    agent: Agent | None = None
    total: dict[int, int] = {}
    transcript: dict[int, int] = {}
    last_step = 0

    def emit(event: Event) -> None:
        nonlocal last_step
        if not isinstance(event, StepFinished):
            return
        last_step = event.step
        if event.step in (FIRST, LAST):
            assert agent is not None
            gc.collect()
            total[event.step] = tracemalloc.get_traced_memory()[0]
            transcript[event.step] = transcript_bytes(agent.messages)

    agent = Agent(
        ScriptedBackend(script(STEPS + 5)),
        sandbox,
        settings=AgentSettings(budgets=Budgets(max_steps=STEPS)),
    )
    tracemalloc.start()
    try:
        finished = agent.run("Look at every part.", Unattended(emit))
    finally:
        tracemalloc.stop()

    assert finished.reason == "max_steps"
    assert finished.steps == STEPS == last_step
    assert len(agent.messages) == 2 + 2 * STEPS
    per_step = (total[LAST] - total[FIRST]) / (LAST - FIRST)
    transcript_per_step = (transcript[LAST] - transcript[FIRST]) / (LAST - FIRST)
    print(
        f"memory per step: {per_step:.0f} B; a copy of the transcript {transcript_per_step:.0f} B"
    )
    # A few hundred bytes of slack for allocator noise; keeping any event, output or prompt per
    # step would cost far more.
    assert per_step < transcript_per_step + 256, (per_step, transcript_per_step)
