"""The OpenAI-compatible backend: Moonshot's platform, vLLM, SGLang, llama-server.

Streams chat completions with tools. Reasoning arrives as ``reasoning_content`` (or
``reasoning``) deltas, tool calls as structured deltas; servers that pass K2's raw markers through
as content are handled by running content through the K2 parser. Every assistant message with tool
calls goes back with its ``reasoning_content``, which thinking servers require. Rate limits,
server errors and dropped connections are retried with backoff (``Retry-After`` honoured) as long
as nothing of the answer has been streamed yet; other client errors are reported, not retried.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import Any

import httpx

from ponder.model.backend import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    estimate_tokens,
)
from ponder.model.chat_template import ChatTemplate
from ponder.model.deltas import (
    Delta,
    Finished,
    ReasoningDelta,
    Retrying,
    StopReason,
    Usage,
)
from ponder.model.k2_parser import K2OutputParser, valid_unicode
from ponder.model.messages import Message, ToolSchema
from ponder.model.openai_chunks import StreamedCalls, reasoning_of, usage_of
from ponder.model.options import GenerationSettings, OpenAIOptions

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 120.0


REFUSED_RETRIES = 2
"""Retries when nothing listens at the server's address (a server starting up is back within
a few seconds; one that is down will not be, and the person waits for nothing)."""
MODELS_WAIT_S = 5.0
"""The most time the server's model list may take, all of it."""
MODELS_MAX_BYTES = 1 << 20
MAX_PLAUSIBLE_CONTEXT = 100_000_000
ASSUMED_CONTEXT_SIZE = 262_144
"""K2 Thinking's context, used when neither the configuration nor the server gives one."""
ANSWER_ALLOWANCE = 8192
"""Tokens a step may write after its reasoning budget (the answer or the tool calls)."""


def parse_spec(target: str) -> tuple[str, str]:
    """``URL#MODEL`` -> (base URL, model)."""
    url, sep, model = target.partition("#")
    wanted = f"openai model spec wants openai:http(s)://HOST/v1#MODEL, got openai:{target}"
    if not sep or not model or not url.startswith(("http://", "https://")):
        raise ConfigurationError(wanted)
    try:
        httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ConfigurationError(f"{wanted} ({error})") from None
    return url.rstrip("/"), model


def request_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        item = message.to_openai()
        if item["role"] == "assistant" and item.get("tool_calls") and not item["content"]:
            item["content"] = None
        out.append(item)
    return out


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


