"""Configuration: defaults, then the TOML file, then ``PONDER_*`` variables, then flags."""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, get_origin

import platformdirs
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from ponder.app.session_options import SessionOptions
from ponder.app.settings import build, settings_of, table
from ponder.model.options import GenerationSettings, LlamaOptions, OpenAIOptions
from ponder.runtime.budgets import Budgets
from ponder.runtime.mcp_client import McpServerSpec
from ponder.runtime.usage import Prices
from ponder.sandbox.disk_guard import DiskLimits


def kv_cache_dir() -> Path:
    return platformdirs.user_cache_path("ponder") / "kv"


class ConfigError(Exception):
    """The configuration is unusable; the message names the file or variable at fault."""


class McpServerSettings(BaseModel):
    """``[mcp_servers.NAME]``: an MCP server whose tools the model gets (Codex's shape).
    ``command`` (with ``args``, ``env``, ``cwd``) starts one over stdio; ``url`` reaches one
    over streamable HTTP (with ``bearer_token_env_var`` or ``http_headers``)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    bearer_token_env_var: str | None = None
    """The environment variable holding a token sent as ``Authorization: Bearer``."""
    http_headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    enabled_tools: list[str] | None = None
    """Only these tools (unset: all)."""
    disabled_tools: list[str] = Field(default_factory=list)
    startup_timeout_sec: float = Field(default=McpServerSpec.startup_timeout, gt=0)
    tool_timeout_sec: float = Field(default=McpServerSpec.tool_timeout, gt=0)

    @model_validator(mode="after")
    def _one_way_in(self) -> McpServerSettings:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (a stdio server) or url (an HTTP one)")
        return self


class ModelInfo(BaseModel):
    """``[models.NAME]``: what a server does not say about a model. NAME is the model's name in
    its spec: what follows ``#`` (``openai:URL#kimi-k2-thinking``), else the file name."""

    model_config = ConfigDict(extra="forbid")

    context_size: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("context_size", "context_window")
    )
    """The model's context in tokens (for an OpenAI-compatible server; overrides what the
    server says and ``[openai]``'s; ``context_window`` is read too)."""
    input_per_million: float | None = Field(default=None, ge=0)
    """US dollars per million prompt tokens; with output_per_million, runs report their cost."""
    cached_input_per_million: float | None = Field(default=None, ge=0)
    output_per_million: float | None = Field(default=None, ge=0)

    def prices(self) -> Prices | None:
        if self.input_per_million is None or self.output_per_million is None:
            return None
        return Prices(
            self.input_per_million, self.output_per_million, self.cached_input_per_million
        )


def model_name(spec: str) -> str:
    """The name a spec's model goes by in ``[models]``."""
    target = spec.partition(":")[2]
    return target.rpartition("#")[2] if "#" in target else Path(target).name


TABLES: dict[str, type[Any]] = {
    "sampling": GenerationSettings,
    "llama": LlamaOptions,
    "openai": OpenAIOptions,
    "disk": DiskLimits,
}
"""The config file's tables, and the dataclass whose settings each holds."""
TOP_LEVEL = (SessionOptions, Budgets)
"""The dataclasses whose settings are the file's top-level keys."""

FILE = table(
    "Config",
    *TOP_LEVEL,
    **{name: table(name, cls) for name, cls in TABLES.items()},
    models=(dict[str, ModelInfo], {}),
    mcp_servers=(
        dict[
            Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")],
            McpServerSettings,
        ],
        {},
    ),
)
"""What a config file may hold (unknown keys are refused; each setting checked)."""


