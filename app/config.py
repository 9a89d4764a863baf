"""Configuration: defaults, then the TOML file, then ``PONDER_*`` variables, then flags."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, ValidationError

from ponder.sandbox.image import DEFAULT_IMAGE


class ConfigError(Exception):
    """The configuration is unusable; the message names the file or variable at fault."""


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """The model: ``llamacpp:PATH.gguf``, ``openai:URL#MODEL`` or ``scripted:PATH.jsonl``."""
    image: str = DEFAULT_IMAGE
    """Docker image for the sandbox (``ponder sandbox build`` makes the default one)."""
    network: bool = False
    """Give the sandbox a network. Off by default: commands cannot reach anything."""
    max_steps: int = 300
    """Most model steps (one generation plus its tool calls) in one task."""
    theme: str = "ponder-dark"
    """TUI theme: ponder-dark, or a theme from the config directory's themes/ folder."""


def config_dir() -> Path:
    return platformdirs.user_config_path("ponder")


def config_file() -> Path:
    return Path(os.environ.get("PONDER_CONFIG", config_dir() / "config.toml"))


def _from_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _from_environment() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Config.model_fields:
        value = os.environ.get(f"PONDER_{name.upper()}")
        if value is not None:
            values[name] = value
    return values


def load_config(flags: dict[str, Any] | None = None) -> Config:
    """The effective configuration; ``flags`` holds command-line values that were given."""
    path = config_file()
    layers = [(str(path), _from_file(path)), ("PONDER_* variables", _from_environment())]
    merged: dict[str, Any] = {}
    for source, values in layers:
        merged.update(values)
        try:
            Config.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(f"invalid configuration in {source}: {_describe(exc)}") from None
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    return Config.model_validate(merged)


def _describe(exc: ValidationError) -> str:
    problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return "; ".join(problems)


NO_MODEL_HELP = """ponder needs a model. Point it at one of:
  a Kimi K2 Thinking GGUF   ponder --model llamacpp:/models/Kimi-K2-Thinking-00001-of-00008.gguf
  an OpenAI-compatible API  ponder --model 'openai:https://api.moonshot.ai/v1#kimi-k2-thinking'
                            (also vLLM, SGLang or llama-server: openai:http://HOST:PORT/v1#MODEL)
Set it once with the PONDER_MODEL environment variable or in {config}:
  model = "llamacpp:/models/kimi-k2-thinking.gguf"
Or try ponder without any model: ponder demo"""
