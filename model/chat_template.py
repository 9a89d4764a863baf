"""Rendering a conversation into the exact prompt text the model sees.

K2's prompt format is defined by its Jinja chat template: the one embedded in a GGUF, or the
official one shipped here (``kimi_k2_thinking.jinja``) when a GGUF has none and for remote or
scripted models. The environment matches Hugging Face Transformers' (sandboxed, ``trim_blocks``,
``lstrip_blocks``, loop controls, a ``tojson`` that keeps non-ASCII characters), so the text is
byte for byte what the model was trained on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ponder.model.messages import Message, ToolSchema

OFFICIAL_TEMPLATE_FILE = "kimi_k2_thinking.jinja"
GEMMA_TEMPLATE_FILE = "gemma.jinja"


class TemplateError(Exception):
    """The chat template cannot be compiled or rendered."""


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _raise(message: str) -> None:
    raise TemplateError(message)


class ChatTemplate:
    """A compiled chat template; :meth:`render` is cheap to call every step."""

    def __init__(self, source: str, origin: str) -> None:
        self.source = source
        self.origin = origin
        environment = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
        )
        environment.filters["tojson"] = _tojson
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateError as exc:
            raise TemplateError(
                f"the chat template from {origin} does not compile: {exc}"
            ) from None

    @classmethod
    def for_architecture(cls, architecture: str) -> ChatTemplate:
        """For a GGUF without a template: Gemma's turn format for Gemma models (ponder uses
        them as small real models), K2's official template for everything else."""
        if architecture.startswith("gemma"):
            source = (resources.files("ponder.model") / GEMMA_TEMPLATE_FILE).read_text("utf-8")
            return cls(source, origin="ponder's Gemma turn format")
        return cls.official()

    @classmethod
    def official(cls) -> ChatTemplate:
        """Kimi K2 Thinking's published template, as shipped with ponder."""
        source = (resources.files("ponder.model") / OFFICIAL_TEMPLATE_FILE).read_text("utf-8")
        return cls(source, origin="ponder's copy of the official Kimi K2 Thinking template")

    def render(
        self,
        messages: Sequence[Message | Mapping[str, Any]],
        tools: Sequence[ToolSchema | Mapping[str, Any]] | None = None,
        *,
        add_generation_prompt: bool = True,
    ) -> str:
        """The prompt text for ``messages`` (and ``tools``), special tokens written literally."""
        plain_messages = [m.to_openai() if isinstance(m, Message) else dict(m) for m in messages]
        plain_tools = [t.to_openai() if isinstance(t, ToolSchema) else dict(t) for t in tools or []]
        try:
            return self._template.render(
                messages=plain_messages,
                tools=plain_tools or None,
                add_generation_prompt=add_generation_prompt,
                raise_exception=_raise,
                strftime_now=lambda fmt: datetime.now().strftime(fmt),
            )
        except jinja2.TemplateError as exc:
            raise TemplateError(
                f"rendering the chat template from {self.origin} failed: {exc}"
            ) from None
