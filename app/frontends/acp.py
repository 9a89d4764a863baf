"""``ponder acp``: ponder as an Agent Client Protocol agent on stdio, for Zed, Toad and others.

The editor starts ``ponder acp`` and speaks JSON-RPC on its stdin and stdout (so nothing else
may write to stdout; ponder's own messages go to stderr). Each ACP session is a ponder
:class:`~ponder.app.session.Session` on the client's working directory, with the same sandbox,
budgets, checkpoints and approval policy as every other frontend. A prompt runs in a worker
thread; its events become session updates (:mod:`ponder.app.frontends.acp_updates`), sent in
order by one sender task, and its approvals become ``session/request_permission`` requests.
``session/cancel`` interrupts the run. ``session/load`` replays a recorded session's
conversation as updates, then continues it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import stat
import sys
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import acp
from acp.core import DEFAULT_STDIO_BUFFER_LIMIT_BYTES
from acp.schema import (
    AgentCapabilities,
    AllowedOutcome,
    HttpMcpServer,
    Implementation,
    InitializeResponse,
    LoadSessionResponse,
    McpCapabilities,
    McpServerStdio,
    NewSessionResponse,
    PermissionOption,
    PromptCapabilities,
    PromptResponse,
    StopReason,
    ToolCallUpdate,
)

from ponder.app.config import Config, ConfigError
from ponder.app.exit_codes import UsageError
from ponder.app.frontends.acp_stdio import checked_stdio
from ponder.app.frontends.acp_updates import Update, UpdateMapper, acp_kind, approval_content
from ponder.app.sandboxes import warn
from ponder.app.session import Session, open_session
from ponder.app.wording.for_display import for_display
from ponder.model.backend import BackendError
from ponder.runtime.approvals import ApprovalAnswer
from ponder.runtime.events import (
    ApprovalRequested,
    ContentText,
    Event,
    ReasoningText,
    RunFinished,
    RunStarted,
    ToolOutput,
)
from ponder.runtime.mcp_client import McpServerSpec
from ponder.runtime.port import answered
from ponder.sandbox.base import SandboxError

STOP_REASONS: dict[str, StopReason] = {
    "answered": "end_turn",
    "submitted": "end_turn",
    "interrupted": "cancelled",
    "token_budget": "max_tokens",
    "max_steps": "max_turn_requests",
    "time_limit": "max_turn_requests",
    "loop": "max_turn_requests",
}
OPTIONS = [
    PermissionOption(option_id="once", name="Allow once", kind="allow_once"),
    PermissionOption(option_id="always", name="Always allow", kind="allow_always"),
    PermissionOption(option_id="deny", name="Reject", kind="reject_once"),
    PermissionOption(option_id="never", name="Always reject", kind="reject_always"),
]
MAX_ATTACHED_CHARS = 100_000
"""Text of an embedded resource (a file the user attached) beyond this is cut."""


@dataclass
class _Open:
    """One ACP session: the ponder session, what closes it, and the prefixes always rejected."""

    session: Session
    workspace: str
    close: contextlib.ExitStack
    rejected: set[str] = field(default_factory=set)
    prompting: bool = False


class PonderAgent:
    """The ACP agent side (``acp.Agent``): sessions, prompts, cancels."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.client: acp.Client | None = None
        self.sessions: dict[str, _Open] = {}

    def on_connect(self, conn: acp.Client) -> None:
        self.client = conn

    async def initialize(self, protocol_version: int, **kwargs: Any) -> InitializeResponse:
        return InitializeResponse(
            protocol_version=min(protocol_version, acp.PROTOCOL_VERSION),
            agent_capabilities=AgentCapabilities(
                load_session=True,
                prompt_capabilities=PromptCapabilities(embedded_context=True),
                mcp_capabilities=McpCapabilities(http=True),  # streamable HTTP; no SSE
            ),
            agent_info=Implementation(name="ponder", title="ponder", version=version("ponder")),
        )

    async def new_session(
        self, cwd: str, mcp_servers: list[Any] | None = None, **kwargs: Any
    ) -> NewSessionResponse:
        opened = await asyncio.to_thread(self._open, cwd, None, mcp_specs(mcp_servers or []))
        return NewSessionResponse(session_id=opened.session.id)

    async def load_session(
        self, cwd: str, session_id: str, mcp_servers: list[Any] | None = None, **kwargs: Any
    ) -> LoadSessionResponse:
        servers = mcp_specs(mcp_servers or [])
        opened = await asyncio.to_thread(self._open, cwd, session_id, servers)
        for update in _history(opened.session):
            await self._send(opened.session.id, update)
        return LoadSessionResponse()

    def _open(self, cwd: str, resume: str | None, servers: list[McpServerSpec]) -> _Open:
        if resume is not None and any(resume == known for known in self.sessions):
            raise acp.RequestError.invalid_request(  # two runs would share one conversation
                {"details": f"session {resume} is already open in this connection"}
            )
        workspace = Path(cwd)
        if not workspace.is_absolute() or not workspace.is_dir():
            raise acp.RequestError.invalid_params({"cwd": f"{cwd} is not a directory"})
        stack = contextlib.ExitStack()
        try:
            session = stack.enter_context(
                open_session(self.config, workspace, resume=resume, mcp_extra=servers)
            )
        except (UsageError, ConfigError, BackendError, SandboxError) as error:
            stack.close()  # the message says what to do: the editor shows it as it is
            raise acp.RequestError(-32602, f"ponder: {error}", {"details": str(error)}) from None
        warn(session.sandbox_notes)  # stderr: the editor's log
        opened = _Open(session, str(workspace), stack)
        self.sessions[session.id] = opened
        return opened

    async def prompt(self, session_id: str, prompt: list[Any], **kwargs: Any) -> PromptResponse:
        opened = self._session(session_id)
        if opened.prompting:  # two runs at once would share one conversation and its undo
            raise acp.RequestError.invalid_request(
                {"details": "this session is running a prompt: wait for it, or cancel it"}
            )
        opened.prompting = True
        port = _Port(self, opened, asyncio.get_running_loop())
        sender = asyncio.create_task(port.send_all())
        try:
            finished: RunFinished = await asyncio.to_thread(
                opened.session.run, prompt_text(prompt), port
            )
        finally:
            opened.prompting = False
            port.updates.put_nowait(None)
            await sender
        if finished.reason == "error":
            raise acp.RequestError.internal_error({"details": finished.error})
        return PromptResponse(stop_reason=STOP_REASONS.get(finished.reason, "end_turn"))

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        if session_id in self.sessions:
            self.sessions[session_id].session.interrupt()

    async def close_all(self) -> None:
        for opened in self.sessions.values():
            opened.session.interrupt()
            await asyncio.to_thread(opened.close.close)
        self.sessions.clear()

    def _session(self, session_id: str) -> _Open:
        if session_id not in self.sessions:
            raise acp.RequestError.invalid_params({"sessionId": f"no session {session_id}"})
        return self.sessions[session_id]

    async def _send(self, session_id: str, update: Update) -> None:
        assert self.client is not None
        await self.client.session_update(session_id=session_id, update=update)

    async def ask(self, opened: _Open, request: ApprovalRequested) -> ApprovalAnswer:
        assert self.client is not None
        # The call is already on the client's screen (its title, its status): this adds what
        # the answer is about, and for an edit the diff it would make, before it is made.
        tool_call = ToolCallUpdate(
            tool_call_id=request.call_id,
            kind=acp_kind(request.kind),
            content=approval_content(request, opened.workspace),
            raw_input={"summary": request.summary, "prefix": request.prefix},
        )
        response = await self.client.request_permission(
            session_id=opened.session.id, tool_call=tool_call, options=OPTIONS
        )
        outcome = response.outcome
        if not isinstance(outcome, AllowedOutcome):  # the client cancelled the prompt
            return ApprovalAnswer("deny", "The user cancelled.")
        if outcome.option_id == "never":
            opened.rejected.add(request.prefix)
        if outcome.option_id in ("never", "deny"):
            return ApprovalAnswer("deny")
        return ApprovalAnswer("always" if outcome.option_id == "always" else "once")


