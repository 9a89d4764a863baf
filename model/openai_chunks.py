"""What the pieces of an OpenAI-compatible stream say: structured tool-call deltas, reasoning
deltas, and the usage a server reports (checked: it is the server's word, not ponder's)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ponder.model.deltas import ParsedToolCall, ToolCallEnd, Usage
from ponder.model.k2_parser import parse_arguments, valid_unicode


class StreamedCalls:
    """Structured tool-call deltas, gathered per server index."""

    def __init__(self) -> None:
        self.open: dict[int, dict[str, Any]] = {}

    def update(self, piece: dict[str, Any]) -> None:
        key = int(piece.get("index", 0))
        function = piece.get("function") or {}
        call = self.open.get(key)
        if call is None:
            call = self.open[key] = {
                "id": valid_unicode(str(piece.get("id") or f"call_{len(self.open)}")),
                "name": valid_unicode(str(function.get("name") or "")),
                "arguments": [],
            }
        arguments = valid_unicode(str(function.get("arguments") or ""))
        if arguments:
            call["arguments"].append(arguments)  # joined at the end: += on 5 MB is quadratic

    def finish(self) -> Iterator[ToolCallEnd]:
        for call in self.open.values():
            raw = "".join(call["arguments"])
            arguments, error = parse_arguments(raw)
            yield ToolCallEnd(
                ParsedToolCall(
                    id=call["id"],
                    name=call["name"],
                    arguments=arguments,
                    raw_arguments=raw,
                    error=error,
                )
            )
        self.open.clear()


def reasoning_of(delta: dict[str, Any]) -> str:
    return str(delta.get("reasoning_content") or delta.get("reasoning") or "")


def usage_of(data: object) -> Usage | None:
    """The server's counts; None when it did not give both (ponder then counts, and says so)."""
    if not isinstance(data, dict):
        return None

    def count(value: object) -> int | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return value if ok else None  # type: ignore[return-value]

    prompt, completion = count(data.get("prompt_tokens")), count(data.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    details = data.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    cached = count(cached if cached is not None else data.get("cached_tokens")) or 0
    return Usage(
        prompt_tokens=prompt, cached_tokens=min(cached, prompt), completion_tokens=completion
    )
