"""The model's plan (``update_plan``): checked, kept through a summary, and shown everywhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import PONDER
from k2text import completion, tool_call, write_script

from ponder.model.scripted import ScriptedBackend
from ponder.runtime.events import Event, PlanStep, PlanUpdated, ToolCallFinished, event_from_json
from ponder.runtime.loop import Agent
from ponder.runtime.port import Unattended
from ponder.sandbox.local_sandbox import LocalSandbox

PLAN = {
    "explanation": "Reproduce first.",
    "plan": [
        {"step": "Reproduce the failure", "status": "completed"},
        {"step": "Fix the parser", "status": "in_progress"},
        {"step": "Run the tests", "status": "pending"},
    ],
}
TWO_AT_ONCE = {
    "plan": [
        {"step": "a", "status": "in_progress"},
        {"step": "b", "status": "in_progress"},
    ]
}
PLANNED = (
    completion("Plan it.", tool_call("update_plan", 0, PLAN)),
    completion("Both at once.", tool_call("update_plan", 1, TWO_AT_ONCE)),
    completion("Done.", content="Planned."),
)


def test_a_plan_is_checked_and_kept_in_the_task_state(local_sandbox: LocalSandbox) -> None:
    events: list[Event] = []
    agent = Agent(ScriptedBackend(list(PLANNED)), local_sandbox)
    finished = agent.run("fix it", Unattended(events.append))
    assert finished.reason == "answered"
    (plan,) = [e for e in events if isinstance(e, PlanUpdated)]
    assert plan.explanation == "Reproduce first."
    assert plan.plan[1] == PlanStep(step="Fix the parser", status="in_progress")
    bad = [e for e in events if isinstance(e, ToolCallFinished)][1]
    assert not bad.ok
    assert "at most one step can be in_progress" in bad.result
    # What a summary keeps word for word: the newest valid plan.
    described = agent.state.describe()
    assert "- [in_progress] Fix the parser" in described
    assert "- [pending] Run the tests" in described


def run_ponder(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PONDER, *args, "--sandbox", "local"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def test_line_mode_and_json_show_the_plan(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    script = write_script(tmp_path / "plan.jsonl", *PLANNED)
    shown = run_ponder("-p", "-v", "fix it", "--model", f"scripted:{script}",
                       cwd=workspace, env=user_env)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "plan: Reproduce first." in shown.stderr
    assert "✓ Reproduce the failure" in shown.stderr
    assert "▸ Fix the parser" in shown.stderr
    assert "○ Run the tests" in shown.stderr
    assert "at most one step can be in_progress" in shown.stderr  # a refused plan is shown
    as_json = run_ponder("exec", "--json", "fix it", "--model", f"scripted:{script}",
                         cwd=workspace, env=user_env)  # fmt: skip
    events = [event_from_json(line) for line in as_json.stdout.splitlines()]
    (plan,) = [e for e in events if isinstance(e, PlanUpdated)]
    assert [s.status for s in plan.plan] == ["completed", "in_progress", "pending"]
