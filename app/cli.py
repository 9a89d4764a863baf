"""The ``ponder`` command."""

from __future__ import annotations

import argparse
import signal
import sys
from importlib.metadata import version
from pathlib import Path
from types import FrameType

from ponder.app.config import NO_MODEL_HELP, Config, ConfigError, config_file, load_config
from ponder.model.backend import BackendError, ConfigurationError, open_backend
from ponder.sandbox.base import SandboxError, SandboxUnavailable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    pass


def _main_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ponder",
        description="A terminal coding agent for thinking models. Every command runs in a "
        "Docker sandbox.",
        epilog="Other commands: `ponder demo` (a full run without a model), "
        "`ponder model render|parse|info|plan` (formats and GGUFs), "
        "`ponder sandbox build|cleanup|exec|shell` (sandboxes).",
    )
    parser.add_argument("prompt", nargs="?", help="a task to start with")
    parser.add_argument("--model", help="llamacpp:PATH.gguf, openai:URL#MODEL or scripted:PATH")
    parser.add_argument("--plain", action="store_true", help="line mode instead of the TUI")
    parser.add_argument("--workspace", type=Path, default=Path.cwd(), help="default: here")
    parser.add_argument("--image", help="sandbox image (default: ponder's own)")
    parser.add_argument("--network", action="store_true", default=None, help="sandbox network on")
    parser.add_argument(
        "--sandbox", choices=["docker", "local"], help="where commands run (local: no isolation)"
    )
    parser.add_argument("--max-steps", type=int, help="most steps per task (default 300)")
    parser.add_argument("--version", action="version", version=f"ponder {version('ponder')}")
    sampling = parser.add_argument_group("sampling (default: temperature 1.0, top-p 0.95)")
    sampling.add_argument("--temp", type=float, help="temperature")
    sampling.add_argument("--top-p", type=float, help="nucleus sampling")
    sampling.add_argument("--min-p", type=float, help="minimum probability (local models)")
    sampling.add_argument("--top-k", type=int, help="top-k cut (local models; default off)")
    llama = parser.add_argument_group("llama.cpp (for llamacpp: models; as llama.cpp's flags)")
    llama.add_argument("-c", "--ctx-size", type=int, help="context size in tokens")
    llama.add_argument("-ngl", "--n-gpu-layers", type=int, help="layers on the GPU (-1: all)")
    llama.add_argument("--cpu-moe", action="store_true", default=None, help="all experts on CPU")
    llama.add_argument("--n-cpu-moe", type=int, help="experts of the first N blocks on the CPU")
    llama.add_argument(
        "-ot", "--override-tensor", action="append", metavar="REGEX=BUFT", help="tensor placement"
    )
    llama.add_argument("-fa", "--flash-attn", choices=["on", "off"], help="flash attention")
    llama.add_argument("-ctk", "--cache-type-k", help="KV cache type for keys (f16, q8_0, ...)")
    llama.add_argument("-ctv", "--cache-type-v", help="KV cache type for values")
    llama.add_argument("-t", "--threads", type=int, help="CPU threads")
    llama.add_argument("--no-mmap", action="store_false", dest="mmap", default=None)
    return parser


def _demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ponder demo",
        description="Watch ponder fix a real bug in a real sandbox, with a recorded model.",
    )
    parser.add_argument("--plain", action="store_true", help="line mode instead of the TUI")
    parser.add_argument("--image", help="sandbox image (default: ponder's own)")
    parser.add_argument("--sandbox", choices=["docker", "local"], help="where commands run")
    return parser


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    # Unwinds through every `with` block, so sandboxes are removed on SIGTERM and SIGHUP too.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)
    try:
        return _dispatch(argv)
    except (UsageError, ConfigError, ConfigurationError, SandboxUnavailable) as error:
        print(f"ponder: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (BackendError, SandboxError) as error:
        print(f"ponder: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ponder: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["demo"]:
        return _demo(_demo_parser().parse_args(argv[1:]))
    if argv[:1] == ["sandbox"]:
        from ponder.app import sandbox_commands

        return sandbox_commands.run(argv[1:])
    if argv[:1] == ["model"]:
        from ponder.app import model_commands

        return model_commands.run(argv[1:])
    return _interactive(_main_parser().parse_args(argv))


def _demo(args: argparse.Namespace) -> int:
    from ponder.app.demo import run_demo
    from ponder.app.frontends import pick_frontend

    config = load_config({"image": args.image, "sandbox": args.sandbox})
    frontend = pick_frontend(args.plain)
    # Stream at a readable pace on a terminal; as fast as possible into a pipe or a test.
    delay = 0.01 if sys.stdout.isatty() else 0.0
    return run_demo(frontend, config, chunk_delay=delay)


def _interactive(args: argparse.Namespace) -> int:
    from ponder.app.frontends import pick_frontend, run_session
    from ponder.app.sandboxes import sandbox_session
    from ponder.runtime.loop import AgentSettings

    config: Config = load_config(
        {
            "model": args.model,
            "image": args.image,
            "network": args.network,
            "sandbox": args.sandbox,
            "max_steps": args.max_steps,
            "sampling": {
                "temperature": args.temp,
                "top_p": args.top_p,
                "min_p": args.min_p,
                "top_k": args.top_k,
            },
            "llama": {
                "ctx_size": args.ctx_size,
                "n_gpu_layers": args.n_gpu_layers,
                "cpu_moe": args.cpu_moe,
                "n_cpu_moe": args.n_cpu_moe,
                "override_tensor": args.override_tensor,
                "flash_attn": None if args.flash_attn is None else args.flash_attn == "on",
                "cache_type_k": args.cache_type_k,
                "cache_type_v": args.cache_type_v,
                "threads": args.threads,
                "mmap": args.mmap,
            },
        }
    )
    if not config.model:
        raise UsageError(NO_MODEL_HELP.format(config=config_file()))
    if not args.workspace.is_dir():
        raise UsageError(f"workspace {args.workspace} is not a directory")
    backend = open_backend(
        config.model, llama=config.llama.options(), openai=config.openai.options()
    )
    try:
        with sandbox_session(config, args.workspace) as sandbox:
            settings = AgentSettings(
                max_steps=config.max_steps, generation=config.sampling.generation()
            )
            finished = run_session(
                pick_frontend(args.plain),
                backend,
                sandbox,
                args.prompt,
                settings=settings,
                theme=config.theme,
            )
    finally:
        backend.close()
    if finished is None or finished.reason in ("answered", "submitted"):
        return EXIT_OK
    return EXIT_FAILED
