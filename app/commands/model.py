"""``ponder model ...``: see what the model sees, what it said, what a GGUF holds, where it goes."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ponder.app.help_examples import examples
from ponder.app.sizes import size
from ponder.model.backend import ConfigurationError
from ponder.model.chat_template import ChatTemplate
from ponder.model.gguf_file import GROUPS, read_gguf
from ponder.model.k2_parser import parse_completion
from ponder.model.offload import kv_bytes_per_token, plan_offload

GROUP_LABELS = {
    "embeddings": "embeddings/output",
    "attention": "attention",
    "dense_ffn": "dense FFN",
    "router": "router",
    "shared_experts": "shared experts",
    "routed_experts": "routed experts",
}


DEFAULT_PLAN_CTX = 131072


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="ponder model", description="Inspect models and formats.", **examples("model")
    )
    commands = root.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to inspect"
    )

    render = commands.add_parser(
        "render",
        help="print the exact prompt text for a conversation",
        **examples("model render"),
    )
    render.add_argument(
        "--messages", type=Path, required=True, help="JSON list of messages (- for stdin)"
    )
    render.add_argument("--tools", type=Path, help="JSON list of tools (OpenAI function format)")
    render.add_argument(
        "--no-generation-prompt", action="store_true", help="leave out the assistant's opening"
    )
    render.add_argument("--gguf", type=Path, help="use the chat template embedded in this GGUF")

    parse = commands.add_parser(
        "parse",
        help="split raw K2 output into reasoning, content, calls",
        **examples("model parse"),
    )
    parse.add_argument("file", nargs="?", default="-", help="raw completion text (- for stdin)")

    info = commands.add_parser(
        "info", help="what a GGUF holds (no weights are loaded)", **examples("model info")
    )
    info.add_argument("path", type=Path, help="the GGUF (its first file, when split)")
    info.add_argument("--json", action="store_true", help="as one JSON object")

    plan = commands.add_parser(
        "plan", help="GPU/CPU placement of a GGUF and its decode bound", **examples("model plan")
    )
    plan.add_argument("path", type=Path, help="the GGUF (its first file, when split)")
    plan.add_argument(
        "--gpu-mem",
        type=size,
        default="0",
        help="GPU memory: 141G, 80GB, 141GiB; a plain number is GB (0: no GPU)",
    )
    plan.add_argument(
        "--ctx",
        type=int,
        help=f"context tokens for the KV cache (default: the model's trained length, at most "
        f"{DEFAULT_PLAN_CTX})",
    )
    plan.add_argument("--gpu-bw", type=float, default=4800.0, help="GPU memory bandwidth, GB/s")
    plan.add_argument("--cpu-bw", type=float, default=200.0, help="CPU memory bandwidth, GB/s")
    plan.add_argument("--json", action="store_true", help="as one JSON object")
    return root


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    command = {"render": _render, "parse": _parse, "info": _info, "plan": _plan}[args.command]
    return command(args)


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(
            sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
        )
    except FileNotFoundError:
        raise ConfigurationError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read {what} from {path}: {exc}") from None


def _render(args: argparse.Namespace) -> int:
    messages = _load_json(args.messages, "messages")
    if not isinstance(messages, list):
        raise ConfigurationError(f"{args.messages} must hold a JSON list of messages")
    tools = _load_json(args.tools, "tools") if args.tools else None
    template = ChatTemplate.official()
    if args.gguf:
        embedded = read_gguf(args.gguf).chat_template
        if embedded:
            template = ChatTemplate(embedded, origin=f"the chat template in {args.gguf}")
    text = template.render(messages, tools, add_generation_prompt=not args.no_generation_prompt)
    sys.stdout.write(text)
    return 0


def _parse(args: argparse.Namespace) -> int:
    if args.file == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read {args.file}: {exc}") from None
    result = parse_completion(text)
    calls = [
        {
            "id": call.id,
            "name": call.name,
            "arguments": call.arguments,
            "raw_arguments": call.raw_arguments,
            "error": call.error,
        }
        for call in result.tool_calls
    ]
    dropped = [{"raw_id": d.raw_id, "why": d.why} for d in result.dropped]
    out = {
        "reasoning": result.reasoning,
        "content": result.content,
        "tool_calls": calls,
        "dropped_calls": dropped,
    }
    print(json.dumps(out, ensure_ascii=False, indent=2))
    for call in dropped:  # the model would be told; say it here too
        print(f"ponder: a call was dropped: {call['why']}", file=sys.stderr)
    return 0


def _count(n: int) -> str:
    """A parameter count: billions for real models, millions or thousands for small ones."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale * 0.995:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def _size(n_bytes: float) -> str:
    """Bytes for a table: GB for real models, MB or KB for the small ones tests make."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n_bytes >= scale * 0.995:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes:.0f} B" if n_bytes else "0"


def _info(args: argparse.Namespace) -> int:
    model = read_gguf(args.path)
    data = {
        "path": str(model.path),
        "files": len(model.shards),
        "architecture": model.architecture,
        "parameters": model.parameter_count,
        "blocks": model.block_count,
        "dense_blocks": model.arch_value("leading_dense_block_count"),
        "experts": model.arch_value("expert_count"),
        "experts_used": model.arch_value("expert_used_count"),
        "experts_shared": model.arch_value("expert_shared_count"),
        "context_length": model.context_length,
        "tokenizer": model.metadata.get("tokenizer.ggml.model"),
        "tokenizer_pre": model.metadata.get("tokenizer.ggml.pre"),
        "vocabulary": model.metadata.get("tokenizer.ggml.tokens"),
        "chat_template": model.chat_template is not None,
        "gigabytes_by_group": {g: round(b / 1e9, 3) for g, b in model.bytes_by_group().items()},
        "types_by_group": model.types_by_group(),
        "kv_cache_bytes_per_token": kv_bytes_per_token(model),
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    console = Console(highlight=False)
    console.print(f"[bold]{model.path.name}[/] ({len(model.shards)} file(s))")
    for key in ("architecture", "blocks", "dense_blocks", "context_length", "tokenizer"):
        if data[key] is not None:  # a dense model has no count of leading dense blocks
            console.print(f"  {key.replace('_', ' ')}: {data[key]}")
    console.print(f"  parameters: {_count(model.parameter_count)}")
    if data["experts"]:
        console.print(
            f"  experts: {data['experts']} routed ({data['experts_used']} used per token), "
            f"{data['experts_shared']} shared"
        )
    pre = f" ({data['tokenizer_pre']} pre-tokenizer)" if data["tokenizer_pre"] else ""
    console.print(f"  vocabulary: {data['vocabulary']} tokens{pre}")
    console.print(f"  chat template embedded: {'yes' if data['chat_template'] else 'no'}")
    console.print(f"  KV cache: {data['kv_cache_bytes_per_token'] / 1024:.1f} KiB per token (f16)")
    table = Table("group", "size", "types")
    sizes, types = model.bytes_by_group(), model.types_by_group()
    for group in GROUPS:
        if group in sizes:
            table.add_row(GROUP_LABELS[group], _size(sizes[group]), ", ".join(types[group]))
    console.print(table)
    return 0


def _plan(args: argparse.Namespace) -> int:
    model = read_gguf(args.path)
    ctx, why = args.ctx, "as asked"
    if ctx is None:
        trained = model.context_length
        ctx = min(trained or DEFAULT_PLAN_CTX, DEFAULT_PLAN_CTX)
        why = (
            f"the model names no trained length; {ctx} assumed (--ctx changes it)"
            if not trained
            else f"the model's trained length, {trained}" + (", capped" if trained > ctx else "")
        )
    args.ctx = ctx
    plan = plan_offload(
        model,
        gpu_mem=args.gpu_mem,
        ctx=ctx,
        gpu_bandwidth=args.gpu_bw * 1e9,
        cpu_bandwidth=args.cpu_bw * 1e9,
    )
    if args.json:
        print(json.dumps({**asdict(plan), "llama_cpp_flags": plan.llama_cpp_flags()}, indent=2))
        return 0
    console = Console(highlight=False)
    table = Table("group", "GPU", "CPU", title=f"{model.path.name}, {args.ctx}-token context")
    for group in GROUPS:
        gpu, cpu = plan.gpu_bytes.get(group, 0), plan.cpu_bytes.get(group, 0)
        if gpu or cpu:
            table.add_row(GROUP_LABELS[group], _size(gpu), _size(cpu))
    kv_gpu = plan.kv_bytes if plan.fits else 0
    table.add_row("KV cache", _size(kv_gpu), _size(plan.kv_bytes - kv_gpu))
    table.add_row("[bold]total", f"[bold]{_size(plan.gpu_total)}", f"[bold]{_size(plan.cpu_total)}")
    console.print(table)
    console.print(f"  context: {ctx} tokens ({why})")
    for note in plan.notes:
        console.print(f"  {note}")
    console.print(f"  llama.cpp flags: {plan.llama_cpp_flags()}")
    if plan.decode_bound_tokens_per_s:
        console.print(
            f"  decode bound: {plan.decode_bound_tokens_per_s:.1f} tokens/s "
            f"(GPU {args.gpu_bw:g} GB/s, CPU {args.cpu_bw:g} GB/s, KV cache full)"
        )
    return 0
