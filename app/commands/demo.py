"""``ponder demo``: ponder's main job, end to end, without model weights.

A small repository with a real bug is copied to a temporary directory, and a recorded K2
trajectory drives the real agent loop in a real Docker sandbox: the tests fail for real, the fix
is applied for real, and the tests pass for real. Only the model is replayed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import replace
from importlib import resources
from pathlib import Path

from ponder.app.config import Config
from ponder.app.frontends.choose import Frontend, run_line
from ponder.app.sandboxes import sandbox_session
from ponder.model.scripted import ScriptedBackend
from ponder.runtime.agent_settings import AgentSettings
from ponder.runtime.budgets import Budgets
from ponder.runtime.checkpoints import Checkpoints
from ponder.runtime.host_git import run_git
from ponder.runtime.loop import Agent
from ponder.sandbox.safe_text import safe_text

TASK = "The test suite of this project fails. Find the bug and fix it."
_ASSETS = resources.files("ponder.app") / "demo_assets"


def prepare_repository() -> Path:
    """Copy the example repository to a new temporary directory and commit it."""
    target = Path(tempfile.mkdtemp(prefix="ponder-demo-")) / "tinystats"
    with resources.as_file(_ASSETS / "repo") as source:
        shutil.copytree(source, target)
    identity = {
        "GIT_AUTHOR_NAME": "ponder demo",
        "GIT_AUTHOR_EMAIL": "demo@ponder.invalid",
        "GIT_COMMITTER_NAME": "ponder demo",
        "GIT_COMMITTER_EMAIL": "demo@ponder.invalid",
    }
    run_git("init", "--quiet", cwd=target)
    run_git("add", "--all", cwd=target)
    run_git("commit", "--quiet", "-m", "tinystats: mean and median", cwd=target, env=identity)
    return target


def offline(config: Config) -> Config:
    """``config`` with the sandbox's network off (the demo never needs one)."""
    return replace(config, session=replace(config.session, network=False))


def run_demo(frontend: Frontend, config: Config, chunk_delay: float) -> int:
    workspace = prepare_repository()
    with resources.as_file(_ASSETS / "trajectory.jsonl") as script:
        backend = ScriptedBackend.from_file(script, chunk_delay=chunk_delay)
    with (
        sandbox_session(
            replace(config, session=replace(config.session, network=False)), workspace
        ) as sandbox,
        Checkpoints(  # the demo's own store, beside the copy: nothing of the user's
            workspace, "demo", workspace.parent / "checkpoints", busy=sandbox.background_jobs
        ) as checkpoints,
    ):
        agent = Agent(
            backend,
            sandbox,
            settings=AgentSettings(budgets=Budgets(max_steps=20)),
            checkpoints=checkpoints,
        )
        if frontend == "tui":
            from ponder.app.frontends.tui.launch import run_tui  # Textual: only the TUI pays

            finished = run_tui(
                agent.run,
                interrupt=agent.interrupt,
                model=backend.name,
                first_task=TASK,
                interactive=False,
                notes=sandbox.notes,
            )
        else:  # the recorded model asks for nothing that needs approval
            finished = run_line(
                agent.run,
                interrupt=agent.interrupt,
                unattended="deny",
                first_task=TASK,
                notes=sandbox.notes,
            )
    diff = safe_text(run_git("diff", "--no-ext-diff", "--no-textconv", cwd=workspace).decode())
    out = sys.stdout
    out.write("\nThe change ponder made:\n" + (diff or "(no change)") + "\n")
    out.write(f"\nThe fixed copy is at {workspace}\n")
    out.flush()
    return 0 if finished is not None and finished.reason == "answered" else 1
