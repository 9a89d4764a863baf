"""A session as the CLI runs it: backend, sandbox, agent, session file and checkpoints together.

The frontends only display events and answer approvals; everything a session keeps (the
conversation, the session file, the checkpoints) lives here, so the TUI, line mode and headless
runs behave the same.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from ponder.app.config import Config, config_dir, config_file
from ponder.app.exit_codes import UsageError
from ponder.app.mcp_servers import mcp_event, mcp_hub, session_servers
from ponder.app.models import open_model
from ponder.app.sandboxes import sandbox_session
from ponder.app.wording.changes import (
    OUTSIDE_HEADING,
    SHOWN_AT_MOST,
    changes_block,
    describe_undo,
)
from ponder.app.wording.events import describe_server
from ponder.model.backend import ChatBackend
from ponder.model.messages import Message
from ponder.runtime.agent_settings import AgentSettings
from ponder.runtime.approvals import ApprovalAnswer, ApprovalPolicy
from ponder.runtime.attachments import attach_mentions
from ponder.runtime.checkpoints import CheckpointError, Checkpoints, Diff
from ponder.runtime.events import (
    ApprovalRequested,
    CheckpointsOff,
    Event,
    FilesAttached,
    InstructionsLoaded,
    PathChange,
    RunFinished,
    ToolKind,
)
from ponder.runtime.loop import Agent
from ponder.runtime.mcp_client import McpServerSpec
from ponder.runtime.port import RunPort, Unattended
from ponder.runtime.project_docs import find_project_docs, instructions_prompt
from ponder.runtime.sessions import (
    SessionInfo,
    SessionRecorder,
    find_session,
    read_session,
    restore_messages,
    sessions_dir,
    skipped_warning,
)
from ponder.runtime.tools import default_tools
from ponder.sandbox.base import Sandbox
from ponder.sandbox.safe_text import safe_text

if TYPE_CHECKING:
    from ponder.runtime.mcp_hub import McpHub

NEW_REPOSITORY = (
    "the model made a git repository in {workspace} (.git); its config and hooks were written "
    "in the sandbox and git runs them: look at .git/config and .git/hooks before you use git "
    "there"
)


def agent_settings(config: Config) -> AgentSettings:
    return AgentSettings(budgets=config.budgets, generation=config.sampling)


def approval_policy(config: Config) -> ApprovalPolicy:
    return ApprovalPolicy(
        mode=config.session.approval,
        allow=list(config.session.allow),
        deny=list(config.session.deny),
        network=config.session.network,
    )


def checkpoint_store() -> Path:
    return platformdirs.user_data_path("ponder") / "checkpoints"


def history_lines(messages: Sequence[Message], limit: int = 60) -> list[str]:
    """The conversation so far, a line per message or call (the last ``limit``), for a
    resumed session's frontends."""
    lines = []
    for message in messages:
        first = " ".join(message.content.split())[:160]
        if message.role == "user":
            lines.append(f"› {first}")
        elif message.role == "assistant":
            if first:
                lines.append(f"  {first}")
            lines += [f"  · {call.name} {call.arguments[:120]}" for call in message.tool_calls]
    return [safe_text(line) for line in lines[-limit:]]


def resumed_note(found: SessionInfo, workspace: Path) -> str:
    """Which session goes on, and where it ran when that was elsewhere."""
    task = safe_text(" ".join(found.task.split()))
    note = f"resuming session {found.id} of {found.created}: {task[:60]}"
    if found.workspace != str(workspace):
        note += f" (it ran in {safe_text(found.workspace)}; it goes on here, in {workspace})"
    return note


