"""Snapshots of the TUI's main states, in each shipped theme (pytest-textual-snapshot).

A failing snapshot writes a report to open in a browser; after a deliberate change of the
looks, accept the new pictures with `./check.sh tests/test_tui_snapshots.py --snapshot-update`
and look at them before committing. The spinner is stopped so each picture is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_script import FakeRun, answer, command, edit, reasoning, started, usage

from ponder.app.frontends.tui.app import PonderApp
from ponder.app.frontends.tui.prompt import PromptArea
from ponder.runtime.events import ApprovalRequested, Event, PlanStep, PlanUpdated

SIZE = (100, 34)
Compare = Callable[..., bool]

THOUGHT = (
    "The failing test is test_median_even. For an even number of values the median is the mean "
    "of the two middle ones, but median() returns ordered[middle]. "
)


class StillApp(PonderApp):
    def _spin(self) -> None:
        """No spinner: a picture must not depend on the moment it is taken."""


def app_for(run: FakeRun, theme: str = "ponder-dark") -> PonderApp:
    app = StillApp(run, model="scripted:test", interrupt=run.interrupt, task="fix the median")
    app._theme_name = theme
    return app


async def steady(pilot: Pilot[Any]) -> None:
    for prompt in pilot.app.query(PromptArea):
        prompt.cursor_blink = False
    for _ in range(5):
        await pilot.pause(0.05)


def finished_run() -> list[Event]:
    return [
        *started(),
        *reasoning(1, THOUGHT),
        *command(1, 0, "F..\nFAILED test_stats.py::test_median_even\n1 failed, 2 passed\n", 1),
        *reasoning(2, "Fix the even case."),
        *edit(2, 1),
        usage(2),
        *answer(3, "Fixed `median()`: it now averages the **two middle values**."),
    ]


def test_reasoning_streaming(snap_compare: Compare) -> None:
    run = FakeRun([*started(), *reasoning(1, THOUGHT * 3)])
    assert snap_compare(app_for(run), terminal_size=SIZE, run_before=steady)
    run.release()


def test_tool_running(snap_compare: Compare) -> None:
    output = "".join(f"test_{i}.py ....\n" for i in range(8))
    run = FakeRun([*started(), *reasoning(1, "Run the tests."), *command(1, 0, output, None)])
    assert snap_compare(app_for(run), terminal_size=SIZE, run_before=steady)
    run.release()


def test_approval(snap_compare: Compare) -> None:
    request = ApprovalRequested(
        call_id="functions.bash:0",
        name="bash",
        summary="git reset --hard HEAD~1",
        reason="`git reset --hard` can destroy work in your repository",
        prefix="git reset --hard",
    )
    run = FakeRun([*started(), *reasoning(1, "Start over.")], approval=request)
    assert snap_compare(app_for(run), terminal_size=SIZE, run_before=steady)
    run.release()


def test_the_plan_stays_above_the_prompt(snap_compare: Compare) -> None:
    """The newest plan replaces the last one in place, as a checklist; it is not a card."""
    steps = ["Reproduce the failure", "Fix median() for even counts", "Run the tests"]

    def plan(*statuses: str) -> PlanUpdated:
        return PlanUpdated(
            call_id="functions.update_plan:0",
            plan=[
                PlanStep.model_validate({"step": s, "status": t})
                for s, t in zip(steps, statuses, strict=True)
            ],
        )

    events = [*started(), *reasoning(1, "Plan."), plan("in_progress", "pending", "pending")]
    events += [*command(1, 0, "1 failed\n", 1), plan("completed", "in_progress", "pending")]
    run = FakeRun(events)
    assert snap_compare(app_for(run), terminal_size=SIZE, run_before=steady)
    run.release()


@pytest.mark.parametrize("theme", ["ponder-dark", "ponder-light", "ponder-high-contrast"])
def test_a_finished_run_in_each_theme(snap_compare: Compare, theme: str) -> None:
    """Folded reasoning, a failed command, a diff, the answer and the status line."""
    run = FakeRun(finished_run(), hold=False)
    assert snap_compare(app_for(run, theme), terminal_size=SIZE, run_before=steady)
