"""Incremental parser for what Kimi K2 Thinking generates.

The model writes ``<think>reasoning</think>content`` and/or a tool section, with its special tokens
as literal text (the backends detokenize with special tokens kept). The parser is fed that text in
chunks of any size and yields deltas as soon as they are certain; feeding the same text in any
chunking gives the same reasoning, content and tool calls, in time linear in its length. It never
raises on model output: bad arguments become a call with ``error`` set, a call that cannot be run
is reported as :class:`~ponder.model.deltas.CallDropped`, and out-of-place markers are dropped.

Where real models bend the format, the parser does what vLLM's and SGLang's Kimi K2 parsers
agree on:

- Content is the text before the tool section. Text inside the section but outside a call
  (noise, whitespace) and text after the section are not content; calls in a later section
  still count.
- A call is ``<|tool_call_begin|> ID <|tool_call_argument_begin|> ARGS <|tool_call_end|>``, with
  whitespace around the id and the arguments ignored. The id must end in ``:N`` (else the call
  is dropped). When another ``<|tool_call_begin|>`` comes before a call's end, the call stands
  if its arguments are already whole JSON (the end marker was left out; llama.cpp's Kimi K2
  parser runs both), and is dropped if they are not: it was cut off, and the later one is the
  call (vLLM's arguments never cross a call's beginning).
- Whitespace before ``<think>`` does not make the reasoning content. A tool section inside the
  reasoning ends the reasoning; calls and sections left open at the end are finished.
- ``<|tool_call_section_begin|>`` (singular) is taken like the plural form.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

from ponder.model.deltas import (
    CallDropped,
    ContentDelta,
    Delta,
    ParsedToolCall,
    ReasoningDelta,
    ToolCallEnd,
)


class _Marker(Enum):
    THINK_OPEN = auto()
    THINK_CLOSE = auto()
    SECTION_BEGIN = auto()
    SECTION_END = auto()
    CALL_BEGIN = auto()
    ARGUMENT_BEGIN = auto()
    CALL_END = auto()
    END_OF_TURN = auto()


_MARKERS: dict[str, _Marker] = {
    "<think>": _Marker.THINK_OPEN,
    "</think>": _Marker.THINK_CLOSE,
    "<|tool_calls_section_begin|>": _Marker.SECTION_BEGIN,
    "<|tool_call_section_begin|>": _Marker.SECTION_BEGIN,
    "<|tool_calls_section_end|>": _Marker.SECTION_END,
    "<|tool_call_section_end|>": _Marker.SECTION_END,
    "<|tool_call_begin|>": _Marker.CALL_BEGIN,
    "<|tool_call_argument_begin|>": _Marker.ARGUMENT_BEGIN,
    "<|tool_call_end|>": _Marker.CALL_END,
    "<|im_end|>": _Marker.END_OF_TURN,
}
_MARKER_RE = re.compile("|".join(re.escape(m) for m in _MARKERS))
_LONGEST_MARKER = max(len(m) for m in _MARKERS)
_CALL_ID_RE = re.compile(r"^(?:functions\.)?(?P<name>[\w.\-]+):(?P<index>\d+)$")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
MAX_NESTING = 200
"""Deepest nesting of JSON arrays and objects accepted in arguments (no tool needs more)."""


def valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (which JSON escapes like ``\\ud800`` can produce, and
    which no UTF-8 encoder takes) replaced by U+FFFD."""
    return _SURROGATE_RE.sub("\ufffd", text) if _SURROGATE_RE.search(text) else text


class _State(Enum):
    START = auto()
    REASONING = auto()
    CONTENT = auto()
    SECTION = auto()
    AFTER_SECTION = auto()
    CALL_ID = auto()
    CALL_ARGUMENTS = auto()
    DONE = auto()


def _held_back(text: str) -> int:
    """Where a possible marker prefix starts at the end of ``text`` (``len(text)`` if none).

    Every marker holds exactly one ``<``, at its start, so only the last ``<`` can begin one.
    """
    start = text.rfind("<", max(0, len(text) - _LONGEST_MARKER + 1))
    if start == -1:
        return len(text)
    tail = text[start:]
    if any(marker.startswith(tail) for marker in _MARKERS):
        return start
    return len(text)


