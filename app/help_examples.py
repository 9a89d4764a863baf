"""The examples at the end of every ``--help``, by command path, in one place to keep them
consistent (``tests/test_cli.py`` checks that every command has some)."""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLES = {
    "": [
        "ponder demo                                   # try it without a model",
        "ponder --model openai:http://gpu:8000/v1#kimi-k2-thinking",
        'ponder "fix the failing test in tests/test_stats.py"',
        'git diff | ponder -p "review this change"     # answer only, for pipelines',
        "ponder --resume                               # go on with this folder's last session",
    ],
    "exec": [
        'ponder exec "make the tests pass" --json > events.jsonl',
        "echo 'add a --verbose flag' | ponder exec - --max-steps 50",
        'ponder exec "list the TODOs" --output-schema todos.schema.json',
        'ponder exec resume --last "now add a test"      # go on with this folder\'s last session',
    ],
    "acp": [
        'zed settings: "agent_servers": {"ponder": {"type": "custom", "command": "ponder", '
        '"args": ["acp"]}}'
    ],
    "demo": ["ponder demo", "ponder demo --plain"],
    "sessions": [
        "ponder sessions",
        "ponder sessions --workspace . --limit 5",
        "ponder sessions --json | jq .task",
    ],
    "export": ["ponder export 20261130-1712 > session.md", "ponder export 2026 --format json"],
    "undo": ["ponder undo", "ponder undo --session 20261130-1712"],
    "diff": ["ponder diff", "ponder diff > change.patch && git apply change.patch"],
    "sandbox": [
        "ponder sandbox build",
        "ponder sandbox exec -- python3 -V",
        "ponder sandbox shell",
    ],
    "sandbox build": ["ponder sandbox build", "ponder sandbox build --force"],
    "sandbox cleanup": ["ponder sandbox cleanup"],
    "sandbox exec": [
        "ponder sandbox exec -- python3 -c 'print(1)'",
        "ponder sandbox exec --json -- 'make && make test'",
    ],
    "sandbox shell": ["ponder sandbox shell", "ponder sandbox shell --network"],
    "model": ["ponder model info kimi.gguf", "ponder model plan kimi.gguf --gpu-mem 80G"],
    "model render": [
        "ponder model render --messages chat.json",
        "echo '[...]' | ponder model render --messages -",
    ],
    "model parse": ["ponder model parse raw.txt", "curl ... | ponder model parse -"],
    "model info": ["ponder model info Kimi-K2-Thinking-00001-of-00013.gguf --json"],
    "model plan": ["ponder model plan kimi.gguf --gpu-mem 141G --ctx 65536"],
    "swebench": [
        "ponder swebench --instances SWE-bench/SWE-bench_Verified --slice 0:20 --workers 4",
        "ponder swebench --instances tasks.jsonl --shard 2/8 --out preds-2.jsonl",
        "ponder swebench --instances tasks.parquet --ray auto --model openai:http://gpu:8000/v1#k2",
    ],
    "swebench eval": [
        "ponder swebench eval --instances SWE-bench/SWE-bench_Verified --predictions preds.jsonl",
        "ponder swebench eval --instances tasks.jsonl --predictions preds.jsonl --run-id try2",
    ],
    "serve": ["ponder serve kimi.gguf", "ponder serve --status"],
    "mcp": ["ponder mcp list", "ponder mcp trust", "ponder mcp trust github"],
    "mcp list": ["ponder mcp list", "ponder mcp list --workspace ~/src/app"],
    "mcp trust": ["ponder mcp trust", "ponder mcp trust github", "ponder mcp trust --yes github"],
    "doctor": ["ponder doctor"],
    "completion": [
        "source <(ponder completion bash)      # in ~/.bashrc",
        "source <(ponder completion zsh)       # in ~/.zshrc",
        "ponder completion fish > ~/.config/fish/completions/ponder.fish",
    ],
}


class _Formatter(argparse.HelpFormatter):
    """Wraps the description as usual; keeps the examples' lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples(path: str) -> dict[str, Any]:
    """Keyword arguments for a parser of ``ponder PATH``: its examples as the epilog."""
    lines = "\n".join(f"  {line}" for line in EXAMPLES[path])
    return {"epilog": f"examples:\n{lines}", "formatter_class": _Formatter}
