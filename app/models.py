"""Opening the model a spec names, with the configuration's options for it.

A ``llamacpp:`` model that a ``ponder serve`` on this machine already holds is reached through
that server instead of being loaded a second time (its context size comes from the server).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from ponder.app.config import Config
from ponder.model.backend import ChatBackend, ConfigurationError, open_backend


def open_model(config: Config, spec: str | None = None) -> ChatBackend:
    """The model ``spec`` (the configured one by default), opened with ``config``."""
    spec = spec or config.session.model
    if not spec:
        raise ConfigurationError("no model configured")
    if spec.startswith("llamacpp:"):
        from ponder.app.serve_registry import running_server

        path = Path(spec.partition(":")[2])
        url = running_server(path)
        if url is not None:  # the model is warm in a `ponder serve`: no second load
            print(f"ponder: using the model `ponder serve` holds at {url}", file=sys.stderr)
            served = replace(config.openai, context_size=None)  # the server says its own
            return open_backend(f"openai:{url}/v1#{path.name}", openai=served)
    return open_backend(spec, llama=config.llama, openai=config.openai_options(spec))