def _nesting(text: str) -> int:
    """How deep JSON arrays and objects nest in ``text`` (brackets inside strings ignored)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_arguments(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    """Decode a call's arguments; returns (arguments, error)."""
    text = raw.strip()
    if not text:
        return {}, None
    if text.count("[") + text.count("{") > MAX_NESTING and _nesting(text) > MAX_NESTING:
        return None, f"arguments nest deeper than {MAX_NESTING} levels"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"arguments are not valid JSON ({exc.msg} at position {exc.pos})"
    if not isinstance(value, dict):
        return None, f"arguments must be a JSON object, got {type(value).__name__}"
    if "\\u" in text and _has_surrogate(value):  # only an escape can make one
        return None, "arguments hold an invalid character (a lone UTF-16 surrogate like \\ud800)"
    return value, None


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE_RE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    return False


@dataclass
class _OpenCall:
    raw_id: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    valid: bool = False
    """Set once the id is known and has its ``:N``; calls without a valid id are dropped."""
    name: str = ""
    call_id: str = ""


@dataclass
class ParsedCompletion:
    reasoning: str = ""
    content: str = ""
    tool_calls: list[ParsedToolCall] = field(default_factory=list)
    dropped: list[CallDropped] = field(default_factory=list)
    """Calls the model wrote that cannot be run (no ``:N`` index, cut off by another call)."""


