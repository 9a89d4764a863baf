"""Configuration: defaults, then the TOML file, then ``PONDER_*`` variables, then flags."""

from __future__ import annotations

import difflib
import os
import sys
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ponder.model.backend import ChatBackend, ConfigurationError, GenerationSettings, open_backend
from ponder.model.llamacpp import LlamaOptions
from ponder.model.offload import parse_size
from ponder.model.openai_compat import OpenAIOptions
from ponder.runtime.budgets import Budgets
from ponder.runtime.context import ContextSettings
from ponder.runtime.mcp_client import McpServerSpec
from ponder.runtime.project_docs import MAX_BYTES
from ponder.runtime.usage import Prices
from ponder.sandbox.disk_guard import DiskLimits
from ponder.sandbox.image import DEFAULT_IMAGE

_GENERATION = GenerationSettings()


def kv_cache_dir() -> Path:
    return platformdirs.user_cache_path("ponder") / "kv"


class ConfigError(Exception):
    """The configuration is unusable; the message names the file or variable at fault."""


class LlamaSettings(BaseModel):
    """``[llama]``: how a GGUF is loaded (names follow llama.cpp's flags)."""

    model_config = ConfigDict(extra="forbid")

    ctx_size: int = LlamaOptions.ctx_size
    """Context size in tokens."""
    n_gpu_layers: int = LlamaOptions.n_gpu_layers
    """Layers on the GPU; -1 is all (a CPU-only build ignores it)."""
    flash_attn: bool | None = None
    """Flash attention on or off; unset lets llama.cpp decide."""
    cache_type_k: str | None = None
    """KV cache type for keys: f16 (default), q8_0, q4_0, ..."""
    cache_type_v: str | None = None
    """KV cache type for values."""
    threads: int | None = None
    """CPU threads; unset: half the cores."""
    mmap: bool = LlamaOptions.mmap
    """Map the model file instead of reading it into memory."""
    cpu_moe: bool = False
    """Keep all routed experts on the CPU."""
    n_cpu_moe: int | None = None
    """Keep the routed experts of the first N blocks on the CPU."""
    override_tensor: list[str] = Field(default_factory=list)
    """REGEX=BUFFER_TYPE tensor placements, as llama.cpp's -ot."""
    prompt_lookup: bool = LlamaOptions.prompt_lookup
    """Speculative decoding with guesses from the conversation (the output is unchanged)."""
    kv_disk: str | int = "8GiB"
    """Disk for sessions' KV caches, so a resumed session does not prefill again (0: none)."""

    @field_validator("kv_disk")
    @classmethod
    def _disk_size(cls, value: str | int) -> str | int:
        if str(value) != "0":
            try:
                parse_size(str(value))
            except ConfigurationError as error:
                raise ValueError(str(error)) from None
        return value

    def options(self) -> LlamaOptions:
        return LlamaOptions(
            ctx_size=self.ctx_size,
            n_gpu_layers=self.n_gpu_layers,
            flash_attn=self.flash_attn,
            cache_type_k=self.cache_type_k,
            cache_type_v=self.cache_type_v,
            threads=self.threads,
            mmap=self.mmap,
            cpu_moe=self.cpu_moe,
            n_cpu_moe=self.n_cpu_moe,
            override_tensor=tuple(self.override_tensor),
            prompt_lookup=self.prompt_lookup,
            kv_disk=None if str(self.kv_disk) == "0" else str(kv_cache_dir()),
            kv_disk_bytes=0 if str(self.kv_disk) == "0" else parse_size(str(self.kv_disk)),
        )


class SamplingSettings(BaseModel):
    """``[sampling]``: Moonshot's recommendation for K2 Thinking unless changed."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=_GENERATION.temperature, ge=0, le=2, allow_inf_nan=False)
    top_p: float = Field(default=_GENERATION.top_p, gt=0, le=1)
    min_p: float = Field(default=_GENERATION.min_p, ge=0, le=1)
    """Local models only (OpenAI-compatible servers get temperature and top_p)."""
    top_k: int | None = Field(default=_GENERATION.top_k, ge=1)
    """Unset: no top-k cut. Local models only."""

    def generation(self) -> GenerationSettings:
        return GenerationSettings(
            temperature=self.temperature, top_p=self.top_p, min_p=self.min_p, top_k=self.top_k
        )


class OpenAISettings(BaseModel):
    """``[openai]``: OpenAI-compatible servers."""

    model_config = ConfigDict(extra="forbid")

    api_key_env: str = OpenAIOptions.api_key_env
    """The environment variable that holds the API key (e.g. MOONSHOT_API_KEY)."""
    context_size: int = OpenAIOptions.context_size
    """The served model's context in tokens."""
    max_retries: int = OpenAIOptions.max_retries
    """Retries (with doubling backoff from 1 s) when the server is unreachable or busy."""

    def options(self) -> OpenAIOptions:
        return OpenAIOptions(
            api_key_env=self.api_key_env,
            context_size=self.context_size,
            max_retries=self.max_retries,
        )


