"""``ponder completion bash|zsh|fish``: a completion script, made from ponder's own parsers.

Every command's parser is listed in :func:`command_parsers`, so the scripts (and the test that
every option has a help text and every command examples) cover the whole CLI. The scripts are
static: they complete command names, subcommand names and options; everything else falls back
to the shell's file completion.
"""

from __future__ import annotations

import argparse
import shlex

from ponder.app.help_examples import examples

SHELLS = ("bash", "zsh", "fish")


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every parser of the CLI by its command path ("" is ``ponder`` itself)."""
    from ponder.app.cli import acp_parser, demo_parser, exec_parser, main_parser
    from ponder.app.commands import doctor, mcp, model, sandbox, serve, sessions, swebench

    run, grade = swebench.parsers()
    found = {
        "": main_parser(),
        "exec": exec_parser(),
        "acp": acp_parser(),
        "demo": demo_parser(),
        **{name: sessions.parser(name) for name in ("sessions", "export", "undo", "diff")},
        "sandbox": sandbox.parser(),
        "model": model.parser(),
        "swebench": run,
        "swebench eval": grade,
        "serve": serve.parser(),
        "mcp": mcp.parser(),
        "doctor": doctor.parser(),
        "completion": parser(),
    }
    for name, root in list(found.items()):
        for sub, child in subcommands(root).items():
            found[f"{name} {sub}"] = child
    return found


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o.startswith("--")]


def _words(parsers: dict[str, argparse.ArgumentParser], path: str) -> list[str]:
    """What may follow ``ponder PATH``: its subcommands, then its options."""
    children = sorted({p.split(" ")[-1] for p in parsers if _parent(p) == path and p})
    return [*children, *_options(parsers[path])]


def _parent(path: str) -> str:
    return path.rsplit(" ", 1)[0] if " " in path else ""


def bash(parsers: dict[str, argparse.ArgumentParser]) -> str:
    cases = []
    for path in sorted(parsers, key=lambda p: -p.count(" ")):
        if path:
            pattern = shlex.quote(path)
            cases.append(
                f"        {pattern}) words={shlex.quote(' '.join(_words(parsers, path)))};;"
            )
    return "\n".join(
        [
            "# ponder completion for bash: source <(ponder completion bash)",
            "_ponder() {",
            '    local cur="${COMP_WORDS[COMP_CWORD]}" path="" words i',
            "    for ((i = 1; i < COMP_CWORD; i++)); do",
            '        case "${COMP_WORDS[i]}" in -*) ;; *) path="${path:+$path }${COMP_WORDS[i]}";;'
            " esac",
            "    done",
            "    while :; do",
            '        case "$path" in',
            *cases,
            f"        '') words={shlex.quote(' '.join(_words(parsers, '')))};;",
            '        *) if [ "$path" = "${path% *}" ]; then path=""; else path="${path% *}"; fi',
            "           continue;;",
            "        esac",
            "        break",
            "    done",
            '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
            "}",
            "complete -o default -F _ponder ponder",
            "",
        ]
    )


def zsh(parsers: dict[str, argparse.ArgumentParser]) -> str:
    return (
        "# ponder completion for zsh: source <(ponder completion zsh)\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash(parsers).split("\n", 1)[1]
    )


def fish(parsers: dict[str, argparse.ArgumentParser]) -> str:
    lines = ["# ponder completion for fish: ponder completion fish | source"]
    top = sorted(p for p in parsers if p and " " not in p)
    for name in top:
        about = (parsers[name].description or "").split(".")[0][:60]
        lines.append(
            f"complete -c ponder -n __fish_use_subcommand -a {shlex.quote(name)} "
            f"-d {shlex.quote(about)}"
        )
    for path, parser in parsers.items():
        words = path.split()
        if not words:
            condition = "__fish_use_subcommand"
        else:
            condition = f"__fish_seen_subcommand_from {words[-1]}"
            if len(words) > 1:
                condition += f"; and __fish_seen_subcommand_from {words[0]}"
        for sub in subcommands(parser):
            lines.append(f"complete -c ponder -n {shlex.quote(condition)} -a {shlex.quote(sub)}")
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    about = (action.help or "").replace("%%", "%")[:60]
                    lines.append(
                        f"complete -c ponder -n {shlex.quote(condition)} -l {option[2:]} "
                        f"-d {shlex.quote(about)}"
                    )
    return "\n".join(lines) + "\n"


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="ponder completion",
        description="Print a shell completion script for ponder's commands and options.",
        **examples("completion"),
    )
    result.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    return result


def run(argv: list[str]) -> int:
    shell = parser().parse_args(argv).shell
    print({"bash": bash, "zsh": zsh, "fish": fish}[shell](command_parsers()), end="")
    return 0