class Session:
    """One conversation in one workspace; :meth:`run` takes the next task."""

    def __init__(
        self,
        config: Config,
        workspace: Path,
        backend: ChatBackend,
        sandbox: Sandbox,
        resume: str | None = None,
        mcp: McpHub | None = None,
        mcp_notes: Sequence[str] = (),
    ) -> None:
        messages: list[Message] = []
        self.earlier: list[Event] = []
        """A resumed session's recorded events (what a client replays to show it)."""
        session_id = None
        self.resumed: str | None = None
        """What was resumed, for the frontends to say (None for a new session)."""
        self.tasks_run = 0
        if resume is not None:
            found = find_session(resume or None, workspace=None if resume else workspace)
            if found is None:
                what = f"no session {resume}" if resume else f"no session in {workspace}"
                raise UsageError(f"{what} to resume; see `ponder sessions`")
            self.resumed = resumed_note(found, workspace)
            _, events, skipped = read_session(found.path)
            self.earlier = events
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
            checkpoints = Checkpoints(
                workspace, self.recorder.id, checkpoint_store(), busy=sandbox.background_jobs
            )
        except CheckpointError as error:  # the session goes on without them, and says so
            self.checkpoints_off = str(error)
        self._first_notes: list[Event] = []
        """Told once, at the first task."""
        if self.checkpoints_off is not None:
            self._first_notes.append(CheckpointsOff(reason=self.checkpoints_off))
        docs, cut = find_project_docs(
            workspace,
            tuple(config.session.project_doc_fallback_filenames),
            config_dir() / "AGENTS.md",
            config.session.project_doc_max_bytes,
        )
        if docs and not messages:  # a resumed conversation has its system prompt already
            self._first_notes.append(InstructionsLoaded(files=[d.shown_as for d in docs], note=cut))
        self._checkpoints = checkpoints
        self.mcp = mcp
        if mcp is not None or mcp_notes:
            self._first_notes.append(mcp_event(mcp, mcp_notes))
        tools = default_tools()
        if mcp is not None:
            from ponder.runtime.tools.mcp import mcp_tools  # loads with the hub, as it needs

            tools += mcp_tools(mcp)
        self.agent = Agent(
            backend,
            sandbox,
            tools=tools,
            settings=replace(
                agent_settings(config),
                instructions=instructions_prompt(docs),
                prices=config.model_info().prices(),
            ),
            policy=approval_policy(config),
            checkpoints=checkpoints,
            messages=messages,
            session_id=self.recorder.id,
        )

    @property
    def id(self) -> str:
        return self.recorder.id

    def run(self, task: str, port: RunPort) -> RunFinished:
        """Run a task; its events go to the session file, then to ``port``."""
        preface, self._first_notes = self._first_notes, []
        attached = attach_mentions(task, self.workspace)
        if attached.files or attached.notes:
            preface.append(FilesAttached(files=attached.files, notes=attached.notes))
        self.tasks_run += 1
        return self.agent.run(task, _Recorded(self, port), attached.text, preface)

    def tell(self, event: Event, port: RunPort) -> None:
        """An event of the frontend's own about the last run (exec's schema check): recorded
        in the session file, then shown, as the run's events are."""
        _Recorded(self, port).event(event)

    def checkpoint_now(self) -> str | None:
        """The session's newest checkpoint (to ask later what changed since); None without."""
        checkpoints = self.agent.checkpoints
        try:
            return checkpoints.tip if checkpoints is not None else None
        except CheckpointError:
            return None

    def changes_since(self, checkpoint: str | None) -> list[PathChange]:
        """Every path the session changed since ``checkpoint``, described (for the summary at
        the end of a task); empty without checkpoints."""
        checkpoints = self.agent.checkpoints
        if checkpoints is None or checkpoint is None:
            return []
        try:
            return checkpoints.diff(since=checkpoint).changes
        except CheckpointError:
            return []

    def interrupt(self) -> None:
        self.agent.interrupt()

    # --- what frontends may read (they talk to the session, never to its agent)

    @property
    def messages(self) -> Sequence[Message]:
        return self.agent.messages

    @property
    def model(self) -> ChatBackend:
        return self.agent.backend

    @property
    def sandbox_description(self) -> str:
        return self.agent.sandbox.description

    @property
    def sandbox_notes(self) -> list[str]:
        """What the person should know about the sandbox (``--sandbox local``: that it is none),
        for the frontend to show after its header."""
        return self.agent.sandbox.notes

    @property
    def policy(self) -> ApprovalPolicy | None:
        """The approval rules; None when approvals are off."""
        return self.agent.policy

    def tool_kind(self, name: str) -> ToolKind | None:
        tool = self.agent.tools.get(name)
        return tool.kind if tool is not None else None

    # --- what the slash commands do

    def undo(self) -> str:
        checkpoints = self.agent.checkpoints
        if checkpoints is None:
            return f"nothing to undo with: checkpoints are off ({self.checkpoints_off})"
        return describe_undo(checkpoints.undo())

    def mcp_status(self) -> str:
        if self.mcp is None:
            return "no MCP servers (add [mcp_servers.NAME] to the config, or a .mcp.json)"
        return "\n".join(describe_server(server) for server in mcp_event(self.mcp, []).servers)

    def diff(self) -> str:
        checkpoints = self.agent.checkpoints
        if checkpoints is None:
            return f"no diff to show: checkpoints are off ({self.checkpoints_off})"
        return diff_text(checkpoints.diff()) or "no changes yet"

    def compact(self) -> int:
        return self.agent.compact(_Recorded(self, Unattended(lambda event: None)))

    def clear(self) -> None:
        self.agent.clear(_Recorded(self, Unattended(lambda event: None)))

    def switch_model(self, spec: str) -> None:
        """Go on with another model (the conversation is kept)."""
        backend = open_model(self.config, spec)
        self.agent.switch_backend(backend).close()

    def close(self) -> None:
        checkpoints = self.agent.checkpoints
        if checkpoints is not None:
            self.agent.sandbox.stop()  # its background jobs end here: what they left is ours
            with contextlib.suppress(CheckpointError):
                last = checkpoints.settle()
                if last is not None:
                    self.recorder(replace(last, background=True).event(step=0))
        self.recorder.close()
        if self._checkpoints is not None:
            self._checkpoints.close()
        if not self._had_git and os.path.lexists(self.workspace / ".git"):
            print(
                f"ponder: warning: {NEW_REPOSITORY.format(workspace=self.workspace)}",
                file=sys.stderr,
            )


