"""The HTTP server of ``ponder serve``: one process holds a local model warm for every frontend.

Loading a big GGUF takes minutes; a one-liner, a CI job or a TUI session should not pay it each
time. ``ponder serve`` loads the model once (with the same offload plan and llama.cpp flags as
every run) and answers OpenAI-compatible streaming chat completions on localhost, with K2's
output parsed by ponder's own parser: ``reasoning_content``, ``tool_calls`` exactly as the
model wrote them, and usage with the cached prompt tokens. Requests are served one at a time in
the order they came (the model has one context); each conversation's KV cache is kept aside
when another one takes a turn (:mod:`ponder.model.kv_slots`), so alternating sessions do not
prefill each other away.

A running server registers itself in the runtime folder; a ``llamacpp:`` spec that names the
same GGUF then talks to it instead of loading the model again (see :func:`running_server`).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ponder.model.backend import BackendError
from ponder.model.deltas import (
    ContentDelta,
    Delta,
    Finished,
    ReasoningDelta,
    ToolCallEnd,
    Usage,
)
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.messages import Message, ToolSchema
from ponder.model.options import GenerationSettings


@dataclass
class Stats:
    requests: int = 0
    waiting: int = 0
    last_prefill_tokens_per_s: float | None = None
    last_decode_tokens_per_s: float | None = None
    started: float = field(default_factory=time.time)


class ModelServer:
    """The HTTP side: requests in, the backend's deltas out as OpenAI chunks."""

    def __init__(self, backend: LlamaCppBackend) -> None:
        self.backend = backend
        self.model = backend.path.name
        self.stats = Stats()
        self._turn = asyncio.Lock()  # FIFO: waiters get the model in the order they came

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", self.health),
                Route("/metrics", self.metrics),
                Route("/v1/models", self.models),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
            ]
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.model})

    async def models(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.model,
                        "object": "model",
                        "owned_by": "ponder",
                        "max_model_len": self.backend.context_size,
                    }
                ],
            }
        )

    async def metrics(self, request: Request) -> Response:
        slots = self.backend.slots
        return JSONResponse(
            {
                "model": self.model,
                "path": str(self.backend.path),
                "context_size": self.backend.context_size,
                "requests": self.stats.requests,
                "waiting": self.stats.waiting,
                "cached_conversations": len(slots.saved),
                "kv_saved_bytes": slots.used_bytes,
                "kv_restores": slots.restores,
                "prefill_tokens_per_s": self.stats.last_prefill_tokens_per_s,
                "decode_tokens_per_s": self.stats.last_decode_tokens_per_s,
                "uptime_s": round(time.time() - self.stats.started, 1),
                "rss_bytes": _rss_bytes(),
            }
        )

    async def chat(self, request: Request) -> Response:
        try:
            body = await request.json()
            messages = [Message.from_openai(m) for m in body["messages"]]
            tools = [_tool(t) for t in body.get("tools") or []]
        except (ValueError, KeyError, TypeError) as error:
            return _error(400, f"not a chat completion request: {error}")
        wanted = {
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "min_p": body.get("min_p"),
            "top_k": body.get("top_k"),
            "max_new_tokens": body.get("max_tokens") or body.get("max_completion_tokens"),
            "max_reasoning_tokens": body.get("max_reasoning_tokens"),
        }
        settings = GenerationSettings(**{k: v for k, v in wanted.items() if v is not None})
        chunks = self._completion(messages, tools, settings)
        if body.get("stream"):
            return StreamingResponse(_sse(chunks), media_type="text/event-stream")
        return JSONResponse(await _whole(chunks, self.model))

    async def _completion(
        self, messages: list[Message], tools: list[ToolSchema], settings: GenerationSettings
    ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI chunks of one completion, generated on a worker thread when the model is free;
        a client that goes away stops the generation."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()

        def generate() -> None:
            try:
                for delta in self.backend.stream(messages, tools, settings, cancel):
                    loop.call_soon_threadsafe(queue.put_nowait, delta)
            except BaseException as error:  # handed to the request, which reports it
                loop.call_soon_threadsafe(queue.put_nowait, error)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        base = {"id": f"chatcmpl-{uuid.uuid4().hex[:16]}", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self.model}  # fmt: skip
        self.stats.waiting += 1
        async with self._turn:
            self.stats.waiting -= 1
            self.stats.requests += 1
            worker = threading.Thread(target=generate, name="serve-generate", daemon=True)
            worker.start()
            calls = 0
            try:
                while (item := await queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    chunk = self._chunk(item, calls)
                    if isinstance(item, ToolCallEnd):
                        calls += 1
                    if isinstance(item, Usage):
                        self.stats.last_prefill_tokens_per_s = item.prefill_tokens_per_s
                        self.stats.last_decode_tokens_per_s = item.decode_tokens_per_s
                    if isinstance(item, Finished) and calls and item.reason == "stop":
                        chunk = _choice(finish_reason="tool_calls")
                    if chunk is not None:
                        yield {**base, **chunk}
            finally:
                cancel.set()  # the client went away, or the generation ended: either way, stop
                await asyncio.to_thread(worker.join)

    @staticmethod
    def _chunk(delta: Delta, calls: int) -> dict[str, Any] | None:
        if isinstance(delta, ReasoningDelta):
            return _choice(delta={"reasoning_content": delta.text})
        if isinstance(delta, ContentDelta):
            return _choice(delta={"content": delta.text})
        if isinstance(delta, ToolCallEnd):
            call = delta.call
            function = {"name": call.name, "arguments": call.raw_arguments}
            piece = {"index": calls, "id": call.id, "type": "function", "function": function}
            return _choice(delta={"tool_calls": [piece]})
        if isinstance(delta, Usage):
            usage = {
                "prompt_tokens": delta.prompt_tokens,
                "completion_tokens": delta.completion_tokens,
                "total_tokens": delta.prompt_tokens + delta.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": delta.cached_tokens},
            }
            return {"choices": [], "usage": usage}
        if isinstance(delta, Finished):
            reason = "length" if delta.reason == "length" else "stop"
            return _choice(finish_reason=reason)
        return None


def _choice(
    delta: dict[str, Any] | None = None, finish_reason: str | None = None
) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}]}


def _tool(data: dict[str, Any]) -> ToolSchema:
    function = data["function"]
    return ToolSchema(
        name=function["name"],
        description=function.get("description", ""),
        parameters=function.get("parameters") or {"type": "object", "properties": {}},
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}}, status)


async def _sse(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    try:
        async for chunk in chunks:
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    except BackendError as error:
        yield f"data: {json.dumps({'error': {'message': str(error)}})}\n\n"
    yield "data: [DONE]\n\n"


async def _whole(chunks: AsyncIterator[dict[str, Any]], model: str) -> dict[str, Any]:
    """A non-streaming completion: the chunks gathered into one message."""
    reasoning, content, calls = [], [], []
    usage: dict[str, Any] = {}
    finish = "stop"
    async for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            delta = choice["delta"]
            reasoning.append(delta.get("reasoning_content", ""))
            content.append(delta.get("content", ""))
            calls += delta.get("tool_calls", [])
            finish = choice["finish_reason"] or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


def _rss_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
