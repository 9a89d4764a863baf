"""Heavy mode: three trajectories in their own copy-mode sandboxes, then one aggregated result."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
from conftest import PONDER
from k2text import completion, tool_call, write_script

from ponder.model.deltas import Delta
from ponder.model.messages import Message, ToolSchema
from ponder.model.options import GenerationSettings
from ponder.model.scripted import ScriptedBackend
from ponder.runtime.events import Event, RunFinished
from ponder.runtime.heavy import CopySandbox, run_heavy
from ponder.sandbox.docker_sandbox import DockerSandbox

BUGGY = "def add(a, b):\n    return a - b\n"


def edit(index: int, new: str) -> str:
    return completion(
        "Change the operator.",
        tool_call("str_replace", index, {"path": "calc.py", "old_str": "a - b", "new_str": new}),
    )


TRAJECTORIES = [
    edit(0, "a * b"),
    completion("Tried.", content="I used multiplication."),
    edit(0, "a + b"),
    completion("Fixed.", content="I used addition."),
    completion("Looks fine to me.", content="Nothing to change."),
]
AGGREGATION = completion("Attempt 2 passes its test.", content="Use addition.\nCHOSEN: 2")


class Recording(ScriptedBackend):
    """The scripted backend, remembering every conversation it was asked to continue."""

    def __init__(self, completions: Sequence[str]) -> None:
        super().__init__(completions)
        self.asked: list[list[Message]] = []

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSchema],
        settings: GenerationSettings,
        cancel: object = None,
    ) -> Iterator[Delta]:
        self.asked.append(list(messages))
        return super().stream(messages, tools, settings)


def test_three_trajectories_and_one_answer(
    workspace: Path, sandbox_image: str, docker_client: docker.DockerClient
) -> None:
    (workspace / "calc.py").write_text(BUGGY)
    backend = Recording([*TRAJECTORIES, AGGREGATION])

    @contextmanager
    def sandbox_for(number: int) -> Iterator[CopySandbox]:
        with DockerSandbox(workspace, sandbox_image, mode="copy", client=docker_client) as box:
            yield box

    events: list[Event] = []
    result = run_heavy(
        "add() is wrong; fix it",
        3,
        backend_for=lambda number: backend,
        sandbox_for=sandbox_for,
        emit=events.append,
        test_command="python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo PASSED",
    )
    assert [t.finished.reason for t in result.trajectories] == ["answered"] * 3
    assert "+    return a * b" in result.trajectories[0].diff
    assert result.trajectories[2].diff == ""
    assert result.chosen == 2
    assert "+    return a + b" in result.diff
    assert result.answer == "Use addition."
    assert (workspace / "calc.py").read_text() == BUGGY  # the trajectories worked on copies
    finished = [e for e in events if isinstance(e, RunFinished)]
    # Heavy mode ends as one run: after the trajectories', its own ending, the judge counted.
    assert [e.trajectory for e in finished] == [1, 2, 3, None]
    assert finished[-1] == result.finished
    assert (result.finished.reason, result.finished.answer) == ("answered", "Use addition.")
    assert result.finished.steps == sum(t.finished.steps for t in result.trajectories) + 1
    used = [t.finished.usage.completion_tokens for t in result.trajectories if t.finished.usage]
    assert result.finished.usage is not None
    assert result.finished.usage.completion_tokens > sum(used)
    prompt = backend.asked[-1][-1].content
    assert "## Attempt 1" in prompt
    assert "## Attempt 3" in prompt
    assert "(no changes)" in prompt
    attempt_2 = prompt.split("## Attempt 2")[1].split("## Attempt 3")[0]
    assert "exit code 0\nPASSED" in attempt_2


@pytest.mark.usefixtures("sandbox_image")
def test_heavy_on_the_command_line_keeps_the_chosen_changes(
    workspace: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    (workspace / "calc.py").write_text(BUGGY)
    script = tmp_path / "heavy.jsonl"
    write_script(script, *TRAJECTORIES, AGGREGATION)
    result = subprocess.run(
        [PONDER, "--plain", "--heavy", "3", "--model", f"scripted:{script}", "fix add()"],
        env=user_env,
        cwd=workspace,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "kept the changes of trajectory 2" in result.stderr
    assert (workspace / "calc.py").read_text() == BUGGY.replace("a - b", "a + b")


@pytest.mark.usefixtures("sandbox_image")
def test_heavy_keeps_what_the_files_say_and_undo_takes_it_back(
    workspace: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    # Issue 22, 7: the diff came from git in the container, whose config the model wrote, and
    # what heavy mode applied was in no checkpoint.
    (workspace / "calc.py").write_text(BUGGY)
    forged = "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n"
    forged += "+    import os; os.system('id')\n"
    attack = (
        f"printf '%s' '{forged}' > /tmp/forged.diff\n"
        "printf '#!/bin/sh\\ncat /tmp/forged.diff\\n' > /tmp/ext.sh && chmod +x /tmp/ext.sh\n"
        "git init -q && git config diff.external /tmp/ext.sh && git config core.pager /tmp/ext.sh"
    )
    script = tmp_path / "heavy.jsonl"
    write_script(
        script,
        completion("Prepare.", tool_call("bash", 0, {"command": attack})),
        edit(1, "a + b"),
        completion("Fixed.", content="I used addition."),
        completion("The one attempt works.", content="Use addition.\nCHOSEN: 1"),
    )
    ran = subprocess.run(
        [PONDER, "--plain", "--heavy", "1", "--model", f"scripted:{script}", "fix add()"],
        env=user_env, cwd=workspace, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert (workspace / "calc.py").read_text() == BUGGY.replace("a - b", "a + b")
    assert "`ponder undo` takes them back" in ran.stderr
    shown = subprocess.run(
        [PONDER, "diff"], env=user_env, cwd=workspace, capture_output=True, text=True, check=False
    )
    assert "+    return a + b" in shown.stdout, shown.stderr
    undone = subprocess.run(
        [PONDER, "undo"], env=user_env, cwd=workspace, capture_output=True, text=True, check=False
    )
    assert undone.returncode == 0, undone.stderr
    assert (workspace / "calc.py").read_text() == BUGGY
