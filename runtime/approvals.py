"""When to ask a person before a tool call runs, and what they may answer.

Modes: ``ask`` asks before every action that changes something; ``auto`` (the default) lets
everything run that stays inside a sandbox with the network off, and asks for what could reach
out (a networked sandbox) or destroy work in a bind-mounted workspace (``git reset --hard``,
``git clean``, ``git push``, a ``checkout`` or ``restore`` of files); ``yolo`` never asks. (In a
Docker sandbox the repository's ``.git`` is read-only, so most of these fail anyway; with
``--sandbox local`` they would not.)
Allow and deny rules are command prefixes, checked against every sub-command of a pipeline or a
``&&``/``;`` chain; deny rules win in every mode. Who answers is the run's port
(:mod:`ponder.runtime.port`): a person, or a policy when nobody is there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["ask", "auto", "yolo"]
Decision = Literal["once", "always", "deny"]

READ_ONLY_TOOLS = frozenset({"view", "submit", "update_plan"})
MCP_PREFIX = "mcp__"
_SEPARATORS = frozenset({"|", "||", "&&", ";", "&", "\n", "(", ")", ";;", "|&"})
NETWORK_COMMANDS = (
    "curl",
    "wget",
    "ssh",
    "scp",
    "rsync",
    "nc",
    "ncat",
    "apt",
    "apt-get",
    "npm",
    "npx",
    "yarn",
    "pnpm",
    "pip install",
    "pip3 install",
    "python -m pip install",
    "python3 -m pip install",
    "uv pip install",
    "git clone",
    "git fetch",
    "git pull",
    "git push",
    "git submodule update",
    "cargo install",
    "go get",
)
DESTRUCTIVE_GIT = ("git reset --hard", "git clean", "git push", "git stash drop", "git stash clear")
CHECKOUT_GIT = ("git checkout", "git switch", "git restore")
BRANCH_ONLY = frozenset({"-b", "-c", "--create", "--orphan"})
"""``git checkout -b NAME``, ``git switch -c NAME``: a new branch, the files left as they are."""


@dataclass(frozen=True)
class ApprovalAnswer:
    decision: Decision
    message: str | None = None
    """With a denial: what the model is told."""
    by: Literal["user", "policy"] = "user"


SHELLS = frozenset({"bash", "sh", "dash", "zsh"})
WRAPPERS = frozenset({"sudo", "env", "nohup", "time", "command", "exec", "nice"})
"""Programs that run the rest of their words as the command (judged as that command)."""


def split_commands(command: str, depth: int = 0) -> list[list[str]]:
    """The words of each simple command in a pipeline or chain, including those in ``$( )``,
    backticks, ``bash -c '...'`` and ``eval`` (best effort for odd shell)."""
    commands = _split(command)
    if depth < 3:
        nested: list[list[str]] = []
        for words in commands:
            inner = _inner_script(_strip_env(words))
            nested.extend(split_commands(inner, depth + 1) if inner else [words])
        commands = nested
    return commands


def _inner_script(words: list[str]) -> str | None:
    if words[:1] == ["eval"]:
        return " ".join(words[1:])
    if words[:1] and words[0].rsplit("/", 1)[-1] in SHELLS and "-c" in words[1:-1]:
        return words[words.index("-c", 1) + 1]
    return None


def _split(command: str) -> list[list[str]]:
    text = command.replace("\n", " ; ").replace("`", " ; ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token in _SEPARATORS:
                commands.append([])
            else:
                commands[-1].append(token)
    except ValueError:  # unbalanced quotes: judge the text as one command
        return [command.split()]
    return [words for words in commands if words]


def _strip_env(words: list[str]) -> list[str]:
    """``FOO=1 sudo env BAR=2 git push`` is judged as ``git push``."""
    index = 0
    while index < len(words):
        word = words[index]
        if word in WRAPPERS or ("=" in word and not word.startswith("=")):
            index += 1
        else:
            break
    return words[index:]


SUBCOMMAND_TOOLS = frozenset(
    {"git", "npm", "yarn", "pnpm", "pip", "pip3", "cargo", "go", "docker", "uv", "poetry", "apt"}
)


def _prefix(words: list[str]) -> str:
    """What "always allow" covers: the program, with its subcommand for tools that have them."""
    if words[0] in SUBCOMMAND_TOOLS and len(words) > 1 and not words[1].startswith("-"):
        return " ".join(words[:2])
    return words[0]


def matches(words: list[str], prefix: str) -> bool:
    wanted = prefix.split()
    return bool(wanted) and words[: len(wanted)] == wanted


@dataclass(frozen=True)
class Verdict:
    action: Literal["allow", "deny", "ask"]
    reason: str = ""
    prefix: str = ""
    """For ``ask``: the rule "always allow" would add."""


@dataclass
class ApprovalPolicy:
    mode: Mode = "auto"
    allow: list[str] = field(default_factory=list)
    deny: list[str] = field(default_factory=list)
    network: bool = False
    """The sandbox can reach the network."""
    bind_mounted: bool = True
    """The workspace is the user's own directory (not a copy)."""

    def check(self, tool: str, arguments: dict[str, Any]) -> Verdict:
        if tool in READ_ONLY_TOOLS:
            return Verdict("allow")
        if tool.startswith(MCP_PREFIX):
            return self._check_mcp(tool)
        if tool != "bash":
            if self.mode == "ask" and tool not in self.allow:
                return Verdict("ask", f"{tool} changes a file", prefix=tool)
            return Verdict("allow")
        command = str(arguments.get("command", ""))
        parts = [_strip_env(words) for words in split_commands(command)]
        verdicts = [self._check_words(words) for words in parts if words]
        for wanted in ("deny", "ask"):
            for verdict in verdicts:
                if verdict.action == wanted:
                    return verdict
        return Verdict("allow")

    def _check_mcp(self, tool: str) -> Verdict:
        """An MCP tool runs on the host, outside the sandbox: asked for unless a rule allows it.
        Rules match by prefix at ``__`` boundaries (``mcp__time`` is every tool of ``time``)."""

        def matches_tool(rule: str) -> bool:
            return tool == rule or tool.startswith(rule.rstrip("_") + "__")

        for rule in self.deny:
            if matches_tool(rule):
                return Verdict("deny", f"`{tool}` matches the deny rule `{rule}`")
        if self.mode == "yolo" or any(matches_tool(rule) for rule in self.allow):
            return Verdict("allow")
        return Verdict("ask", f"{tool} runs on your machine, outside the sandbox", prefix=tool)

    def _check_words(self, words: list[str]) -> Verdict:
        text = " ".join(words)
        for rule in self.deny:
            if matches(words, rule):
                return Verdict("deny", f"`{text}` matches the deny rule `{rule}`")
        if self.mode == "yolo" or any(matches(words, rule) for rule in self.allow):
            return Verdict("allow")
        prefix = _prefix(words)
        if self.mode == "ask":
            return Verdict("ask", "every command is checked in ask mode", prefix)
        if self.network:
            for rule in NETWORK_COMMANDS:
                if matches(words, rule):
                    return Verdict("ask", f"`{rule}` may reach the network", rule)
        if self.bind_mounted:
            for rule in DESTRUCTIVE_GIT:
                if matches(words, rule):
                    return Verdict("ask", f"`{rule}` can destroy work in your repository", rule)
            for rule in CHECKOUT_GIT:
                if matches(words, rule) and not BRANCH_ONLY & set(words[2:3]):
                    return Verdict("ask", f"`{rule}` can overwrite uncommitted changes", rule)
        return Verdict("allow")
