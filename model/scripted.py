"""A backend that replays recorded K2 completions, one per step.

The file is JSONL: one ``{"completion": "<raw K2 text>"}`` per line, special tokens written
literally. Each completion streams in small chunks through the same K2 parser as a real model's
output, so tests, the demo and benchmarks exercise the real path without weights.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ponder.model.backend import BackendError, ConfigurationError, estimate_tokens
from ponder.model.deltas import Delta, Finished, Usage
from ponder.model.k2_parser import K2OutputParser
from ponder.model.messages import Message, ToolSchema
from ponder.model.options import GenerationSettings


def load_script(path: Path) -> list[str]:
    """Read completions from a JSONL file; raises :class:`ConfigurationError` on bad input."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigurationError(f"scripted model file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read scripted model file {path}: {exc}") from None
    completions: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("completion"), str):
            raise ConfigurationError(f'{path}:{number}: expected {{"completion": "<text>"}}')
        completions.append(record["completion"])
    if not completions:
        raise ConfigurationError(f"scripted model file {path} holds no completions")
    return completions


MESSAGE_MARKERS = "<|im_user|>user<|im_middle|><|im_end|>"
"""About what K2's template adds around each message."""


class ScriptedBackend:
    """Replays ``completions`` in order, one per :meth:`stream` call.

    ``chunk_chars`` sets the size of the streamed pieces and ``chunk_delay`` the pause between
    them (the demo uses a small delay so people can watch the reasoning arrive). Token counts
    are estimates (:meth:`count_tokens`), and ``context_size`` is whatever the caller says.
    """

    def __init__(
        self,
        completions: Sequence[str],
        *,
        label: str = "scripted",
        chunk_chars: int = 4,
        chunk_delay: float = 0.0,
        context_size: int | None = None,
    ) -> None:
        self._completions = list(completions)
        self._next = 0
        self._label = label
        self._chunk_chars = max(1, chunk_chars)
        self._chunk_delay = chunk_delay
        self._context_size = context_size

    @classmethod
    def from_file(
        cls, path: str | Path, *, chunk_chars: int = 4, chunk_delay: float = 0.0
    ) -> ScriptedBackend:
        file = Path(path).expanduser()
        return cls(
            load_script(file),
            label=f"scripted:{file.name}",
            chunk_chars=chunk_chars,
            chunk_delay=chunk_delay,
        )

    @property
    def name(self) -> str:
        return self._label

    @property
    def context_size(self) -> int | None:
        return self._context_size

    @property
    def context_source(self) -> str:
        return "the script's caller"

    def count_tokens(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> int:
        """An estimate from what the messages and tools hold, plus each message's markers.

        Rendering the chat template for every step's usage would make a long scripted run
        quadratic in time, for a figure that is an estimate either way."""
        parts = [schema.model_dump_json() for schema in tools]
        for message in messages:
            parts += [message.content, message.reasoning or "", MESSAGE_MARKERS]
            parts += [call.name + call.arguments for call in message.tool_calls]
        return estimate_tokens("".join(parts))

    @property
    def remaining(self) -> int:
        """Completions not replayed yet."""
        return len(self._completions) - self._next

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSchema],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Delta]:
        if self._next >= len(self._completions):
            raise BackendError(
                f"{self._label}: the script has no completion left for step {self._next + 1} "
                f"(it holds {len(self._completions)})"
            )
        text = self._completions[self._next]
        self._next += 1
        parser = K2OutputParser()
        sent = 0
        for start in range(0, len(text), self._chunk_chars):
            if cancel is not None and cancel.wait(self._chunk_delay):
                yield from parser.close()
                yield Finished("cancelled")
                return
            if cancel is None and self._chunk_delay:
                time.sleep(self._chunk_delay)
            yield from parser.feed(text[start : start + self._chunk_chars])
            sent = start + self._chunk_chars
            if parser.done:
                break
        yield from parser.close()
        yield Usage(
            prompt_tokens=self.count_tokens(messages, tools),
            cached_tokens=0,
            completion_tokens=estimate_tokens(text[:sent]),
        )
        yield Finished("stop")

    def close(self) -> None:
        self._next = len(self._completions)
