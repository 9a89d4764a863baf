"""Heavy mode: N independent trajectories, then one step that reads them all and decides.

Each trajectory is a full agent run in its own copy-mode sandbox, so they cannot disturb each
other or the user's files. On a remote backend they run at once; on one local model they run one
after another (sharing the prompt prefix in the KV cache). The aggregation step reads every
trajectory's answer, diff and (when a test command is known) test result, gives the final
answer and names the trajectory whose changes to keep.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

from ponder.model.backend import ChatBackend
from ponder.model.messages import Message
from ponder.runtime.agent_settings import AgentSettings
from ponder.runtime.budgets import start_clock
from ponder.runtime.copy_diff import CopySandbox, copy_diff
from ponder.runtime.events import Emit, Event, RunFinished
from ponder.runtime.loop import Agent
from ponder.runtime.port import Unattended
from ponder.runtime.reply import read_reply
from ponder.runtime.usage import UsageTotals

DIFF_SHOWN = 20_000
TESTS_SHOWN = 4_000
_CHOSEN_RE = re.compile(r"^\s*CHOSEN:\s*(none|\d+)\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Trajectory:
    number: int
    finished: RunFinished
    diff: str
    tests: str | None


@dataclass(frozen=True)
class HeavyResult:
    trajectories: list[Trajectory]
    answer: str
    chosen: int | None
    """The trajectory whose changes to keep (None: none of them)."""
    diff: str
    finished: RunFinished
    """The whole of heavy mode as one run: every trajectory's steps and usage, and the
    judge's (also sent as the last event, outside any trajectory)."""


def _tagged(emit: Emit, number: int | None) -> Emit:
    def forward(event: Event) -> None:
        emit(event.model_copy(update={"trajectory": number}))

    return forward


def _run_one(
    number: int,
    task: str,
    backend: ChatBackend,
    sandbox_for: Callable[[int], AbstractContextManager[CopySandbox]],
    emit: Emit,
    settings: AgentSettings,
    test_command: str | None,
) -> Trajectory:
    with sandbox_for(number) as sandbox:
        agent = Agent(backend, sandbox, settings=settings)
        finished = agent.run(task, Unattended(_tagged(emit, number)))
        tests = None
        if test_command:
            result = sandbox.exec(test_command, timeout=600)
            tests = f"exit code {result.exit_code}\n{result.output[-TESTS_SHOWN:]}"
        return Trajectory(number, finished, copy_diff(sandbox), tests)


def aggregation_prompt(task: str, trajectories: list[Trajectory], test_command: str | None) -> str:
    parts = [f"You made {len(trajectories)} independent attempts at this task.\n\nTask: {task}\n"]
    for t in trajectories:
        parts.append(
            f"## Attempt {t.number}\nIt ended ({t.finished.reason}) after {t.finished.steps} "
            f"steps.\nIts answer:\n{t.finished.answer or '(none)'}\n\nIts changes:\n```diff\n"
            f"{t.diff[:DIFF_SHOWN] or '(no changes)'}\n```\n"
        )
        if t.tests is not None:
            parts.append(f"The tests (`{test_command}`) after it: {t.tests}\n")
    parts.append(
        "Compare the attempts: which one solves the task best? Give the final answer to the "
        "task, and end with one line `CHOSEN: N` naming the attempt whose changes should be "
        "kept, or `CHOSEN: none` if none should."
    )
    return "\n".join(parts)


def run_heavy(
    task: str,
    count: int,
    *,
    backend_for: Callable[[int], ChatBackend],
    sandbox_for: Callable[[int], AbstractContextManager[CopySandbox]],
    emit: Emit,
    settings: AgentSettings | None = None,
    concurrent: bool = False,
    test_command: str | None = None,
    cancel: threading.Event | None = None,
) -> HeavyResult:
    """``backend_for(n)`` gives trajectory n's backend (0 is the aggregation's); ``cancel``
    stops the judge's generation."""
    settings = settings or AgentSettings()
    started = time.monotonic()

    def one(number: int) -> Trajectory:
        return _run_one(
            number, task, backend_for(number), sandbox_for, emit, settings, test_command
        )

    numbers = range(1, count + 1)
    if concurrent:
        with ThreadPoolExecutor(max_workers=count) as pool:
            trajectories = list(pool.map(one, numbers))
    else:
        trajectories = [one(number) for number in numbers]

    messages = [
        Message(role="system", content="You review attempts at a coding task and pick the best."),
        Message(role="user", content=aggregation_prompt(task, trajectories, test_command)),
    ]
    forward = _tagged(emit, None)
    judge = backend_for(0)
    generation = replace(  # the judge works under a step's caps, with the user's sampling
        settings.generation,
        max_reasoning_tokens=settings.budgets.max_reasoning_tokens,
        max_new_tokens=settings.generation.max_new_tokens or settings.budgets.max_tokens,
    )
    steps = sum(t.finished.steps for t in trajectories) + 1
    stop = cancel or threading.Event()
    clock = start_clock(settings.budgets.time_limit, stop.set)  # the judge's own time limit
    try:
        deltas = judge.stream(messages, [], generation, stop)
        reply = read_reply(deltas, steps, forward, judge.context_size)
    finally:
        if clock is not None:
            clock.cancel()
    text = reply.content
    match = _CHOSEN_RE.search(text)
    chosen = int(match.group(1)) if match and match.group(1).isdigit() else None
    if reply.cancelled or (chosen is not None and not 1 <= chosen <= count):
        chosen = None
    answer = _CHOSEN_RE.sub("", text).strip()
    totals = UsageTotals()
    for trajectory in trajectories:
        if trajectory.finished.usage is not None:
            totals.add(trajectory.finished.usage)
    if reply.usage is not None:
        totals.add(reply.usage)
    finished = RunFinished(
        reason="interrupted" if reply.cancelled else "answered",
        answer=answer,
        steps=steps,
        usage=totals.report(time.monotonic() - started, settings.prices),
    )
    forward(finished)
    diff = trajectories[chosen - 1].diff if chosen else ""
    return HeavyResult(trajectories, answer, chosen, diff, finished)