class K2OutputParser:
    """Feed raw completion text with :meth:`feed`, then call :meth:`close` once at the end."""

    def __init__(self) -> None:
        self._bytes = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._state = _State.START
        self._call: _OpenCall | None = None
        self._leading = ""
        """Whitespace before anything else, held until it is known whether ``<think>`` follows."""
        self._reasoning: list[str] = []
        self._content: list[str] = []
        self._calls: list[ParsedToolCall] = []
        self._dropped: list[CallDropped] = []

    @property
    def result(self) -> ParsedCompletion:
        return ParsedCompletion(
            "".join(self._reasoning),
            "".join(self._content),
            list(self._calls),
            list(self._dropped),
        )

    @property
    def in_reasoning(self) -> bool:
        """Inside ``<think>`` … ``</think>`` right now."""
        return self._state is _State.REASONING

    @property
    def done(self) -> bool:
        """True once the end-of-turn marker was seen; later text is ignored."""
        return self._state is _State.DONE

    def feed(self, text: str) -> Iterator[Delta]:
        self._buffer += valid_unicode(text)
        keep = _held_back(self._buffer)
        ready, self._buffer = self._buffer[:keep], self._buffer[keep:]
        yield from self._scan(ready)

    def feed_bytes(self, data: bytes) -> Iterator[Delta]:
        """Feed raw UTF-8 bytes; a character split across calls is decoded once it is whole."""
        yield from self.feed(self._bytes.decode(data))

    def close(self) -> Iterator[Delta]:
        """Flush what was held back and finish an unterminated call."""
        ready, self._buffer = self._buffer + self._bytes.decode(b"", final=True), ""
        yield from self._scan(ready)
        if self._state in (_State.CALL_ID, _State.CALL_ARGUMENTS):
            yield from self._finish_call()
        self._state = _State.DONE

    def _scan(self, text: str) -> Iterator[Delta]:
        position = 0
        for match in _MARKER_RE.finditer(text):
            if match.start() > position:
                yield from self._on_text(text[position : match.start()])
            yield from self._on_marker(_MARKERS[match.group()])
            position = match.end()
        if position < len(text):
            yield from self._on_text(text[position:])

    def _on_text(self, text: str) -> Iterator[Delta]:
        state = self._state
        if state is _State.START:
            if not text.strip():
                self._leading += text
                return
            text, self._leading = self._leading + text, ""
            state = self._state = _State.CONTENT
        if state is _State.REASONING:
            self._reasoning.append(text)
            yield ReasoningDelta(text)
        elif state is _State.CONTENT:
            self._content.append(text)
            yield ContentDelta(text)
        elif state is _State.CALL_ID:
            assert self._call is not None
            self._call.raw_id.append(text)
        elif state is _State.CALL_ARGUMENTS:
            assert self._call is not None
            self._call.arguments.append(text)
        # In a section outside a call, or after the section: not content (vLLM, SGLang).

    def _on_marker(self, marker: _Marker) -> Iterator[Delta]:
        state = self._state
        if state is _State.DONE:
            return
        if state is _State.START:
            self._leading = ""
            if marker is _Marker.THINK_OPEN:
                self._state = _State.REASONING
                return
            state = self._state = _State.CONTENT

        if state in (_State.CALL_ID, _State.CALL_ARGUMENTS):
            if marker is _Marker.ARGUMENT_BEGIN and state is _State.CALL_ID:
                self._begin_arguments()
            elif marker is _Marker.CALL_BEGIN:
                if self._arguments_complete():  # its end marker left out: the call stands
                    yield from self._finish_call()
                else:
                    yield from self._abandon_call("another call began before it ended")
                self._open_call()
            elif marker is _Marker.CALL_END:
                yield from self._finish_call()
                self._state = _State.SECTION
            elif marker is _Marker.SECTION_END:
                yield from self._finish_call()
                self._state = _State.AFTER_SECTION
            elif marker is _Marker.END_OF_TURN:
                yield from self._finish_call()
                self._state = _State.DONE
            return

        if marker is _Marker.END_OF_TURN:
            self._state = _State.DONE
        elif marker is _Marker.THINK_CLOSE and state is _State.REASONING:
            self._state = _State.CONTENT
        elif marker is _Marker.SECTION_BEGIN and state is not _State.SECTION:
            self._state = _State.SECTION
        elif marker is _Marker.SECTION_END and state is _State.SECTION:
            self._state = _State.AFTER_SECTION
        elif marker is _Marker.CALL_BEGIN:
            self._open_call()
        # Anything else is a marker out of its place: it is dropped.

    def _open_call(self) -> None:
        self._call = _OpenCall()
        self._state = _State.CALL_ID

    def _begin_arguments(self) -> None:
        call = self._call
        assert call is not None
        self._state = _State.CALL_ARGUMENTS
        raw_id = "".join(call.raw_id).strip()
        match = _CALL_ID_RE.match(raw_id)
        if match is None:
            return  # no ``:N`` index: not a call (vLLM, SGLang and dynamo drop it too)
        call.valid = True
        call.name = match.group("name")
        call.call_id = raw_id

    def _arguments_complete(self) -> bool:
        call = self._call
        assert call is not None
        if self._state is not _State.CALL_ARGUMENTS or not call.valid:
            return False
        text = "".join(call.arguments).strip()
        return bool(text) and parse_arguments(text)[1] is None

    def _abandon_call(self, why: str) -> Iterator[Delta]:
        call, self._call = self._call, None
        assert call is not None
        dropped = CallDropped("".join(call.raw_id).strip(), why)
        self._dropped.append(dropped)
        yield dropped

    def _finish_call(self) -> Iterator[Delta]:
        call = self._call
        assert call is not None
        if self._state is _State.CALL_ID:
            self._begin_arguments()
        if not call.valid:
            raw_id = "".join(call.raw_id).strip()
            if raw_id or call.arguments:
                yield from self._abandon_call(f"its id {raw_id!r} is not NAME:N")
            self._call = None
            return
        self._call = None
        raw_arguments = "".join(call.arguments).strip()
        arguments, error = parse_arguments(raw_arguments)
        parsed = ParsedToolCall(
            id=call.call_id,
            name=call.name,
            arguments=arguments,
            raw_arguments=raw_arguments,
            error=error,
        )
        self._calls.append(parsed)
        yield ToolCallEnd(parsed)


def parse_completion(text: str) -> ParsedCompletion:
    """Parse a whole completion at once."""
    parser = K2OutputParser()
    for _ in parser.feed(text):
        pass
    for _ in parser.close():
        pass
    return parser.result
