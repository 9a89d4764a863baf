"""MCP servers a session connects to, and their tools offered to the model.

The ``mcp`` SDK is asynchronous and a session's run is a thread, so an :class:`McpHub` keeps
one event loop on a thread of its own, with one task per server that holds its connection open
(a subprocess over stdio, or streamable HTTP) for the whole session. A server that does not
start within its startup timeout, or fails, is reported once and left out; the session goes on.
Tools are offered as ``mcp__<server>__<tool>``. They run on the host, outside the sandbox, so
the approval policy asks before each by default (:mod:`ponder.runtime.approvals`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TextIO

from ponder.runtime.approvals import MCP_PREFIX

if TYPE_CHECKING:  # the SDK takes most of a second to import: only sessions with servers pay
    from mcp import Client
    from mcp_types import Tool as McpToolInfo

CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class McpServerSpec:
    """How to reach one server: a ``command`` (stdio) or a ``url`` (streamable HTTP)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    enabled_tools: frozenset[str] | None = None
    """Only these tools, when given."""
    disabled_tools: frozenset[str] = frozenset()
    startup_timeout: float = 10.0
    tool_timeout: float = 60.0

    def offers(self, tool: str) -> bool:
        allowed = self.enabled_tools is None or tool in self.enabled_tools
        return allowed and tool not in self.disabled_tools


@dataclass
class ServerState:
    spec: McpServerSpec
    state: Literal["starting", "ready", "failed"] = "starting"
    tools: list[McpToolInfo] = field(default_factory=list)
    error: str | None = None


class McpCallError(Exception):
    """A tool call that failed (the server's error, a timeout, the server gone)."""


class McpCallInterrupted(Exception):
    """The user interrupted the run while a tool call was waiting."""


@dataclass(frozen=True)
class CallResult:
    text: str
    is_error: bool


def tool_name(server: str, tool: str) -> str:
    return f"{MCP_PREFIX}{server}__{tool}"


def _reason(error: BaseException) -> str:
    """The innermost message of an error (the SDK wraps errors in exception groups)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class McpHub:
    """The session's MCP servers: :meth:`start` them, :meth:`call` their tools, :meth:`close`."""

    def __init__(self, specs: list[McpServerSpec], errlog: TextIO) -> None:
        self.servers = {spec.name: ServerState(spec) for spec in specs}
        self._errlog = errlog
        self._clients: dict[str, Client] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp", daemon=True)
        self._thread.start()

    def start(self) -> list[ServerState]:
        """Connect every server at once; returns their states when each is ready or failed."""
        if self.servers:
            asyncio.run_coroutine_threadsafe(self._start_all(), self._loop).result()
        return list(self.servers.values())

    async def _start_all(self) -> None:
        self._stop = asyncio.Event()
        await asyncio.gather(*(self._start(state) for state in self.servers.values()))

    async def _start(self, state: ServerState) -> None:
        ready: asyncio.Future[list[McpToolInfo]] = self._loop.create_future()
        task = asyncio.create_task(self._serve(state.spec, ready))
        self._tasks.append(task)
        try:
            tools = await asyncio.wait_for(asyncio.shield(ready), state.spec.startup_timeout)
        except TimeoutError:
            task.cancel()
            state.state = "failed"
            state.error = f"did not start within {state.spec.startup_timeout:g} s"
            return
        except Exception as error:
            state.state = "failed"
            state.error = _reason(error)
            return
        state.tools = [tool for tool in tools if state.spec.offers(tool.name)]
        state.state = "ready"

    async def _serve(self, spec: McpServerSpec, ready: asyncio.Future[list[McpToolInfo]]) -> None:
        """Hold the server's connection open until the hub closes."""
        try:
            async with AsyncExitStack() as stack:
                from mcp import Client

                client = await stack.enter_async_context(Client(self._transport(spec, stack)))
                tools: list[McpToolInfo] = []
                cursor = None
                while True:
                    page = await client.list_tools(cursor=cursor)
                    tools += page.tools
                    cursor = page.next_cursor
                    if not cursor:
                        break
                self._clients[spec.name] = client
                ready.set_result(tools)
                assert self._stop is not None
                await self._stop.wait()
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)
            else:  # it went away after starting: its calls fail with this
                self.servers[spec.name].error = _reason(error)
        finally:
            self._clients.pop(spec.name, None)

    def _transport(self, spec: McpServerSpec, stack: AsyncExitStack) -> Any:
        import httpx2
        from mcp.client.stdio import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client

        if spec.url is not None:
            http = httpx2.AsyncClient(headers=spec.headers, timeout=spec.tool_timeout)
            stack.push_async_callback(http.aclose)
            return streamable_http_client(spec.url, http_client=http)
        assert spec.command is not None
        params = StdioServerParameters(
            command=spec.command, args=list(spec.args), env=spec.env or None, cwd=spec.cwd
        )
        return stdio_client(params, errlog=self._errlog)

    def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        cancel: threading.Event | None = None,
    ) -> CallResult:
        """Call a tool and wait for its result, its timeout, or an interrupt."""
        state = self.servers[server]
        client = self._clients.get(server)
        if client is None:
            raise McpCallError(f"MCP server {server} is not running ({state.error or 'stopped'})")
        timeout = state.spec.tool_timeout
        pending = asyncio.run_coroutine_threadsafe(
            client.call_tool(tool, arguments, read_timeout_seconds=timeout), self._loop
        )
        deadline = time.monotonic() + timeout + 1
        while True:
            try:
                result = pending.result(timeout=0.1)
                break
            except concurrent.futures.TimeoutError:
                if cancel is not None and cancel.is_set():
                    pending.cancel()
                    raise McpCallInterrupted from None
                if time.monotonic() > deadline:
                    pending.cancel()
                    raise McpCallError(f"no answer within {timeout:g} s") from None
            except Exception as error:
                raise McpCallError(_reason(error)) from None
        parts = []
        for block in result.content:
            if block.type == "text":
                parts.append(block.text)
            else:
                parts.append(f"[{block.type} content left out]")
        if not parts and result.structured_content is not None:
            parts.append(str(result.structured_content))
        return CallResult("\n".join(parts), result.is_error)

    def close(self) -> None:
        """Stop every server (subprocesses end) and the hub's thread."""
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            closing = asyncio.run_coroutine_threadsafe(self._finish(), self._loop)
            with suppress(Exception):  # a server that will not stop is left to the process exit
                closing.result(CLOSE_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CLOSE_TIMEOUT_S)

    async def _finish(self) -> None:
        _, pending = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S - 1)
        for task in pending:
            task.cancel()
