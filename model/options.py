"""What a person sets about the model: sampling, how a GGUF is loaded, how a server is reached.

These are settings (``ponder.app.settings`` makes the config file's ``[sampling]``, ``[llama]``
and ``[openai]`` tables and the flags from them): each field's metadata says its bounds and
flags, its docstring is its help. This module imports nothing heavy, so ``ponder --help`` stays
instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _setting(**spec: object) -> dict[str, object]:
    return {"setting": spec}


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    """Sampling and limits for one step. Defaults are Moonshot's recommendation for K2 Thinking."""

    temperature: float = field(default=1.0, metadata=_setting(ge=0, le=2, flags=["--temp"]))
    """Sampling temperature."""
    top_p: float = field(default=0.95, metadata=_setting(gt=0, le=1, flags=["--top-p"]))
    """Nucleus sampling: the smallest set of tokens whose probabilities add up to this."""
    min_p: float = field(default=0.01, metadata=_setting(ge=0, le=1, flags=["--min-p"]))
    """Minimum probability, relative to the likeliest token (local models only)."""
    top_k: int | None = field(default=None, metadata=_setting(ge=1, flags=["--top-k"]))
    """Only the K likeliest tokens (local models only; unset: no cut)."""
    max_new_tokens: int | None = None
    """Most tokens this one generation may produce (what is left of the task's budget)."""
    max_reasoning_tokens: int | None = None
    """Most reasoning tokens in one step. A local model is made to close its reasoning there
    (``</think>`` is inserted) so it acts; remote models get the step's tokens capped."""


@dataclass(frozen=True)
class LlamaOptions:
    """How a GGUF is loaded. Placement flags mean what they mean to llama.cpp."""

    context_size: int = field(
        default=32768, metadata=_setting(ge=64, flags=["-c", "--ctx-size", "--context-size"])
    )
    """Context size in tokens (the KV cache is sized for it)."""
    n_gpu_layers: int = field(
        default=-1, metadata=_setting(ge=-1, flags=["-ngl", "--n-gpu-layers"])
    )
    """Layers on the GPU (-1: all; a CPU-only build ignores it)."""
    flash_attn: bool | None = field(
        default=None,
        metadata=_setting(flags=["-fa", "--flash-attn"], choices={"on": True, "off": False}),
    )
    """Flash attention on or off (unset: llama.cpp decides)."""
    cache_type_k: str | None = field(
        default=None, metadata=_setting(flags=["-ctk", "--cache-type-k"])
    )
    """KV cache type for keys: f16, q8_0, q4_0, ... (unset: f16)."""
    cache_type_v: str | None = field(
        default=None, metadata=_setting(flags=["-ctv", "--cache-type-v"])
    )
    """KV cache type for values (unset: f16)."""
    threads: int | None = field(default=None, metadata=_setting(ge=1, flags=["-t", "--threads"]))
    """CPU threads (unset: half the cores)."""
    n_batch: int = 2048
    n_ubatch: int = 512
    """Micro-batch; larger (2048-4096) amortises copying CPU experts to the GPU in prefill."""
    mmap: bool = field(default=True, metadata=_setting(flags=["--mmap"]))
    """Map the model file instead of reading it into memory."""
    cpu_moe: bool = field(default=False, metadata=_setting(flags=["--cpu-moe"]))
    """Keep all routed experts on the CPU."""
    n_cpu_moe: int | None = field(default=None, metadata=_setting(ge=0, flags=["--n-cpu-moe"]))
    """Keep the routed experts of the first N blocks on the CPU."""
    override_tensor: tuple[str, ...] = field(
        default=(),
        metadata=_setting(flags=["-ot", "--override-tensor"], metavar="REGEX=BUFT"),
    )
    """Tensor placements, REGEX=BUFFER_TYPE, as llama.cpp's -ot."""
    auto_placement: bool = True
    """Without manual placement and with a GPU, plan it from the GPU's free memory."""
    kv_slots_bytes: int = 0
    """Memory for other conversations' saved KV caches (``ponder serve``); 0: one conversation."""
    kv_dir: str | None = None
    """A folder where KV caches outlive the process (a resumed session restores its own);
    None: none are kept."""
    kv_disk: int = field(default=8 * 1024**3, metadata=_setting(unit="bytes"))
    """Disk for sessions' KV caches, so a resumed session does not prefill again (0: none)."""
    prompt_lookup: bool = field(default=True, metadata=_setting())
    """Speculative decoding with guesses from the conversation (the output is unchanged)."""


@dataclass(frozen=True)
class OpenAIOptions:
    """How an OpenAI-compatible server is reached."""

    api_key_env: str = field(default="PONDER_API_KEY", metadata=_setting())
    """The environment variable that holds the API key (e.g. MOONSHOT_API_KEY; unset: no
    Authorization header)."""
    max_retries: int = field(default=5, metadata=_setting(ge=0))
    """Retries (with doubling backoff from 1 s) when the server is unreachable or busy."""
    retry_base_s: float = 1.0
    """First backoff delay; it doubles on each retry."""
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 600.0
    """Longest silence allowed inside a streaming response."""
    context_size: int | None = field(default=None, metadata=_setting(ge=1))
    """The served model's context in tokens (unset: what the server says, else an assumed
    262,144, K2 Thinking's; the run says which)."""
