"""Tiny GGUF models built by the tests themselves with the ``gguf`` package.

``write_tiny_k2`` makes a Kimi-K2-shaped model (architecture ``deepseek2``: MLA attention, one
dense block then MoE blocks with a shared expert, Q4_0 routed experts, the Kimi special tokens
as control tokens, the official chat template embedded). Its weights are chosen, not random,
so that it answers every prompt ending in ``<|im_middle|>`` with one fixed K2 completion: every
block's output projection is zero, so the last hidden state is the current token's embedding,
and the output matrix maps each token of ``SCRIPT`` to the next one. llama.cpp still runs the
whole graph (attention over the KV cache, routed and shared experts); only the answer is fixed.

``write_tiny_llama`` makes a small dense llama model with random weights.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from ponder.model.chat_template import ChatTemplate

CONTROL_TOKENS = [
    "[BOS]",
    "[EOS]",
    "<|im_end|>",
    "<|im_user|>",
    "<|im_assistant|>",
    "<|im_system|>",
    "<|im_middle|>",
    "<think>",
    "</think>",
    "<|tool_calls_section_begin|>",
    "<|tool_calls_section_end|>",
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
]

# Whole-word tokens for the fixed answer; they never come out of tokenizing text (no merges lead
# to them), only out of generation.
REASONING_WORDS = ["Let me look.", " First,", " then", " act."]
WORD_TOKENS = [*REASONING_WORDS, "functions.bash:0", '{"command": "ls"}', "Looking."]

SCRIPT = [
    "<think>",
    *REASONING_WORDS,
    "</think>",
    "Looking.",
    "<|tool_calls_section_begin|>",
    "<|tool_call_begin|>",
    "functions.bash:0",
    "<|tool_call_argument_begin|>",
    '{"command": "ls"}',
    "<|tool_call_end|>",
    "<|tool_calls_section_end|>",
    "<|im_end|>",
]
SCRIPT_TEXT = "".join(SCRIPT)
REASONING = "".join(REASONING_WORDS)

N_EMBD = 64
N_HEAD = 4
Q_LORA_RANK = 32
KV_LORA_RANK = 32
ROPE_DIM = 16
QK_NOPE_DIM = 16
V_HEAD_DIM = 32
N_FF = 128
N_FF_EXPERT = 32
N_EXPERTS = 4


def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values (llama.cpp's byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    )
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def _as_symbols(text: str) -> str:
    table = _byte_symbols()
    return "".join(table[b] for b in text.encode())


def vocabulary() -> tuple[list[str], list[int], list[str]]:
    """Tokens, their types and the merges: 256 bytes, two merges, words, control tokens."""
    tokens = [*_byte_symbols(), _as_symbols(" t"), _as_symbols("he")]
    merges = [f"{_as_symbols(' ')} t", "h e"]
    tokens += [_as_symbols(word) for word in WORD_TOKENS]
    types = [gguf.TokenType.NORMAL] * len(tokens)
    tokens += CONTROL_TOKENS
    types += [gguf.TokenType.CONTROL] * len(CONTROL_TOKENS)
    return tokens, [int(t) for t in types], merges


def token_id(tokens: list[str], text: str) -> int:
    """The id of a control token or of a whole-word token, by its text."""
    return tokens.index(text) if text in CONTROL_TOKENS else tokens.index(_as_symbols(text))


def _add_tokenizer(writer: gguf.GGUFWriter, pre: str, chat_template: str | None) -> list[str]:
    tokens, types, merges = vocabulary()
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(token_id(tokens, "[BOS]"))
    writer.add_eos_token_id(token_id(tokens, "<|im_end|>"))
    writer.add_add_bos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    return tokens


def _q4_0(writer: gguf.GGUFWriter, name: str, array: np.ndarray) -> None:
    data = gguf.quants.quantize(array.astype(np.float32), gguf.GGMLQuantizationType.Q4_0)
    writer.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType.Q4_0)


def write_tiny_k2(
    path: Path, *, blocks: int = 3, with_tokenizer: bool = True, split_max_tensors: int = 0
) -> Path:
    """Returns the path of the (first) file; with ``split_max_tensors`` the model is split."""
    rng = np.random.default_rng(7)
    writer = gguf.GGUFWriter(str(path), "deepseek2", split_max_tensors=split_max_tensors)
    arch = "deepseek2"
    writer.add_context_length(8192)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(blocks)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(1)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_q_lora_rank(Q_LORA_RANK)
    writer.add_kv_lora_rank(KV_LORA_RANK)
    writer.add_key_length(KV_LORA_RANK + ROPE_DIM)
    writer.add_value_length(KV_LORA_RANK)
    writer.add_uint32(f"{arch}.attention.key_length_mla", QK_NOPE_DIM + ROPE_DIM)
    writer.add_uint32(f"{arch}.attention.value_length_mla", V_HEAD_DIM)
    writer.add_rope_dimension_count(ROPE_DIM)
    writer.add_rope_freq_base(50000.0)
    writer.add_float32(f"{arch}.rope.scaling.yarn_log_multiplier", 0.1)
    writer.add_leading_dense_block_count(1)
    writer.add_expert_feed_forward_length(N_FF_EXPERT)
    writer.add_expert_count(N_EXPERTS)
    writer.add_expert_used_count(2)
    writer.add_expert_shared_count(1)
    writer.add_expert_weights_scale(2.5)
    writer.add_expert_weights_norm(True)
    writer.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    tokens = (
        _add_tokenizer(writer, "kimi-k2", ChatTemplate.official().source)
        if with_tokenizer
        else vocabulary()[0]
    )

    def small(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    embeddings = small(len(tokens), N_EMBD)
    # The script's tokens get near-orthogonal embeddings; each one's successor gets a big logit.
    basis = np.linalg.qr(rng.standard_normal((N_EMBD, N_EMBD)))[0].T
    output = small(len(tokens), N_EMBD)
    chain = ["<|im_middle|>", *SCRIPT]
    for position, token in enumerate(chain):
        embeddings[token_id(tokens, token)] = basis[position]
    for position, following in enumerate(chain[1:]):
        output[token_id(tokens, following)] += 40.0 * basis[position] / np.sqrt(N_EMBD)
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", output)

    def zero(shape: tuple[int, ...] | int) -> np.ndarray:
        return np.zeros(shape, dtype=np.float32)

    for i in range(blocks):
        p = f"blk.{i}"
        writer.add_tensor(f"{p}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{p}.attn_q_a.weight", small(Q_LORA_RANK, N_EMBD))
        writer.add_tensor(f"{p}.attn_q_a_norm.weight", np.ones(Q_LORA_RANK, dtype=np.float32))
        writer.add_tensor(
            f"{p}.attn_q_b.weight", small(N_HEAD * (QK_NOPE_DIM + ROPE_DIM), Q_LORA_RANK)
        )
        writer.add_tensor(f"{p}.attn_kv_a_mqa.weight", small(KV_LORA_RANK + ROPE_DIM, N_EMBD))
        writer.add_tensor(f"{p}.attn_kv_a_norm.weight", np.ones(KV_LORA_RANK, dtype=np.float32))
        writer.add_tensor(f"{p}.attn_k_b.weight", small(N_HEAD, KV_LORA_RANK, QK_NOPE_DIM))
        writer.add_tensor(f"{p}.attn_v_b.weight", small(N_HEAD, V_HEAD_DIM, KV_LORA_RANK))
        writer.add_tensor(f"{p}.attn_output.weight", zero((N_EMBD, N_HEAD * V_HEAD_DIM)))
        writer.add_tensor(f"{p}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        if i == 0:
            writer.add_tensor(f"{p}.ffn_gate.weight", small(N_FF, N_EMBD))
            writer.add_tensor(f"{p}.ffn_up.weight", small(N_FF, N_EMBD))
            writer.add_tensor(f"{p}.ffn_down.weight", zero((N_EMBD, N_FF)))
            continue
        writer.add_tensor(f"{p}.ffn_gate_inp.weight", small(N_EXPERTS, N_EMBD))
        writer.add_tensor(f"{p}.exp_probs_b.bias", zero(N_EXPERTS))
        _q4_0(writer, f"{p}.ffn_gate_exps.weight", small(N_EXPERTS, N_FF_EXPERT, N_EMBD))
        _q4_0(writer, f"{p}.ffn_up_exps.weight", small(N_EXPERTS, N_FF_EXPERT, N_EMBD))
        _q4_0(writer, f"{p}.ffn_down_exps.weight", zero((N_EXPERTS, N_EMBD, N_FF_EXPERT)))
        writer.add_tensor(f"{p}.ffn_gate_shexp.weight", small(N_FF_EXPERT, N_EMBD))
        writer.add_tensor(f"{p}.ffn_up_shexp.weight", small(N_FF_EXPERT, N_EMBD))
        writer.add_tensor(f"{p}.ffn_down_shexp.weight", zero((N_EMBD, N_FF_EXPERT)))
    _finish(writer)
    if split_max_tensors:
        return sorted(path.parent.glob(f"{path.stem}-00001-of-*.gguf"))[0]
    return path


def write_tiny_llama(path: Path, *, blocks: int = 2) -> Path:
    """A dense llama with random weights and no chat template (ponder uses the official one)."""
    rng = np.random.default_rng(11)
    writer = gguf.GGUFWriter(str(path), "llama")
    n_head, n_head_kv, head_dim = 4, 2, 16
    writer.add_context_length(2048)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(blocks)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    tokens = _add_tokenizer(writer, "default", chat_template=None)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    writer.add_tensor("token_embd.weight", weights(len(tokens), N_EMBD))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", weights(len(tokens), N_EMBD))
    for i in range(blocks):
        p = f"blk.{i}"
        writer.add_tensor(f"{p}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{p}.attn_q.weight", weights(n_head * head_dim, N_EMBD))
        writer.add_tensor(f"{p}.attn_k.weight", weights(n_head_kv * head_dim, N_EMBD))
        writer.add_tensor(f"{p}.attn_v.weight", weights(n_head_kv * head_dim, N_EMBD))
        writer.add_tensor(f"{p}.attn_output.weight", weights(N_EMBD, n_head * head_dim))
        writer.add_tensor(f"{p}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{p}.ffn_gate.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(f"{p}.ffn_up.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(f"{p}.ffn_down.weight", weights(N_EMBD, N_FF))
    _finish(writer)
    return path


def _finish(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
