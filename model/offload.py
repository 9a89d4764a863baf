"""Deciding which weights go on the GPU and which stay on the CPU, before anything is loaded.

The rule for a MoE model too big for the GPU: every non-expert weight and the KV cache go on the
GPU (they are read for every token); then the routed experts of as many blocks as still fit, the
last blocks first, exactly what llama.cpp's ``--n-cpu-moe N`` does (blocks ``0..N-1`` keep their
experts on the CPU). Placement is expressed as llama.cpp tensor-override patterns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ponder.model.backend import ConfigurationError
from ponder.model.gguf_file import GROUPS, GGUFModel

EXPERT_PATTERN = r"\.ffn_(up|down|gate|gate_up)_(ch|)exps"
COMPUTE_RESERVE_BYTES = 1_500_000_000
"""GPU memory kept free for llama.cpp's compute buffers."""


def cpu_moe_overrides(blocks: range | list[int] | None = None) -> list[tuple[str, str]]:
    """Override patterns keeping the routed experts of ``blocks`` (None: all) on the CPU."""
    if blocks is None:
        return [(EXPERT_PATTERN, "CPU")]
    return [(rf"blk\.{i}{EXPERT_PATTERN}", "CPU") for i in blocks]


def parse_override(text: str) -> tuple[str, str]:
    """``REGEX=BUFT`` as llama.cpp's ``--override-tensor`` takes it."""
    pattern, sep, buffer_type = text.rpartition("=")
    if not sep or not pattern or not buffer_type:
        raise ConfigurationError(f"--override-tensor wants REGEX=BUFFER_TYPE, got {text!r}")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(
            f"--override-tensor pattern {pattern!r} is not a regex: {exc}"
        ) from None
    return pattern, buffer_type


def kv_bytes_per_token(model: GGUFModel, bytes_per_value: float = 2.0) -> int:
    """KV-cache bytes one token takes across all blocks (MLA keeps only the latent and rope key)."""
    blocks = model.block_count
    kv_lora_rank = model.arch_value("attention.kv_lora_rank")
    if kv_lora_rank:
        rope = int(model.arch_value("rope.dimension_count", 0))
        return int(blocks * (int(kv_lora_rank) + rope) * bytes_per_value)
    heads = int(model.arch_value("attention.head_count", 1))
    heads_kv = int(model.arch_value("attention.head_count_kv", heads))
    head_dim = int(
        model.arch_value("attention.key_length", 0)
        or int(model.arch_value("embedding_length", 0)) // max(heads, 1)
    )
    return int(blocks * 2 * heads_kv * head_dim * bytes_per_value)


@dataclass(frozen=True)
class OffloadPlan:
    gpu_bytes: dict[str, int]
    cpu_bytes: dict[str, int]
    kv_bytes: int
    ctx: int
    n_cpu_moe: int
    """Blocks ``0..n_cpu_moe-1`` keep their routed experts on the CPU."""
    overrides: list[tuple[str, str]]
    fits: bool
    decode_bound_tokens_per_s: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def gpu_total(self) -> int:
        return sum(self.gpu_bytes.values()) + (self.kv_bytes if self.fits else 0)

    @property
    def cpu_total(self) -> int:
        return sum(self.cpu_bytes.values()) + (0 if self.fits else self.kv_bytes)

    def llama_cpp_flags(self) -> str:
        """The same placement as llama.cpp command-line flags."""
        if not self.fits:
            return "-ngl 0"
        return "-ngl 999" + (f" --n-cpu-moe {self.n_cpu_moe}" if self.n_cpu_moe else "")


def plan_offload(
    model: GGUFModel,
    *,
    gpu_mem: int,
    ctx: int,
    gpu_bandwidth: float = 4.8e12,
    cpu_bandwidth: float = 2.0e11,
    kv_bytes_per_value: float = 2.0,
) -> OffloadPlan:
    """Place ``model`` for a GPU with ``gpu_mem`` bytes and a ``ctx``-token KV cache.

    The decode bound is bytes read per token over each device's memory bandwidth: all non-expert
    weights (but the input embedding, read one row at a time) and the full KV cache, plus the
    used share of each block's routed experts.
    """
    by_group = model.bytes_by_group()
    experts = model.expert_bytes_by_block()
    expert_total = sum(experts.values())
    non_expert = {g: by_group.get(g, 0) for g in GROUPS if g != "routed_experts"}
    kv = kv_bytes_per_token(model, kv_bytes_per_value) * ctx
    need = sum(non_expert.values()) + kv + COMPUTE_RESERVE_BYTES
    dense_reads = sum(non_expert.values()) - _token_embedding_bytes(model) + kv
    share = _active_expert_share(model)

    if gpu_mem <= 0 or need > gpu_mem:
        notes = []
        if gpu_mem > 0:
            notes.append(
                f"non-expert weights and a {ctx}-token KV cache need {need / 1e9:.1f} GB with the "
                f"compute reserve, more than the GPU's {gpu_mem / 1e9:.1f} GB: running on the CPU. "
                "A smaller --ctx or a quantized KV cache may make it fit."
            )
        seconds = (dense_reads + expert_total * share) / cpu_bandwidth
        return OffloadPlan(
            gpu_bytes={g: 0 for g in GROUPS},
            cpu_bytes={**non_expert, "routed_experts": expert_total},
            kv_bytes=kv,
            ctx=ctx,
            n_cpu_moe=0,
            overrides=[],
            fits=False,
            decode_bound_tokens_per_s=1 / seconds if seconds > 0 else None,
            notes=notes,
        )

    room = gpu_mem - need
    gpu_expert_blocks: list[int] = []
    for block in sorted(experts, reverse=True):
        if experts[block] > room:
            break
        room -= experts[block]
        gpu_expert_blocks.append(block)
    on_cpu = sorted(set(experts) - set(gpu_expert_blocks))
    n_cpu_moe = on_cpu[-1] + 1 if on_cpu else 0
    gpu_experts = sum(experts[b] for b in gpu_expert_blocks)
    cpu_experts = expert_total - gpu_experts
    notes = []
    if on_cpu:
        notes.append(
            f"routed experts of {len(gpu_expert_blocks)} of {len(experts)} MoE blocks fit on the "
            f"GPU; blocks 0-{n_cpu_moe - 1} keep theirs on the CPU"
        )
    seconds = (dense_reads + gpu_experts * share) / gpu_bandwidth
    seconds += cpu_experts * share / cpu_bandwidth
    return OffloadPlan(
        gpu_bytes={**non_expert, "routed_experts": gpu_experts},
        cpu_bytes={**{g: 0 for g in non_expert}, "routed_experts": cpu_experts},
        kv_bytes=kv,
        ctx=ctx,
        n_cpu_moe=n_cpu_moe,
        overrides=cpu_moe_overrides(range(n_cpu_moe)) if n_cpu_moe else [],
        fits=True,
        decode_bound_tokens_per_s=1 / seconds if seconds > 0 else None,
        notes=notes,
    )


def _active_expert_share(model: GGUFModel) -> float:
    """The part of each block's routed experts a token reads (used / count)."""
    count = int(model.arch_value("expert_count", 0) or 0)
    used = int(model.arch_value("expert_used_count", 0) or 0)
    return used / count if count else 1.0


def _token_embedding_bytes(model: GGUFModel) -> int:
    return sum(t.n_bytes for t in model.tensors if t.name == "token_embd.weight")
