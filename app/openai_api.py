"""What ``ponder serve`` takes and answers, in the shapes of OpenAI's Chat Completions API.

A request is checked here before it reaches the model (:class:`ChatRequest`): a field of the
wrong type, a parameter ponder cannot honour (``n`` over 1, a forced tool call, a response
format) or a model the server does not hold is a 4xx in OpenAI's error shape
(:func:`api_error`), never a 500 or a parameter silently ignored. The chunks of a streamed
answer follow the order OpenAI sends them in (:class:`Chunks`): the role first, the finish
reason, then the usage only when ``stream_options.include_usage`` asks for it.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse

from ponder.model.deltas import (
    ContentDelta,
    Delta,
    Finished,
    ReasoningDelta,
    ToolCallEnd,
    Usage,
)
from ponder.model.messages import Message, ToolSchema
from ponder.model.options import GenerationSettings

MAX_BODY_BYTES = 32 * 2**20
"""A request body larger than this is refused (413) before it is read whole."""
MAX_STOP = 4
"""Stop sequences a request may give (as OpenAI allows)."""


class ApiError(Exception):
    """A request the server refuses, as OpenAI words a refusal."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code

    def response(self) -> JSONResponse:
        return api_error(self.status, str(self), self.param, self.code)


def api_error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error"}
    body = {"message": message, "type": kind.get(status, "invalid_request_error"),
            "param": param, "code": code}  # fmt: skip
    return JSONResponse({"error": body}, status)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Function(_Strict):
    name: str
    arguments: str | dict[str, Any] = ""


class _ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: _Function


class _Part(_Strict):
    type: str
    text: str | None = None


class _Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_Part] | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_content: str | None = None

    def message(self) -> Message:
        data = self.model_dump(exclude_none=True)
        if data["role"] == "developer":  # OpenAI's newer name for the system message
            data["role"] = "system"
        return Message.from_openai(data)


class _FunctionSpec(_Strict):
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None


class _Tool(_Strict):
    type: Literal["function"] = "function"
    function: _FunctionSpec

    def tool_schema(self) -> ToolSchema:
        parameters = self.function.parameters or {"type": "object", "properties": {}}
        return ToolSchema(
            name=self.function.name, description=self.function.description, parameters=parameters
        )


class _StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(_Strict):
    """A chat completion request: what ponder honours, checked; other fields are ignored."""

    model: str | None = None
    messages: list[_Message] = Field(min_length=1)
    tools: list[_Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    min_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_reasoning_tokens: int | None = Field(default=None, ge=0)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1)
    response_format: dict[str, Any] | None = None

    @field_validator("temperature", "top_p", "min_p", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return float(value) if type(value) is int else value  # 1 is a number, "1" is not

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP or any(not stop for stop in stops):
            raise ValueError(f"at most {MAX_STOP} stop sequences, none of them empty")
        return value

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def refusal(self, served: str) -> ApiError | None:
        """Why the request cannot be served as asked (None when it can)."""
        if self.model not in (None, served):
            return ApiError(404, f"The model `{self.model}` does not exist; this server holds "
                            f"`{served}`.", "model", "model_not_found")  # fmt: skip
        if self.n != 1:
            return ApiError(400, "n must be 1: ponder serve makes one choice per request", "n")
        if self.tool_choice not in (None, "none", "auto"):
            return ApiError(400, "tool_choice may be none or auto: ponder serve cannot force a "
                            "tool call", "tool_choice")  # fmt: skip
        kind = (self.response_format or {}).get("type", "text")
        if kind != "text":
            return ApiError(400, f"response_format {kind!r} is not supported (text only)",
                            "response_format")  # fmt: skip
        return None

    def conversation(self) -> tuple[list[Message], list[ToolSchema]]:
        tools = [] if self.tool_choice == "none" else [t.tool_schema() for t in self.tools or []]
        return [m.message() for m in self.messages], tools

    def settings(self) -> GenerationSettings:
        wanted: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "min_p": self.min_p,
            "top_k": self.top_k,
            "max_new_tokens": self.max_completion_tokens or self.max_tokens,
            "max_reasoning_tokens": self.max_reasoning_tokens,
        }
        return GenerationSettings(**{k: v for k, v in wanted.items() if v is not None})