class _Port:
    """One prompt's :class:`~ponder.runtime.port.RunPort`. Events come on the run's thread and
    go out, in order, through one sender task on the event loop; a permission request goes out
    after every update before it, and its answer completes the run's reply."""

    def __init__(self, agent: PonderAgent, opened: _Open, loop: asyncio.AbstractEventLoop):
        self.agent = agent
        self.opened = opened
        self.loop = loop
        self.mapper = UpdateMapper(opened.workspace)
        self.updates: asyncio.Queue[Update | _Ask | None] = asyncio.Queue()

    def event(self, event: Event) -> None:
        update = self.mapper(event)
        if update is not None:
            self.loop.call_soon_threadsafe(self.updates.put_nowait, update)

    def approve(self, request: ApprovalRequested) -> concurrent.futures.Future[ApprovalAnswer]:
        if request.prefix in self.opened.rejected:
            said = f"The user always rejects `{request.prefix}` in this session."
            return answered(ApprovalAnswer("deny", said))
        reply: concurrent.futures.Future[ApprovalAnswer] = concurrent.futures.Future()
        self.loop.call_soon_threadsafe(self.updates.put_nowait, _Ask(request, reply))
        return reply

    async def send_all(self) -> None:
        asking: set[asyncio.Task[None]] = set()
        while (item := await self.updates.get()) is not None:
            if isinstance(item, _Ask):
                task = asyncio.create_task(self._ask(item))
                asking.add(task)
                task.add_done_callback(asking.discard)
            else:
                await self.agent._send(self.opened.session.id, item)
        for task in asking:
            task.cancel()

    async def _ask(self, ask: _Ask) -> None:
        task = asyncio.current_task()
        assert task is not None
        # The run gives up on the question when it is interrupted: stop asking then.
        ask.reply.add_done_callback(lambda _: self.loop.call_soon_threadsafe(task.cancel))
        try:
            answer = await self.agent.ask(self.opened, ask.request)
        except asyncio.CancelledError:
            return
        except Exception as error:  # the client failed to answer: nobody allowed it
            answer = ApprovalAnswer("deny", f"The editor did not answer ({error}).")
        if not ask.reply.done():
            ask.reply.set_result(answer)