@dataclass(frozen=True)
class Config:
    """The effective configuration, as the dataclasses of the layers that use it."""

    session: SessionOptions = field(default_factory=SessionOptions)
    budgets: Budgets = field(default_factory=Budgets)
    sampling: GenerationSettings = field(default_factory=GenerationSettings)
    llama: LlamaOptions = field(default_factory=LlamaOptions)
    openai: OpenAIOptions = field(default_factory=OpenAIOptions)
    disk: DiskLimits = field(default_factory=DiskLimits)
    models: Mapping[str, ModelInfo] = field(default_factory=dict)
    """Context sizes and prices by model name (``[models.kimi-k2-thinking]``)."""
    mcp_servers: Mapping[str, McpServerSettings] = field(default_factory=dict)
    """MCP servers by name (letters, digits, ``-`` and ``_``: the name is part of tool names)."""

    @classmethod
    def from_file_model(cls, values: BaseModel) -> Config:
        """The dataclasses of the settings a validated file (:data:`FILE`) holds."""
        llama = build(LlamaOptions, values.llama)  # type: ignore[attr-defined]
        return cls(
            session=build(SessionOptions, values),
            budgets=build(Budgets, values),
            sampling=build(GenerationSettings, values.sampling),  # type: ignore[attr-defined]
            llama=replace(llama, kv_dir=str(kv_cache_dir()) if llama.kv_disk else None),
            openai=build(OpenAIOptions, values.openai),  # type: ignore[attr-defined]
            disk=build(DiskLimits, values.disk),  # type: ignore[attr-defined]
            models=values.models,  # type: ignore[attr-defined]
            mcp_servers=values.mcp_servers,  # type: ignore[attr-defined]
        )

    def model_info(self, spec: str | None = None) -> ModelInfo:
        return self.models.get(model_name(spec or self.session.model or ""), ModelInfo())

    def openai_options(self, spec: str) -> OpenAIOptions:
        """``[openai]``, with the context size ``[models.NAME]`` gives the spec's model."""
        size = self.model_info(spec).context_size
        return self.openai if size is None else replace(self.openai, context_size=size)


def config_dir() -> Path:
    return platformdirs.user_config_path("ponder")


def config_file() -> Path:
    return Path(os.environ.get("PONDER_CONFIG", config_dir() / "config.toml"))


def _from_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        if os.environ.get("PONDER_CONFIG"):  # named on purpose: missing is a mistake
            raise ConfigError(f"PONDER_CONFIG names {path}, which does not exist")
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _from_environment() -> dict[str, Any]:
    """``PONDER_MAX_STEPS=80``: a top-level setting (a list as comma-separated words)."""
    values: dict[str, Any] = {}
    for setting in (s for cls in TOP_LEVEL for s in settings_of(cls)):
        value = os.environ.get(f"PONDER_{setting.name.upper()}")
        if value is not None:
            is_list = get_origin(setting.annotation) is tuple
            values[setting.name] = value.split(",") if is_list else value
    return values


def load_config(flags: dict[str, Any] | None = None) -> Config:
    """The effective configuration; ``flags`` holds command-line values that were given."""
    path = config_file()
    layers = [(str(path), _from_file(path)), ("PONDER_* variables", _from_environment())]
    merged: dict[str, Any] = {}
    valid = FILE()
    for source, values in [*layers, ("the command line", flags or {})]:
        _merge(merged, values)
        try:
            valid = FILE.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(f"invalid configuration in {source}: {_describe(exc)}") from None
    return Config.from_file_model(valid)


def _merge(into: dict[str, Any], values: dict[str, Any]) -> None:
    """Values that were given (not None) replace earlier ones; tables merge key by key."""
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, dict):
            into[key] = {k: v for k, v in value.items() if v is not None}
        elif value is not None:
            into[key] = value


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown key {where}{_did_you_mean(error['loc'])}")
        else:
            problems.append(f"{where}: {error['msg']}")
    return "; ".join(problems)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """`` (did you mean KEY?)`` for a mistyped key, from the keys its table has."""
    model: type[BaseModel] = FILE
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


NO_MODEL_HELP = """no model given; ponder needs one. Point it at one of:
  a Kimi K2 Thinking GGUF   ponder --model llamacpp:/models/Kimi-K2-Thinking-00001-of-00008.gguf
  an OpenAI-compatible API  ponder --model 'openai:https://api.moonshot.ai/v1#kimi-k2-thinking'
                            (also vLLM, SGLang or llama-server: openai:http://HOST:PORT/v1#MODEL)
Set it once with the PONDER_MODEL environment variable or in {config}:
  model = "llamacpp:/models/kimi-k2-thinking.gguf"
Or try ponder without any model: ponder demo"""