def _error_message(response: httpx.Response) -> str:
    try:
        body = json.loads(response.read())
    except (ValueError, httpx.HTTPError):
        return response.reason_phrase
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _plausible_context(value: object) -> int | None:
    """A context size a server said, if it is one (not a bool, not absurd)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= MAX_PLAUSIBLE_CONTEXT else None


class OpenAICompatBackend:
    def __init__(self, target: str, options: OpenAIOptions | None = None) -> None:
        self.base_url, self.model = parse_spec(target)
        self.options = options or OpenAIOptions()
        headers = {"Accept": "text/event-stream"}
        key = os.environ.get(self.options.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._template = ChatTemplate.official()
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(
                self.options.read_timeout_s, connect=self.options.connect_timeout_s
            ),
        )
        self._context = self._find_context()

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    @property
    def context_size(self) -> int:
        return self._context[0]

    @property
    def context_source(self) -> str:
        return self._context[1]

    def _find_context(self) -> tuple[int, str]:
        """The configured context size; else what the server's model list says
        (``max_model_len``: vLLM, SGLang, ``ponder serve``); else an assumed default. The list
        is hostile input: read within :data:`MODELS_WAIT_S` in all, at most
        :data:`MODELS_MAX_BYTES`, and only a plausible size is believed."""
        if self.options.context_size is not None:
            return self.options.context_size, "configured"
        try:
            listed = json.loads(self.models_list())["data"]
            sizes = {m.get("id"): m.get("max_model_len") for m in listed if isinstance(m, dict)}
            only = next(iter(sizes.values())) if len(sizes) == 1 else None
            said = _plausible_context(sizes.get(self.model) or only)
            if said is not None:
                return said, "the server"
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            pass
        name = self.model if re.fullmatch(r"[A-Za-z0-9_-]+", self.model) else json.dumps(self.model)
        return ASSUMED_CONTEXT_SIZE, (
            f"assumed: neither the configuration nor the server gave it; set [models.{name}]"
            " context_size"
        )

    def models_list(self) -> bytes:
        """The body of the server's ``GET /models``; raises ``httpx.HTTPError`` when it cannot
        be had, ``ValueError`` when it is too long or too slow."""
        deadline = time.monotonic() + MODELS_WAIT_S
        body = bytearray()
        with self._client.stream("GET", f"{self.base_url}/models", timeout=MODELS_WAIT_S) as got:
            got.raise_for_status()
            for chunk in got.iter_bytes():
                body += chunk
                if len(body) > MODELS_MAX_BYTES or time.monotonic() > deadline:
                    raise ValueError("the model list is too long or too slow")
        return bytes(body)

    def count_tokens(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> int:
        return estimate_tokens(self._template.render(messages, tools))

    def _payload(
        self, messages: Sequence[Message], tools: Sequence[ToolSchema], settings: GenerationSettings
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": request_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": settings.temperature,
            "top_p": settings.top_p,
        }
        if tools:
            payload["tools"] = [tool.to_openai() for tool in tools]
        limit = settings.max_new_tokens
        if settings.max_reasoning_tokens is not None:
            # A server cannot be told to stop thinking, so the whole step is capped instead.
            capped = settings.max_reasoning_tokens + ANSWER_ALLOWANCE
            limit = capped if limit is None else min(limit, capped)
        if limit is not None:
            payload["max_tokens"] = limit
        return payload

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSchema],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Delta]:
        payload = self._payload(messages, tools, settings)
        url = f"{self.base_url}/chat/completions"
        attempt = 0
        while True:
            streamed = False
            allowed = self.options.max_retries
            try:
                with (
                    self._client.stream("POST", url, json=payload) as response,
                    _closing_on(cancel, response),
                ):
                    if response.status_code >= 400:
                        problem = self._failed(response)
                        delay = self._backoff(attempt, problem, _retry_after(response))
                    else:
                        prompt = partial(self.count_tokens, messages, tools)
                        for delta in self._read(response, prompt):
                            streamed = True
                            yield delta
                        return
            except (httpx.TransportError, httpx.DecodingError, httpx.StreamClosed) as exc:
                if cancel is not None and cancel.is_set():
                    yield Finished("cancelled")
                    return
                if streamed:
                    raise BackendUnavailable(
                        f"{self.base_url} dropped the connection mid-response ({exc})"
                    ) from None
                problem = f"cannot reach {self.base_url} ({exc})"
                if isinstance(exc, httpx.ConnectError):  # nothing listens there
                    allowed = min(allowed, REFUSED_RETRIES)
                delay = self._backoff(attempt, problem, allowed=allowed)
            attempt += 1
            yield Retrying(attempt, allowed + 1, problem, delay)
            if cancel is not None and cancel.wait(delay):
                yield Finished("cancelled")
                return
            if cancel is None:
                time.sleep(delay)

    def _backoff(
        self, attempt: int, problem: str, hint: float | None = None, allowed: int | None = None
    ) -> float:
        """The wait before the next attempt; raises once ``allowed`` retries (by default the
        configured ``max_retries``) were made."""
        if attempt >= (self.options.max_retries if allowed is None else allowed):
            raise BackendUnavailable(f"{problem}; gave up after {attempt + 1} attempts")
        delay = self.options.retry_base_s * 2**attempt
        return min(hint, MAX_RETRY_AFTER_S) if hint is not None else delay

    def _failed(self, response: httpx.Response) -> str:
        """What went wrong, when trying again may help; raises when it cannot."""
        message = _error_message(response)
        status = response.status_code
        if status in RETRYABLE_STATUS:
            return f"{self.base_url} answered {status}: {message}"
        if status in (401, 403):
            raise ConfigurationError(
                f"{self.base_url} refused the request ({status}: {message}); check the API key "
                f"in ${self.options.api_key_env}"
            )
        raise BackendError(f"{self.base_url} rejected the request ({status}: {message})")

    def _read(self, response: httpx.Response, prompt_tokens: Callable[[], int]) -> Iterator[Delta]:
        """The server's events as deltas. Servers that send no usage while streaming (llama-cpp-
        python's) get one estimated: a streamed piece is a token, the prompt is counted here.
        The decode rate, which servers do not send, is timed from the pieces."""
        parser = K2OutputParser()
        calls = StreamedCalls()
        usage: Usage | None = None
        reason: StopReason = "stop"
        pieces = 0
        first = 0.0
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise BackendError(
                    f"{self.base_url} sent a malformed event: {data[:200]}"
                ) from None
            if chunk.get("error"):
                raise BackendError(
                    f"{self.base_url} reported an error mid-stream: {chunk['error']}"
                )
            if chunk.get("usage"):
                usage = usage_of(chunk["usage"]) or usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content") or delta.get("tool_calls") or reasoning_of(delta):
                    pieces += 1
                    first = first or time.perf_counter()
                reasoning = reasoning_of(delta)
                if reasoning:
                    yield ReasoningDelta(valid_unicode(reasoning))
                if delta.get("content"):
                    yield from parser.feed(delta["content"])
                for piece in delta.get("tool_calls") or []:
                    calls.update(piece)
                if choice.get("finish_reason") == "length":
                    reason = "length"
        yield from parser.close()
        yield from calls.finish()
        ended = time.perf_counter()
        if usage is None:
            usage = Usage(
                prompt_tokens=prompt_tokens(),
                cached_tokens=0,
                completion_tokens=pieces,
                estimated=True,
            )
        if usage.decode_tokens_per_s is None and usage.completion_tokens > 1 and ended > first > 0:
            usage = replace(
                usage, decode_tokens_per_s=(usage.completion_tokens - 1) / (ended - first)
            )
        yield usage
        yield Finished(reason)

    def close(self) -> None:
        self._client.close()


@contextmanager
def _closing_on(cancel: threading.Event | None, response: httpx.Response) -> Iterator[None]:
    """Close ``response`` from a watcher thread as soon as ``cancel`` is set, which makes a read
    that waits on the server fail at once instead of after the read timeout."""
    if cancel is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            if cancel.is_set():
                response.close()
                return

    watcher = threading.Thread(target=watch, name="ponder-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