async def read_request(request: Request) -> ChatRequest:
    """The request's body as a :class:`ChatRequest`; :class:`ApiError` for anything else."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":  # (text/plain is what a web page may send unasked)
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is over {MAX_BODY_BYTES // 2**20} MiB")
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is over {MAX_BODY_BYTES // 2**20} MiB")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep to parse
        raise ApiError(400, f"the body is not JSON: {str(error)[:200]}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # "\ud800": JSON may say it, no text holds it
        raise ApiError(400, "the body holds a lone surrogate (\\ud800-\\udfff): not text") from None
    try:
        return ChatRequest.model_validate(data)
    except (ValidationError, RecursionError) as error:
        raise _invalid(error) from None


def _invalid(error: ValidationError | RecursionError) -> ApiError:
    if isinstance(error, RecursionError):
        return ApiError(400, "the request is nested too deeply")
    first = error.errors()[0]
    param = ".".join(str(part) for part in first["loc"])
    return ApiError(400, f"Invalid value for '{param}': {first['msg']}", param,
                    "invalid_value")  # fmt: skip


class Chunks:
    """OpenAI chunks of one streamed completion, in OpenAI's order: a role chunk first, then
    the text and calls, the finish reason, and the usage last (only when it was asked for)."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion.chunk",
                     "created": int(time.time()), "model": model}  # fmt: skip
        self.include_usage = include_usage
        self.calls = 0
        self.usage: dict[str, Any] | None = None

    def first(self) -> dict[str, Any]:
        return self._choice({"role": "assistant", "content": ""})

    def of(self, delta: Delta) -> list[dict[str, Any]]:
        """The chunks ``delta`` makes (none for most of what is not text or a call)."""
        if isinstance(delta, ReasoningDelta):
            return [self._choice({"reasoning_content": delta.text})]
        if isinstance(delta, ContentDelta):
            return [self._choice({"content": delta.text})]
        if isinstance(delta, ToolCallEnd):
            call = delta.call
            function = {"name": call.name, "arguments": call.raw_arguments}
            piece = {"index": self.calls, "id": call.id, "type": "function", "function": function}
            self.calls += 1
            return [self._choice({"tool_calls": [piece]})]
        if isinstance(delta, Usage):
            self.usage = usage_of(delta)
        if isinstance(delta, Finished):
            return [self.finish(delta.reason)]
        return []

    def finish(self, reason: str) -> dict[str, Any]:
        shown = "length" if reason == "length" else "tool_calls" if self.calls else "stop"
        return self._choice({}, shown)

    def last(self) -> list[dict[str, Any]]:
        """The usage chunk, when asked for (``choices`` empty, as OpenAI sends it)."""
        if not self.include_usage:
            return []
        return [{**self.base, "choices": [], "usage": self.usage}]

    def _choice(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def usage_of(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


class StopAt:
    """The answer's text cut at the first of the request's stop sequences. Text that may be
    the start of one is held back until the next piece settles it."""

    def __init__(self, stops: list[str]) -> None:
        self.stops = stops
        self.held = ""
        self.hit = False

    def feed(self, text: str) -> str:
        """What of ``text`` may be sent now."""
        if not self.stops:
            return text
        text = self.held + text
        found = [at for at in (text.find(stop) for stop in self.stops) if at >= 0]
        if found:
            self.hit, self.held = True, ""
            return text[: min(found)]
        longest = max(len(stop) for stop in self.stops) - 1
        hold = next(
            (n for n in range(min(longest, len(text)), 0, -1)
             if any(stop.startswith(text[-n:]) for stop in self.stops)),
            0,
        )  # fmt: skip
        self.held = text[len(text) - hold :]
        return text[: len(text) - hold]

    def rest(self) -> str:
        """What was held back, at the end (no stop sequence came)."""
        held, self.held = self.held, ""
        return held
