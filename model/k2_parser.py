"""Incremental parser for what Kimi K2 Thinking generates.

The model writes ``<think>reasoning</think>content`` and/or a tool section, with its special tokens
as literal text (the backends detokenize with special tokens kept). The parser is fed that text in
chunks of any size and yields deltas as soon as they are certain; feeding the same text in any
chunking gives the same reasoning, content and tool calls. It never raises on model output: bad
arguments become a call with ``error`` set, and out-of-place markers are dropped from the text.

The rules where real models bend the format are in ``shared/reference/kimi-k2.md``.
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
    ContentDelta,
    Delta,
    ParsedToolCall,
    ReasoningDelta,
    ToolCallArgumentsDelta,
    ToolCallBegin,
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


class _State(Enum):
    START = auto()
    REASONING = auto()
    CONTENT = auto()
    SECTION = auto()
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


def parse_arguments(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    """Decode a call's arguments; returns (arguments, error)."""
    text = raw.strip()
    if not text:
        return {}, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"arguments are not valid JSON ({exc.msg} at position {exc.pos})"
    if not isinstance(value, dict):
        return None, f"arguments must be a JSON object, got {type(value).__name__}"
    return value, None


@dataclass
class _OpenCall:
    raw_id: str = ""
    arguments: str = ""
    index: int | None = None
    """Set once the id is known and valid; calls without a valid id are dropped."""
    name: str = ""
    call_id: str = ""


@dataclass
class ParsedCompletion:
    reasoning: str = ""
    content: str = ""
    tool_calls: list[ParsedToolCall] = field(default_factory=list)


class K2OutputParser:
    """Feed raw completion text with :meth:`feed`, then call :meth:`close` once at the end."""

    def __init__(self) -> None:
        self._bytes = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._state = _State.START
        self._call: _OpenCall | None = None
        self._section_text = ""
        self.result = ParsedCompletion()

    @property
    def in_reasoning(self) -> bool:
        """Inside ``<think>`` … ``</think>`` right now."""
        return self._state is _State.REASONING

    @property
    def done(self) -> bool:
        """True once the end-of-turn marker was seen; later text is ignored."""
        return self._state is _State.DONE

    def feed(self, text: str) -> Iterator[Delta]:
        self._buffer += text
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
        yield from self._flush_section_text()
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
            state = self._state = _State.CONTENT
        if state is _State.REASONING:
            self.result.reasoning += text
            yield ReasoningDelta(text)
        elif state is _State.CONTENT:
            self.result.content += text
            yield ContentDelta(text)
        elif state is _State.SECTION:
            self._section_text += text
        elif state is _State.CALL_ID:
            assert self._call is not None
            self._call.raw_id += text
        elif state is _State.CALL_ARGUMENTS:
            assert self._call is not None
            self._call.arguments += text
            if self._call.index is not None:
                yield ToolCallArgumentsDelta(self._call.index, text)

    def _on_marker(self, marker: _Marker) -> Iterator[Delta]:
        state = self._state
        if state is _State.DONE:
            return
        if state is _State.START:
            if marker is _Marker.THINK_OPEN:
                self._state = _State.REASONING
                return
            state = self._state = _State.CONTENT

        if state in (_State.CALL_ID, _State.CALL_ARGUMENTS):
            if marker is _Marker.ARGUMENT_BEGIN and state is _State.CALL_ID:
                yield from self._begin_arguments()
            elif marker in (_Marker.CALL_END, _Marker.CALL_BEGIN):
                yield from self._finish_call()
                self._state = _State.SECTION
                if marker is _Marker.CALL_BEGIN:
                    yield from self._open_call()
            elif marker is _Marker.SECTION_END:
                yield from self._finish_call()
                self._state = _State.CONTENT
            elif marker is _Marker.END_OF_TURN:
                yield from self._finish_call()
                self._state = _State.DONE
            return

        if marker is _Marker.END_OF_TURN:
            yield from self._flush_section_text()
            self._state = _State.DONE
        elif marker is _Marker.THINK_CLOSE and state is _State.REASONING:
            self._state = _State.CONTENT
        elif marker is _Marker.SECTION_BEGIN and state is not _State.SECTION:
            self._state = _State.SECTION
        elif marker is _Marker.SECTION_END and state is _State.SECTION:
            yield from self._flush_section_text()
            self._state = _State.CONTENT
        elif marker is _Marker.CALL_BEGIN:
            yield from self._open_call()
        # Anything else is a marker out of its place: it is dropped.

    def _open_call(self) -> Iterator[Delta]:
        yield from self._flush_section_text()
        self._call = _OpenCall()
        self._state = _State.CALL_ID

    def _begin_arguments(self) -> Iterator[Delta]:
        call = self._call
        assert call is not None
        self._state = _State.CALL_ARGUMENTS
        match = _CALL_ID_RE.match(call.raw_id.strip())
        if match is None:
            return  # no ``:N`` index: not a call (vLLM, SGLang and dynamo drop it too)
        call.index = len(self.result.tool_calls)
        call.name = match.group("name")
        call.call_id = call.raw_id.strip()
        yield ToolCallBegin(call.index, call.call_id, call.name)

    def _finish_call(self) -> Iterator[Delta]:
        call = self._call
        assert call is not None
        if self._state is _State.CALL_ID:
            yield from self._begin_arguments()
        self._call = None
        if call.index is None:
            return
        arguments, error = parse_arguments(call.arguments)
        parsed = ParsedToolCall(
            index=call.index,
            id=call.call_id,
            name=call.name,
            arguments=arguments,
            raw_arguments=call.arguments,
            error=error,
        )
        self.result.tool_calls.append(parsed)
        yield ToolCallEnd(parsed)

    def _flush_section_text(self) -> Iterator[Delta]:
        """Text inside a tool section but outside any call is kept as content, unless blank."""
        text, self._section_text = self._section_text, ""
        if text.strip():
            self.result.content += text
            yield ContentDelta(text)


def parse_completion(text: str) -> ParsedCompletion:
    """Parse a whole completion at once."""
    parser = K2OutputParser()
    for _ in parser.feed(text):
        pass
    for _ in parser.close():
        pass
    return parser.result