@dataclass(frozen=True)
class _Recorded:
    """A frontend's port with the session file in front of it: every event is written first."""

    session: Session
    port: RunPort

    def event(self, event: Event) -> None:
        if isinstance(event, CheckpointsOff):
            self.session.checkpoints_off = event.reason
        self.session.recorder(event)
        self.port.event(event)

    def approve(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        return self.port.approve(request)


def diff_text(diff: Diff, limit: int | None = SHOWN_AT_MOST) -> str:
    """A session's diff for a person: the patch, then what it does not show."""
    patch = safe_text(diff.patch.decode(errors="replace"))
    block = changes_block(diff.changes, OUTSIDE_HEADING, limit)
    return "\n".join(part for part in (patch.rstrip("\n"), block) if part)


@contextmanager
def open_session(
    config: Config,
    workspace: Path,
    resume: str | None = None,
    mcp_extra: Sequence[McpServerSpec] = (),
) -> Iterator[Session]:
    """Backend, sandbox, MCP servers and session, all released when the block ends however it
    ends. ``mcp_extra``: servers an editor passed (ACP)."""
    if not config.session.model:
        raise UsageError(
            'no model configured: pass --model, set PONDER_MODEL, or put model = "..." in '
            f"{config_file()} (`ponder --help` shows the forms; `ponder demo` needs none)"
        )
    specs, mcp_notes = session_servers(config, workspace, mcp_extra)
    backend = open_model(config)
    try:
        with sandbox_session(config, workspace) as sandbox, mcp_hub(specs) as hub:
            session = Session(config, workspace, backend, sandbox, resume, hub, mcp_notes)
            try:
                yield session
            finally:
                session.close()
    finally:
        backend.close()
