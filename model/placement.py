"""Where a model's tensors go when it loads: the user's placement flags, else a plan for the
free GPU memory (:mod:`ponder.model.offload`), and a check of the load log against it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ponder.model.gguf_file import GGUFModel
from ponder.model.llama_glue import devices
from ponder.model.offload import cpu_moe_overrides, parse_override, plan_offload

if TYPE_CHECKING:
    from ponder.model.options import LlamaOptions


def resolve_placement(model: GGUFModel, options: LlamaOptions) -> list[tuple[str, str]]:
    """The tensor overrides to load with: manual flags first, else a plan for the free GPU."""
    overrides = [parse_override(text) for text in options.override_tensor]
    if options.cpu_moe:
        overrides += cpu_moe_overrides()
    elif options.n_cpu_moe:
        overrides += cpu_moe_overrides(range(options.n_cpu_moe))
    if overrides or not options.auto_placement or options.n_gpu_layers == 0:
        return overrides
    gpus = [d for d in devices() if d.is_gpu]
    if not gpus or not model.expert_bytes_by_block():
        return []
    plan = plan_offload(model, gpu_mem=gpus[0].free_bytes, ctx=options.context_size)
    return plan.overrides


def placement_problem(
    model: GGUFModel, overrides: list[tuple[str, str]], placed: dict[str, str]
) -> str | None:
    """What the load log says went elsewhere than planned, or None when it all matches.

    llama.cpp applies the first override whose pattern matches a tensor's name; a CPU override
    may land in a CPU variant such as CPU_REPACK.
    """
    if not overrides:
        return None
    for tensor in model.tensors:
        wanted = next((b for p, b in overrides if re.search(p, tensor.name)), None)
        if wanted is None:
            continue
        got = placed.get(tensor.name)
        if got is None:
            return f"llama.cpp did not apply the placement of {tensor.name} (wanted {wanted})"
        if not got.upper().startswith(wanted.upper()):
            return f"{tensor.name} landed in {got}, not {wanted}"
    if not placed:
        return f"the tensor overrides {overrides[:2]} match no tensor"
    return None