@dataclass(frozen=True)
class _Ask:
    request: ApprovalRequested
    reply: concurrent.futures.Future[ApprovalAnswer]


def mcp_specs(servers: list[Any]) -> list[McpServerSpec]:
    """The MCP servers an editor passed with the session (stdio and HTTP; SSE is not spoken)."""
    specs = []
    for server in servers:
        if isinstance(server, McpServerStdio):
            env = {variable.name: variable.value for variable in server.env or []}
            specs.append(
                McpServerSpec(server.name, command=server.command, args=tuple(server.args), env=env)
            )
        elif isinstance(server, HttpMcpServer):
            headers = {header.name: header.value for header in server.headers or []}
            specs.append(McpServerSpec(server.name, url=server.url, headers=headers))
    return specs


def prompt_text(blocks: list[Any]) -> str:
    """The task: the prompt's text, with attached files (embedded resources) and links."""
    parts = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource_link":
            parts.append(f"@{block.uri}")
        elif kind == "resource" and isinstance(getattr(block.resource, "text", None), str):
            text = block.resource.text
            if len(text) > MAX_ATTACHED_CHARS:
                text = text[:MAX_ATTACHED_CHARS] + "\n[... cut: the attachment is longer ...]"
            parts.append(f'<attached uri="{block.resource.uri}">\n{text}\n</attached>')
    return "\n\n".join(parts)


def _history(session: Session) -> list[Update]:
    """A loaded session's past as the updates that showed it live: the same titles, live
    output, diffs and plan."""
    mapper = UpdateMapper(str(session.workspace))
    updates: list[Update] = []
    for event in _merged(session.earlier):
        if isinstance(event, RunStarted):  # the task as the person gave it, cleaned (the user
            # messages also hold attached files and ponder's own nudges to the model)
            updates.append(acp.update_user_message_text(for_display(event).task))
        elif (update := mapper(event)) is not None:
            updates.append(update)
    return updates


def _merged(events: list[Event]) -> list[Event]:
    """The streamed pieces of a step's reasoning or answer, and of a command's output, as one
    piece each (each output update carries the output's end so far: replayed piece by piece,
    a long command would resend it hundreds of times)."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if (
            isinstance(event, ReasoningText | ContentText)
            and isinstance(last, ReasoningText | ContentText)
            and (type(last), last.step) == (type(event), event.step)
        ) or (
            isinstance(event, ToolOutput)
            and isinstance(last, ToolOutput)
            and last.call_id == event.call_id
        ):
            merged[-1] = last.model_copy(update={"text": last.text + event.text})
        else:
            merged.append(event)
    return merged


def run(config: Config) -> int:
    """Serve ACP on stdin and stdout until the client closes them."""
    for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout)):
        if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):  # asyncio takes pipes and ttys
            raise UsageError(
                f"acp: {name} is a file; ACP runs over pipes, between an editor and the "
                "`ponder acp` it starts (to keep a log of it: `ponder acp | tee acp.log`)"
            )
    if sys.stdin.isatty():  # a person ran it: say what it waits for, where they will read it
        print(
            "ponder acp: waiting for an editor's ACP messages (JSON-RPC) on stdin. An editor "
            "such as Zed starts this command itself (see the README); Ctrl-D ends it.",
            file=sys.stderr,
        )
    agent = PonderAgent(config)

    async def serve() -> None:
        try:
            # PonderAgent implements the methods ponder supports; the SDK answers the others
            # (authenticate, set mode, ...) with method-not-found.
            reader, writer = await checked_stdio(DEFAULT_STDIO_BUFFER_LIMIT_BYTES)
            await acp.run_agent(agent, writer, reader)  # type: ignore[arg-type]
        finally:
            await agent.close_all()

    asyncio.run(serve())
    return 0
