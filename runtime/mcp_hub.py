"""The session's connections to its MCP servers, and calls of their tools.

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
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ponder.runtime.mcp_client import (
    McpServerSpec,
    ServerState,
    server_env,
    server_folder,
)

if TYPE_CHECKING:  # the SDK takes most of a second to import: only sessions with servers pay
    from mcp import Client
    from mcp_types import Tool as McpToolInfo

CLOSE_TIMEOUT_S = 5.0
RESTARTS = 3
"""Times a server whose connection failed is started again in one session."""


class McpCallError(Exception):
    """A tool call that failed (the server's error, a timeout, the server gone)."""


class McpCallInterrupted(Exception):
    """The user interrupted the run while a tool call was waiting."""


@dataclass(frozen=True)
class CallResult:
    text: str
    is_error: bool


def block_text(block: Any) -> str:
    """One block of a tool's result as the model reads it: text as it is, a text resource
    with its address, a link as a link; what is not text is named, not dropped silently."""
    kind = block.type
    if kind == "text":
        return str(block.text)
    if kind == "resource" and isinstance(getattr(block.resource, "text", None), str):
        return f'<resource uri="{block.resource.uri}">\n{block.resource.text}\n</resource>'
    if kind == "resource":
        mime = block.resource.mime_type or "binary"
        return f"[resource {block.resource.uri} ({mime}) left out: the model reads text]"
    if kind == "resource_link":
        about = f": {block.description}" if block.description else ""
        return f"[resource link {block.uri} ({block.name}){about}]"
    mime = getattr(block, "mime_type", None) or kind
    return f"[{kind} content ({mime}) left out: the model reads text]"


CONNECTION_CLOSED = -32000
"""The code the MCP SDK gives a call whose connection closed under it (its server exited)."""


def _innermost(error: BaseException) -> BaseException:
    """The error itself, out of the exception groups the SDK wraps errors in."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def _connection_lost(error: BaseException) -> bool:
    """Whether a call failed because its server's connection went (a crash), not because the
    server answered with an error or was slow: only then is the server started again."""
    error = _innermost(error)
    if getattr(error, "code", None) == CONNECTION_CLOSED:
        return True
    import anyio

    return isinstance(error, anyio.ClosedResourceError | anyio.BrokenResourceError | EOFError)


def _reason(error: BaseException) -> str:
    """The innermost message of an error (the SDK wraps errors in exception groups)."""
    error = _innermost(error)
    if isinstance(error, FileNotFoundError) and error.filename:
        return f"command not found: {error.filename} (is it installed, and on PATH?)"
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class McpHub:
    """The session's MCP servers: :meth:`start` them, :meth:`call` their tools, :meth:`close`."""

    def __init__(self, specs: list[McpServerSpec], errlog: TextIO) -> None:
        self.servers = {spec.name: ServerState(spec) for spec in specs}
        self._errlog = errlog
        self._clients: dict[str, Client] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._serving: dict[str, asyncio.Task[None]] = {}
        """The task holding each server's connection."""
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
        self._serving[state.spec.name] = task
        try:
            tools = await asyncio.wait_for(asyncio.shield(ready), state.spec.startup_timeout)
        except TimeoutError:
            task.cancel()
            state.state = "failed"
            state.error = f"did not start within {state.spec.startup_timeout:g} s"
            return
        except Exception as error:
            state.state = "failed"
            missing = getattr(_innermost(error), "filename", None)
            cwd = state.spec.cwd
            state.error = f"its folder {cwd} does not exist" if missing == cwd else _reason(error)
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
        cwd = spec.cwd or str(server_folder(spec.workspace or Path.cwd()))
        params = StdioServerParameters(
            command=spec.command, args=list(spec.args), env=server_env(spec), cwd=cwd
        )
        return stdio_client(params, errlog=self._errlog)

    def call(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        cancel: threading.Event | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> CallResult:
        """Call a tool and wait for its result, its timeout, or an interrupt. ``on_progress`` is
        told the server's progress notes, on the caller's thread. A server whose connection
        failed is started again (up to :data:`RESTARTS` times a session): the call fails, and
        the next one reaches the new server."""
        state = self.servers[server]
        client = self._clients.get(server)
        if client is None:
            raise McpCallError(f"MCP server {server} is not running ({state.error or 'stopped'})")
        timeout = state.spec.tool_timeout
        notes: queue.SimpleQueue[str] = queue.SimpleQueue()

        async def noted(progress: float, total: float | None, message: str | None) -> None:
            notes.put(message or (f"{progress:g}/{total:g}" if total else f"{progress:g}"))

        pending = asyncio.run_coroutine_threadsafe(
            client.call_tool(tool, arguments, timeout, noted if on_progress else None), self._loop
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
                reason = _reason(error)
                if _connection_lost(error):
                    reason = self._restarted(state, reason)
                raise McpCallError(reason) from None
            finally:
                while on_progress is not None and not notes.empty():
                    on_progress(notes.get())
        parts = [block_text(block) for block in result.content]
        if not parts and result.structured_content is not None:
            parts.append(str(result.structured_content))
        return CallResult("\n".join(parts), result.is_error)

    def _restarted(self, state: ServerState, reason: str) -> str:
        """``reason``, and what became of the server after it: started again, or not."""
        if state.restarts >= RESTARTS:
            return f"{reason} (the server was restarted {RESTARTS} times; not again)"
        state.restarts += 1
        old = self._serving.get(state.spec.name)
        if old is not None:
            self._loop.call_soon_threadsafe(old.cancel)
        asyncio.run_coroutine_threadsafe(self._start(state), self._loop).result()
        if state.state == "ready":
            return f"{reason} (the server was restarted: call it again if still needed)"
        return f"{reason} (restarting the server failed: {state.error})"

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
