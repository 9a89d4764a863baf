"""The HTTP server of ``ponder serve``: one process holds a local model warm for every frontend.

Loading a big GGUF takes minutes; a one-liner, a CI job or a TUI session should not pay it each
time. ``ponder serve`` loads the model once (with the same offload plan and llama.cpp flags as
every run) and answers OpenAI's Chat Completions API on localhost (the shapes and checks are
:mod:`ponder.app.openai_api`'s), with K2's output parsed by ponder's own parser:
``reasoning_content``, ``tool_calls`` exactly as the model wrote them, and usage with the
cached prompt tokens. Requests are served one at a time in
the order they came (the model has one context); each conversation's KV cache is kept aside
when another one takes a turn (:mod:`ponder.model.kv_slots`), so alternating sessions do not
prefill each other away.

A running server registers itself in the runtime folder; a ``llamacpp:`` spec that names the
same GGUF then talks to it instead of loading the model again (see :func:`running_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ponder.app.http_guard import Guard
from ponder.app.openai_api import ApiError, Chunks, StopAt, api_error, read_request
from ponder.model.backend import BackendError, ContextOverflow
from ponder.model.deltas import ContentDelta, Delta, Finished, Usage
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.messages import Message, ToolSchema
from ponder.model.options import GenerationSettings

DISCONNECT_POLL_S = 0.5
"""How often a request that is not streamed asks whether its client is still there."""


@dataclass
class Stats:
    requests: int = 0
    waiting: int = 0
    abandoned: int = 0
    """Requests whose client went away before the answer was complete (generation stopped)."""
    last_completion_tokens: int | None = None
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
        self._running: set[threading.Event] = set()
        """The cancel events of the generations under way (:meth:`stop_all`)."""

    def app(self, host: str = "127.0.0.1", key: str | None = None) -> Starlette:
        """The routes, behind the :class:`~ponder.app.http_guard.Guard` for ``host``."""
        return Starlette(
            middleware=[Middleware(Guard, host=host, key=key)],
            routes=[
                Route("/health", self.health),
                Route("/metrics", self.metrics),
                Route("/v1/models", self.models),
                Route("/v1/models/{model:path}", self.one_model),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
            ],
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.model})

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._model_object()]})

    async def metrics(self, request: Request) -> Response:
        slots = self.backend.slots
        return JSONResponse(
            {
                "model": self.model,
                "path": str(self.backend.path),
                "context_size": self.backend.context_size,
                "requests": self.stats.requests,
                "waiting": self.stats.waiting,
                "abandoned": self.stats.abandoned,
                "cached_conversations": len(slots.saved),
                "kv_saved_bytes": slots.used_bytes,
                "kv_restores": slots.restores,
                "prefill_tokens_per_s": self.stats.last_prefill_tokens_per_s,
                "decode_tokens_per_s": self.stats.last_decode_tokens_per_s,
                "last_completion_tokens": self.stats.last_completion_tokens,
                "uptime_s": round(time.time() - self.stats.started, 1),
                "rss_bytes": _rss_bytes(),
            }
        )

    async def one_model(self, request: Request) -> Response:
        if request.path_params["model"] != self.model:
            name = request.path_params["model"]
            return api_error(404, f"The model `{name}` does not exist", "model", "model_not_found")
        return JSONResponse(self._model_object())

    def _model_object(self) -> dict[str, Any]:
        return {"id": self.model, "object": "model", "created": int(self.stats.started),
                "owned_by": "ponder", "max_model_len": self.backend.context_size}  # fmt: skip

    async def chat(self, request: Request) -> Response:
        try:
            asked = await read_request(request)
            refused = asked.refusal(self.model)
            if refused is not None:
                raise refused
            messages, tools = asked.conversation()
        except ApiError as error:
            return error.response()
        include_usage = asked.stream_options is not None and asked.stream_options.include_usage
        chunks = self._completion(
            messages,
            tools,
            asked.settings(),
            Chunks(self.model, include_usage or not asked.stream),
            StopAt(asked.stops()),
        )
        beginning = asyncio.ensure_future(anext(chunks))  # the turn, the prefill, a first token
        if not await _unless_gone(request, beginning):
            return Response(status_code=499)
        try:
            first = beginning.result()  # the prompt is checked before the answer starts
        except ContextOverflow as error:
            return api_error(400, str(error), "messages", "context_length_exceeded")
        except BackendError as error:
            return JSONResponse({"error": {"message": str(error), "type": "server_error",
                                           "param": None, "code": None}}, 500)  # fmt: skip
        if asked.stream:
            return StreamingResponse(_sse(first, chunks), media_type="text/event-stream")
        whole = asyncio.create_task(_whole(first, chunks))
        if not await _unless_gone(request, whole):
            return Response(status_code=499)
        try:
            return JSONResponse(whole.result())
        except BackendError as error:
            return JSONResponse({"error": {"message": str(error), "type": "server_error",
                                           "param": None, "code": None}}, 500)  # fmt: skip

    async def _completion(
        self,
        messages: list[Message],
        tools: list[ToolSchema],
        settings: GenerationSettings,
        chunks: Chunks,
        stop: StopAt,
    ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI chunks of one completion, generated on a worker thread when the model is free;
        a client that goes away (or a stop sequence) stops the generation."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()
        self._running.add(cancel)
        left = threading.Event()
        """The client went away before the answer was complete."""

        def generate() -> None:
            try:
                for delta in self.backend.stream(messages, tools, settings, cancel):
                    if isinstance(delta, Usage):  # here: a request whose client left has one too
                        self.stats.last_prefill_tokens_per_s = delta.prefill_tokens_per_s
                        self.stats.last_decode_tokens_per_s = delta.decode_tokens_per_s
                        self.stats.last_completion_tokens = delta.completion_tokens
                    loop.call_soon_threadsafe(queue.put_nowait, delta)
            except BaseException as error:  # handed to the request, which reports it
                loop.call_soon_threadsafe(queue.put_nowait, error)
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is closed: the server ends
                    loop.call_soon_threadsafe(queue.put_nowait, None)
                    loop.call_soon_threadsafe(self._generated, left.is_set())

        self.stats.waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self.stats.waiting -= 1
        self.stats.requests += 1
        # The model is the worker's until it has stopped: it hands the turn on itself. (A
        # request cancelled because its client left cannot wait for anything any more.)
        worker = threading.Thread(target=generate, name="serve-generate", daemon=True)
        try:
            worker.start()
        except BaseException:
            self._turn.release()
            raise
        try:
            started = False
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                if stop.hit and not isinstance(item, Usage | Finished):
                    continue  # generated before the stop took hold: not the answer's
                if not started:
                    started = True
                    yield chunks.first()
                if isinstance(item, ContentDelta):
                    item = ContentDelta(stop.feed(item.text))
                    if stop.hit:
                        cancel.set()  # the answer is complete: no more tokens for it
                elif isinstance(item, Finished):
                    if held := stop.rest():
                        for chunk in chunks.of(ContentDelta(held)):
                            yield chunk
                    if stop.hit:
                        item = Finished("stop")
                if isinstance(item, ContentDelta) and not item.text:
                    continue
                for chunk in chunks.of(item):
                    yield chunk
            for chunk in chunks.last():
                yield chunk
        except (asyncio.CancelledError, GeneratorExit):  # the client went away
            left.set()
            raise
        finally:
            cancel.set()  # the client went away, or the generation ended: either way, stop
            self._running.discard(cancel)

    def stop_all(self) -> None:
        """The server is stopping: every answer under way ends now, as if at its limit."""
        for cancel in list(self._running):
            cancel.set()

    def _generated(self, abandoned: bool) -> None:
        """A generation has ended (on the loop's thread): the next request may have the model."""
        self.stats.abandoned += abandoned
        self._turn.release()


async def _unless_gone(request: Request, work: asyncio.Future[Any]) -> bool:
    """Wait for ``work``; when the client goes away first, cancel it (its generation stops, or
    it never starts) and say False."""
    while not (await asyncio.wait({work}, timeout=DISCONNECT_POLL_S))[0]:
        if await request.is_disconnected():  # nobody waits for the answer: stop making it
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            return False
    return True


async def _sse(first: dict[str, Any], chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    yield f"data: {json.dumps(first, ensure_ascii=False)}\n\n"
    try:
        async for chunk in chunks:
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
    except BackendError as error:  # mid-answer: the status is sent; the stream says it
        error_body = {"message": str(error), "type": "server_error", "param": None, "code": None}
        yield f"data: {json.dumps({'error': error_body})}\n\n"
    yield "data: [DONE]\n\n"


async def _whole(first: dict[str, Any], chunks: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """A non-streaming completion: the chunks gathered into one message."""
    reasoning, content, calls = [], [], []
    usage: dict[str, Any] | None = None
    finish = "stop"
    base = first
    async for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            delta = choice["delta"]
            reasoning.append(delta.get("reasoning_content", ""))
            content.append(delta.get("content", ""))
            calls += delta.get("tool_calls", [])
            finish = choice["finish_reason"] or finish
    text = "".join(content)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    return {
        "id": base["id"],
        "object": "chat.completion",
        "created": base["created"],
        "model": base["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


def _rss_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
