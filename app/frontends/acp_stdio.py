"""ACP's stdin and stdout, with each incoming line checked to be a JSON-RPC message.

The ACP SDK's reader takes any JSON value for a message and ends the whole connection on the
first one that is not an object (one line of ``[]`` stopped ``ponder acp``). Lines are read
here first: a JSON object goes on to the SDK; anything else is answered as JSON-RPC 2.0 says
(-32700 for text that is not JSON, -32600 for JSON that is not a request) and dropped.
"""

from __future__ import annotations

import asyncio
import json

from acp.stdio import stdio_streams

_ERRORS = {-32700: "Parse error", -32600: "Invalid Request"}


async def checked_stdio(limit: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """(reader, writer) as the SDK's ``stdio_streams`` gives them, the reader checked."""
    reader, writer = await stdio_streams(limit=limit)
    checked = asyncio.StreamReader(limit=limit)

    async def pump() -> None:
        try:
            while line := await _line(reader):
                code = _problem(line)
                if code is None:
                    checked.feed_data(line)
                else:
                    error = {"code": code, "message": _ERRORS[code]}
                    reply = {"jsonrpc": "2.0", "id": None, "error": error}
                    writer.write(json.dumps(reply).encode() + b"\n")
        finally:
            checked.feed_eof()

    _pumps.add(task := asyncio.get_running_loop().create_task(pump()))
    task.add_done_callback(_pumps.discard)
    return checked, writer


_pumps: set[asyncio.Task[None]] = set()
"""Running pumps (the loop keeps only weak references to tasks)."""


async def _line(reader: asyncio.StreamReader) -> bytes:
    """The next line, however long (the SDK's reader takes long lines too); b"" at the end."""
    chunks = []
    while True:
        try:
            chunks.append(await reader.readuntil(b"\n"))
            return b"".join(chunks)
        except asyncio.LimitOverrunError as over:
            chunks.append(await reader.readexactly(over.consumed))
        except asyncio.IncompleteReadError as end:
            return b"".join([*chunks, end.partial])


def _problem(line: bytes) -> int | None:
    """The JSON-RPC error code for a line that is no message; None for one that is (and for a
    blank line, which the SDK skips)."""
    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        return -32700
    if not isinstance(value, dict) or not ({"method", "id"} & value.keys()):
        return -32600  # neither a request, a notification nor a response
    return None
