"""A session as the CLI runs it: backend, sandbox, agent, session file and checkpoints together.

The frontends only display events and answer approvals; everything a session keeps (the
conversation, the session file, the checkpoints) lives here, so the TUI, line mode and headless
runs behave the same.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

from ponder.app.config import Config
from ponder.app.exit_codes import UsageError
from ponder.app.sandboxes import sandbox_session
from ponder.model.backend import ChatBackend, open_backend
from ponder.model.messages import Message
from ponder.runtime.approvals import ApprovalPolicy, Approver
from ponder.runtime.budgets import Budgets
from ponder.runtime.checkpoints import CheckpointError, Checkpoints
from ponder.runtime.context import ContextSettings
from ponder.runtime.events import CheckpointsOff, Emit, Event, RunFinished
from ponder.runtime.loop import Agent, AgentSettings
from ponder.runtime.sessions import (
    SessionRecorder,
    find_session,
    read_session,
    restore_messages,
    sessions_dir,
    skipped_warning,
)
from ponder.sandbox.base import Sandbox

NEW_REPOSITORY = (
    "the model made a git repository in {workspace} (.git); its config and hooks were written "
    "in the sandbox and git runs them: look at .git/config and .git/hooks before you use git "
    "there"
)


def agent_settings(config: Config) -> AgentSettings:
    return AgentSettings(
        budgets=Budgets(
            max_steps=config.max_steps,
            reasoning_tokens_per_step=config.max_reasoning_tokens,
            total_tokens=config.max_tokens,
            wall_clock_s=config.time_limit,
        ),
        generation=config.sampling.generation(),
        context=ContextSettings(threshold=config.context_threshold),
    )


def approval_policy(config: Config) -> ApprovalPolicy:
    return ApprovalPolicy(
        mode=config.approval,
        allow=list(config.allow),
        deny=list(config.deny),
        network=config.network,
    )


def checkpoint_store() -> Path:
    return platformdirs.user_data_path("ponder") / "checkpoints"


class Session:
    """One conversation in one workspace; :meth:`run` takes the next task."""

    def __init__(
        self,
        config: Config,
        workspace: Path,
        backend: ChatBackend,
        sandbox: Sandbox,
        approver: Approver | None,
        resume: str | None = None,
    ) -> None:
        messages: list[Message] = []
        session_id = None
        if resume is not None:
            found = find_session(resume or None)
            if found is None:
                raise UsageError(
                    f"no session {resume or '(none yet)'} to resume; see `ponder sessions`"
                )
            _, events, skipped = read_session(found.path)
            if skipped:
                print(f"ponder: warning: {skipped_warning(found.path, skipped)}", file=sys.stderr)
            messages = restore_messages(events)
            session_id = found.id
        self.workspace = workspace
        self._had_git = os.path.lexists(workspace / ".git")
        self.config = config
        self.recorder = SessionRecorder(
            sessions_dir(),
            {
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "workspace": str(workspace),
                "model": backend.name,
            },
            session_id,
        )
        checkpoints: Checkpoints | None = None
        self.checkpoints_off: str | None = None
        """Why this session has no checkpoints (None while it has them)."""
        try:
            checkpoints = Checkpoints(workspace, self.recorder.id, checkpoint_store())
        except CheckpointError as error:  # the session goes on without them, and says so
            self.checkpoints_off = str(error)
        self._announce_checkpoints_off = self.checkpoints_off is not None
        self._checkpoints = checkpoints
        self.display: Emit = lambda event: None
        self.agent = Agent(
            backend,
            sandbox,
            self._emit,
            settings=agent_settings(config),
            policy=approval_policy(config),
            approver=approver,
            checkpoints=checkpoints,
            messages=messages,
        )

    @property
    def id(self) -> str:
        return self.recorder.id

    def _emit(self, event: Event) -> None:
        if isinstance(event, CheckpointsOff):
            self.checkpoints_off = event.reason
        self.recorder(event)
        self.display(event)

    def switch_model(self, spec: str) -> None:
        """Go on with another model (the conversation is kept)."""
        backend = open_backend(
            spec, llama=self.config.llama.options(), openai=self.config.openai.options()
        )
        old, self.agent.backend = self.agent.backend, backend
        old.close()

    def run(self, task: str, display: Emit) -> RunFinished:
        self.display = display
        if self._announce_checkpoints_off and self.checkpoints_off is not None:
            self._emit(CheckpointsOff(reason=self.checkpoints_off))  # told once, at the first task
            self._announce_checkpoints_off = False
        return self.agent.run(task)

    def interrupt(self) -> None:
        self.agent.interrupt()

    def close(self) -> None:
        self.recorder.close()
        if self._checkpoints is not None:
            self._checkpoints.close()
        if not self._had_git and os.path.lexists(self.workspace / ".git"):
            print(
                f"ponder: warning: {NEW_REPOSITORY.format(workspace=self.workspace)}",
                file=sys.stderr,
            )


@contextmanager
def open_session(
    config: Config, workspace: Path, approver: Approver | None, resume: str | None = None
) -> Iterator[Session]:
    """Backend, sandbox and session, all released when the block ends however it ends."""
    if not config.model:
        raise UsageError("no model configured")
    backend = open_backend(
        config.model, llama=config.llama.options(), openai=config.openai.options()
    )
    try:
        with sandbox_session(config, workspace) as sandbox:
            session = Session(config, workspace, backend, sandbox, approver, resume)
            try:
                yield session
            finally:
                session.close()
    finally:
        backend.close()
