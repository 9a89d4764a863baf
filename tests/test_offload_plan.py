"""The offload planner at Kimi K2's real size (a tensor table only; no weights are needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.app.sizes import parse_size
from ponder.model.backend import ConfigurationError
from ponder.model.gguf_file import GGUFModel, TensorInfo
from ponder.model.offload import kv_bytes_per_token, parse_override, plan_offload

GB = 10**9


def k2_table() -> GGUFModel:
    """K2's shape (61 blocks, block 0 dense, 384 experts): ~9.5 GB of routed experts per MoE
    block at ~4.5 bits, ~11.5B non-expert parameters (the published K2 config)."""
    metadata = {
        "general.architecture": "deepseek2",
        "deepseek2.block_count": 61,
        "deepseek2.expert_count": 384,
        "deepseek2.expert_used_count": 8,
        "deepseek2.attention.kv_lora_rank": 512,
        "deepseek2.rope.dimension_count": 64,
    }
    tensors = [
        TensorInfo("token_embd.weight", "Q6_K", 1_174_000_000, 960_000_000),
        TensorInfo("output.weight", "Q6_K", 1_174_000_000, 960_000_000),
    ]
    for block in range(61):
        tensors.append(
            TensorInfo(f"blk.{block}.attn_kv_a_mqa.weight", "Q8_0", 150_000_000, 160_000_000)
        )
        if block == 0:
            tensors.append(TensorInfo("blk.0.ffn_up.weight", "Q8_0", 130_000_000, 140_000_000))
            continue
        tensors.append(
            TensorInfo(f"blk.{block}.ffn_up_shexp.weight", "Q8_0", 44_000_000, 47_000_000)
        )
        for kind in ("gate", "up", "down"):
            tensors.append(
                TensorInfo(
                    f"blk.{block}.ffn_{kind}_exps.weight", "Q4_K", 5_640_000_000, 3_170_000_000
                )
            )
    return GGUFModel(
        path=Path("k2.gguf"), shards=[Path("k2.gguf")], metadata=metadata, tensors=tensors
    )


def test_mla_kv_cache_is_small() -> None:
    assert kv_bytes_per_token(k2_table()) == 61 * 576 * 2  # about 68.6 KiB per token


def test_k2_on_one_141_gb_gpu_keeps_about_51_blocks_of_experts_on_the_cpu() -> None:
    plan = plan_offload(k2_table(), gpu_mem=141 * GB, ctx=131072)
    assert plan.fits
    assert 49 <= plan.n_cpu_moe <= 53
    assert plan.gpu_total <= 141 * GB
    assert plan.llama_cpp_flags() == f"-ngl 999 --n-cpu-moe {plan.n_cpu_moe}"
    assert plan.overrides[0] == (r"blk\.0\.ffn_(up|down|gate|gate_up)_(ch|)exps", "CPU")
    assert len(plan.overrides) == plan.n_cpu_moe
    assert plan.decode_bound_tokens_per_s is not None
    # CPU memory bandwidth, not the GPU, bounds decode with most experts on the CPU.
    assert plan.decode_bound_tokens_per_s < 100


def test_more_gpu_memory_moves_more_experts_over() -> None:
    small = plan_offload(k2_table(), gpu_mem=80 * GB, ctx=65536)
    large = plan_offload(k2_table(), gpu_mem=400 * GB, ctx=65536)
    assert small.n_cpu_moe > large.n_cpu_moe
    assert (large.decode_bound_tokens_per_s or 0) > (small.decode_bound_tokens_per_s or 0)


def test_everything_fits_on_a_big_enough_gpu() -> None:
    plan = plan_offload(k2_table(), gpu_mem=1000 * GB, ctx=8192)
    assert plan.n_cpu_moe == 0
    assert plan.overrides == []


def test_a_gpu_too_small_for_the_dense_part_means_cpu_only() -> None:
    plan = plan_offload(k2_table(), gpu_mem=8 * GB, ctx=131072)
    assert not plan.fits
    assert plan.llama_cpp_flags() == "-ngl 0"
    assert "running on the CPU" in plan.notes[0]


def test_sizes_and_overrides_parse_like_llama_cpp() -> None:
    assert parse_size("141GiB") == 141 * 2**30
    assert parse_size("80GB") == 80 * GB
    assert parse_size("24G") == 24 * GB
    assert parse_size("24") == 24 * GB  # what someone typing --gpu-mem 24 means
    assert parse_size("0") == 0
    assert parse_override(r"blk\.[0-9]\.ffn_.*_exps=CPU") == (r"blk\.[0-9]\.ffn_.*_exps", "CPU")
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")
    with pytest.raises(ConfigurationError):
        parse_override("exps")
