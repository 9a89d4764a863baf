"""The seam between the runtime and whatever produces model output.

A backend is named by a spec string: ``scripted:PATH`` (a recorded trajectory),
``llamacpp:PATH.gguf`` (a local model) or ``openai:URL#MODEL`` (an OpenAI-compatible server).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from ponder.model.deltas import Delta
from ponder.model.messages import Message, ToolSchema
from ponder.model.options import GenerationSettings

if TYPE_CHECKING:
    from ponder.model.options import LlamaOptions, OpenAIOptions


class BackendError(Exception):
    """A backend cannot produce output; the message says why and what to do."""


class ConfigurationError(BackendError):
    """The backend spec or its files are wrong (a usage error, not a transient failure)."""


class ContextOverflow(BackendError):
    """The prompt does not fit the model's context."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached or is rate-limiting; trying again later may work."""


def estimate_tokens(text: str) -> int:
    """A token count for when no tokenizer is at hand (about 3.5 characters per token)."""
    return (len(text) * 2 + 6) // 7


class ChatBackend(Protocol):
    """Streams one assistant turn (reasoning, content, tool calls) for a conversation."""

    @property
    def name(self) -> str:
        """A short description for status lines, e.g. ``scripted:demo.jsonl``."""
        ...

    @property
    def context_size(self) -> int | None:
        """Tokens the model can attend to (None: unknown, no context management)."""
        ...

    @property
    def context_source(self) -> str:
        """Where :attr:`context_size` comes from, for a person ("the model file", "the
        server", "configured"; a figure ponder assumed says so: "assumed: ...")."""
        ...

    def count_tokens(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> int:
        """The prompt's size in tokens (exact where a tokenizer is loaded, else estimated)."""
        ...

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSchema],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Delta]:
        """Yield deltas for one step, ending with :class:`~ponder.model.deltas.Finished`.

        When ``cancel`` is set, generation stops within a moment (prefill included where the
        backend allows) and the step ends with ``Finished("cancelled")``.
        """
        ...

    def close(self) -> None:
        """Release what the backend holds (model weights, connections)."""
        ...


SCHEMES = ("llamacpp", "openai", "scripted")


def open_backend(
    spec: str, *, llama: LlamaOptions | None = None, openai: OpenAIOptions | None = None
) -> ChatBackend:
    """Open the backend a spec names; raises :class:`ConfigurationError` on a bad spec."""
    scheme, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise ConfigurationError(
            f"model spec {spec!r} is not SCHEME:TARGET (schemes: {', '.join(SCHEMES)})"
        )
    if scheme == "scripted":
        from ponder.model.scripted import ScriptedBackend

        return ScriptedBackend.from_file(rest)
    if scheme == "llamacpp":
        from ponder.model.llamacpp import LlamaCppBackend

        return LlamaCppBackend(rest, llama)
    if scheme == "openai":
        from ponder.model.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(rest, openai)
    raise ConfigurationError(
        f"unknown model scheme {scheme!r} in {spec!r} (schemes: {', '.join(SCHEMES)})"
    )
