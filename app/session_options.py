"""What a person sets about a session itself: the model, the sandbox, approvals, the theme.

Settings, like the layers' own (``ponder.app.settings``): the config file's top-level keys and
the flags come from these fields, their docstrings are the help. Light on purpose: the command
line is built from it before anything heavy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ponder.runtime.project_docs import MAX_BYTES


def _setting(**spec: object) -> dict[str, object]:
    return {"setting": spec}


@dataclass(frozen=True)
class SessionOptions:
    model: str | None = field(default=None, metadata=_setting(flags=["--model"]))
    """The model: llamacpp:PATH.gguf, openai:URL#MODEL or scripted:PATH.jsonl."""
    image: str | None = field(default=None, metadata=_setting(flags=["--image"]))
    """Docker image for the sandbox (unset: ponder's own, which `ponder sandbox build` makes)."""
    sandbox: Literal["docker", "local"] = field(
        default="docker", metadata=_setting(flags=["--sandbox"])
    )
    """Where commands run: a Docker container, or (local: no isolation) this machine."""
    network: bool = field(default=False, metadata=_setting(flags=["--network"]))
    """Give the sandbox a network (off: commands cannot reach anything)."""
    pass_env: tuple[str, ...] = field(default=(), metadata=_setting())
    """Host environment variables passed into the sandbox (none by default)."""
    approval: Literal["ask", "auto", "yolo"] = field(
        default="auto", metadata=_setting(flags=["--approval"])
    )
    """When to ask: ask, before every change; auto, only for the network and destructive git;
    yolo, never."""
    allow: tuple[str, ...] = field(
        default=(), metadata=_setting(flags=["--allow"], metavar="PREFIX")
    )
    """Command prefixes that never ask (e.g. "git commit")."""
    deny: tuple[str, ...] = field(default=(), metadata=_setting(flags=["--deny"], metavar="PREFIX"))
    """Command prefixes that are always refused (e.g. "rm -rf /")."""
    approve_unattended: Literal["deny", "allow"] = field(
        default="deny", metadata=_setting(flags=["--approve-unattended"])
    )
    """Without a person to ask (pipes, CI): the answer to every approval request."""
    theme: str | None = field(default=None, metadata=_setting())
    """TUI theme: ponder-dark, or one from the config directory's themes/ folder (unset: the
    one last chosen with /theme)."""
    project_doc_fallback_filenames: tuple[str, ...] = field(default=(), metadata=_setting())
    """Names tried after AGENTS.md in each folder (e.g. ["CLAUDE.md"]), as in Codex."""
    project_doc_max_bytes: int = field(default=MAX_BYTES, metadata=_setting(ge=1))
    """The most bytes of AGENTS.md instructions put in the prompt; the deepest files are kept."""