class DiskSettings(BaseModel):
    """``[disk]``: how much a session may write into the workspace (bind mode and local).
    Sizes like ``5G``, ``500MB``, ``2GiB``; a plain number is GB."""

    model_config = ConfigDict(extra="forbid")

    max_growth: str | int = f"{DiskLimits.max_growth // 1024**3}GiB"
    """How much the workspace may grow in one session before a command is stopped."""
    max_new_files: int = DiskLimits.max_new_files
    """How many files and directories the workspace may gain in one session."""
    min_free: str | int = f"{DiskLimits.min_free // 1024**3}GiB"
    """Free space a command may not take the workspace's disk below."""

    @field_validator("max_growth", "min_free")
    @classmethod
    def _size(cls, value: str | int) -> str | int:
        try:
            parse_size(str(value))
        except ConfigurationError as error:
            raise ValueError(str(error)) from None
        return value

    def limits(self) -> DiskLimits:
        return DiskLimits(
            max_growth=parse_size(str(self.max_growth)),
            max_new_files=self.max_new_files,
            min_free=parse_size(str(self.min_free)),
        )


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

    context_window: int | None = Field(default=None, ge=1)
    """The model's context in tokens (for an OpenAI-compatible server; overrides openai's)."""
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


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """The model: ``llamacpp:PATH.gguf``, ``openai:URL#MODEL`` or ``scripted:PATH.jsonl``."""
    image: str = DEFAULT_IMAGE
    """Docker image for the sandbox (``ponder sandbox build`` makes the default one)."""
    sandbox: Literal["docker", "local"] = "docker"
    """Where commands run: a Docker container, or (no isolation) this machine."""
    network: bool = False
    """Give the sandbox a network. Off by default: commands cannot reach anything."""
    pass_env: list[str] = Field(default_factory=list)
    """Host environment variables passed into the sandbox (none by default)."""
    max_steps: int = Field(Budgets.max_steps, ge=1)
    """Most model steps (one generation plus its tool calls) in one task."""
    max_reasoning_tokens: int | None = Field(Budgets.max_reasoning_tokens, ge=1)
    """Reasoning tokens per step; past them the model is made to act (unset: no limit)."""
    max_tokens: int | None = Field(None, ge=1)
    """Generated tokens over a whole task (unset: no limit)."""
    time_limit: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Seconds for a whole task (unset: no limit)."""
    context_threshold: float = Field(ContextSettings.threshold, gt=0, le=1)
    """Share of the context a prompt may fill before older parts are shortened."""
    project_doc_fallback_filenames: list[str] = Field(default_factory=list)
    """Names tried after AGENTS.md in each folder (e.g. ["CLAUDE.md"]), as in Codex."""
    project_doc_max_bytes: int = Field(MAX_BYTES, ge=1)
    """The most bytes of AGENTS.md instructions put in the prompt; the deepest files are kept."""
    approval: Literal["ask", "auto", "yolo"] = "auto"
    """ask: before every change; auto: only for the network and destructive git; yolo: never."""
    allow: list[str] = Field(default_factory=list)
    """Command prefixes that never ask (e.g. "git commit")."""
    deny: list[str] = Field(default_factory=list)
    """Command prefixes that are always refused (e.g. "rm -rf /")."""
    approve_unattended: Literal["deny", "allow"] = "deny"
    """Without a person to ask (pipes, CI): the answer to every approval request."""
    theme: str | None = None
    """TUI theme: ponder-dark, or a theme from the config directory's themes/ folder; unset:
    the one last chosen with /theme."""
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    llama: LlamaSettings = Field(default_factory=LlamaSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    disk: DiskSettings = Field(default_factory=DiskSettings)
    models: dict[str, ModelInfo] = Field(default_factory=dict)
    """Context windows and prices by model name (``[models.kimi-k2-thinking]``)."""
    mcp_servers: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")], McpServerSettings
    ] = Field(default_factory=dict)
    """MCP servers by name (letters, digits, ``-`` and ``_``: the name is part of tool names)."""

    def model_info(self, spec: str | None = None) -> ModelInfo:
        return self.models.get(model_name(spec or self.model or ""), ModelInfo())

    @staticmethod
    def _served_context(url: str) -> int:
        import httpx

        try:
            return int(httpx.get(f"{url}/metrics", timeout=2.0).json()["context_size"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return OpenAIOptions.context_size

    def open_backend(self, spec: str | None = None) -> ChatBackend:
        """The model ``spec`` (the configured one by default), opened with this config."""
        spec = spec or self.model
        if not spec:
            raise ConfigurationError("no model configured")
        if spec.startswith("llamacpp:"):
            from ponder.app.serve import running_server

            url = running_server(Path(spec.partition(":")[2]))
            if url is not None:  # the model is warm in a `ponder serve`: no second load
                print(f"ponder: using the model `ponder serve` holds at {url}", file=sys.stderr)
                return open_backend(
                    f"openai:{url}/v1#{Path(spec.partition(':')[2]).name}",
                    openai=replace(self.openai.options(), context_size=self._served_context(url)),
                )
        openai = self.openai.options()
        window = self.model_info(spec).context_window
        if window is not None:
            openai = replace(openai, context_size=window)
        return open_backend(spec, llama=self.llama.options(), openai=openai)


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
    values: dict[str, Any] = {}
    for name, field in Config.model_fields.items():
        if field.annotation in (SamplingSettings, LlamaSettings, OpenAISettings, DiskSettings):
            continue  # tables are set in the file or with flags
        value = os.environ.get(f"PONDER_{name.upper()}")
        if value is not None:
            values[name] = value.split(",") if field.annotation == list[str] else value
    return values


def load_config(flags: dict[str, Any] | None = None) -> Config:
    """The effective configuration; ``flags`` holds command-line values that were given."""
    path = config_file()
    layers = [(str(path), _from_file(path)), ("PONDER_* variables", _from_environment())]
    merged: dict[str, Any] = {}
    for source, values in [*layers, ("the command line", flags or {})]:
        _merge(merged, values)
        try:
            Config.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(f"invalid configuration in {source}: {_describe(exc)}") from None
    return Config.model_validate(merged)


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
    model: type[BaseModel] = Config
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
