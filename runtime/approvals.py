"""When to ask a person before a tool call runs, and what they may answer.

Modes: ``ask`` asks before every action that changes something; ``auto`` (the default) lets
everything run that stays inside a sandbox with the network off, and asks for what could reach
out (a networked sandbox) or destroy work in a bind-mounted workspace (``git reset --hard``,
``git clean``, ``git push``, a ``checkout`` or ``restore`` of files); ``yolo`` never asks. (In a
Docker sandbox the repository's ``.git`` is read-only, so most of these fail anyway; with
``--sandbox local`` they would not.)
Allow and deny rules are command prefixes, checked against every simple command in the text:
each part of a pipeline or ``&&``/``;`` chain, and what ``$( )``, backticks, ``eval``, ``bash -c``,
``find -exec``, ``xargs`` and wrappers such as ``env``, ``sudo`` or ``timeout`` run. Deny rules win
in every mode. Who answers is the run's port (:mod:`ponder.runtime.port`): a person, or a policy
when nobody is there.

A program is matched by its name for the rules that stop something (deny rules and the lists
above): ``/usr/bin/git`` and ``\\git`` are ``git``, and ``git -C dir clean`` is ``git clean``. An
allow rule needs the program as written, so that ``./git status`` is not ``git status``.

A word bash only fills in when the command runs (``$G``, ``$(echo git)``, a glob, what ``xargs``
reads) could be anything, so from that word on ponder cannot tell what runs. Where the words it
can read start a rule and the next word it needs is such a word, the command *may* match the
rule: ``auto`` and ``ask`` then ask, with the reason; ``yolo`` asks nothing, so it denies a
command that may match a deny rule (a deny rule promises that the command never runs, and the
model can always write the program out) and allows the rest.

What this cannot see: what a script or an interpreter runs (``bash build.sh``, ``python -c``), a
copy or link of a program under another name, git aliases in the repository's config. Approvals
read the command; the sandbox is what contains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ponder.runtime.shell_commands import Command, program_name, split_commands
from ponder.runtime.tool_events import ToolKind

Mode = Literal["ask", "auto", "yolo"]
Decision = Literal["once", "always", "deny"]

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


# Judging commands.

Match = Literal["yes", "maybe", "no"]
DATA_ONLY = frozenset({"echo", "printf", "grep", "egrep", "fgrep", "rg"})
"""Programs whose other words are data, never a command they run."""


def _match(command: Command, rule: str, by_name: bool) -> Match:
    """Whether ``command`` is ``rule``: its program and subcommand first, the rule's options
    anywhere after them, in any order, or as a prefix git takes for them (``--har``).
    ``maybe`` where a word only known at run time stands where the rule needs one.

    ``by_name`` (a rule that stops something: a deny rule, what ``auto`` asks about): the
    program matches by its name (``/usr/bin/git`` is ``git``), and a command that holds the
    rule's words further on *may* be it: a program ponder does not know may run the rest of its
    words (``flock /tmp/l git clean``, ``ionice git clean``)."""
    wanted = rule.split()
    if not wanted:
        return "no"
    found = _match_at(command, wanted, 0, by_name)
    if found != "no" or not by_name or program_name(command.words[0]) in DATA_ONLY:
        return found
    later = range(1, min(command.known, len(command.words)))
    return "maybe" if any(_match_at(command, wanted, at, by_name) != "no" for at in later) else "no"


def _deny_match(command: Command, rule: str) -> Match:
    """:func:`_match` for a deny rule, which also *may* match a command that holds the rule as
    one word a program ponder does not know may run (``script -qc 'git clean -fdx'``)."""
    found = _match(command, rule, by_name=True)
    if found != "no" or program_name(command.words[0]) in DATA_ONLY:
        return found
    inner = (split_commands(word) for word in command.words[1 : command.known] if " " in word)
    matches = (_match(each, rule, by_name=True) for commands in inner for each in commands)
    return "maybe" if any(match != "no" for match in matches) else "no"


def _match_at(command: Command, wanted: list[str], start: int, by_name: bool) -> Match:
    words, known = command.words, command.known
    plain = [word for word in wanted if not word.startswith("-")]
    for offset, want in enumerate(plain):
        at = start + offset
        if at >= known:
            return "maybe" if at < len(words) else "no"
        word = words[at]
        if offset == 0 and by_name:
            word, want = program_name(word), program_name(want)
        if word != want:
            return "no"
    rest = words[start + len(plain) : known]
    ended = "--" in rest  # after it, no word is an option, known or not
    if ended:
        rest = rest[: rest.index("--")]
    for option in (word for word in wanted if word.startswith("-")):
        if not any(_same_option(word, option) for word in rest):
            return "maybe" if known < len(words) and not ended else "no"
    return "yes"


def _same_option(word: str, option: str) -> bool:
    """``--har`` is ``--hard`` to git (a unique prefix of a long option)."""
    if word == option:
        return True
    return option.startswith("--") and len(word) > 3 and option.startswith(word.split("=")[0])


SUBCOMMAND_TOOLS = frozenset(
    {"git", "npm", "yarn", "pnpm", "pip", "pip3", "cargo", "go", "docker", "uv", "poetry", "apt"}
)


def _prefix(command: Command) -> str:
    """What "always allow" covers: the program, with its subcommand for tools that have them;
    nothing when the program is only known at run time."""
    words = command.words[: command.known]
    if len(words) > 1 and program_name(words[0]) in SUBCOMMAND_TOOLS and words[1][:1] != "-":
        return " ".join(words[:2])
    return " ".join(words[:1])


_DENIED = "a deny rule forbids"


def _unsure(command: Command, rule: str, danger: str) -> str:
    """Why a command that may be ``rule`` is stopped; ``danger``: what ``rule`` does."""
    if command.known == 0:
        return _chosen_at_run_time(command, danger == _DENIED)
    if not command.why:  # the rule's words further on, for a program that may run them
        return f"`{command.text}` may run `{rule}`, which {danger}"
    return (
        f"`{command.text}` may be `{rule}`, which {danger}: {command.why} is only known at run time"
    )


def _chosen_at_run_time(command: Command, denied: bool = False) -> str:
    about = "whether a deny rule forbids it" if denied else "what runs"
    return f"the program is chosen at run time ({command.why}): ponder cannot tell {about}"


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

    def check(self, kind: ToolKind, tool: str, command: str = "") -> Verdict:
        """Whether a call of ``tool`` may run; ``command`` is an ``execute`` call's command."""
        if kind == "execute":
            return self.check_command(command)
        if kind == "host":
            return self._check_host(tool)
        if kind == "edit" and self.mode == "ask" and tool not in self.allow:
            return Verdict("ask", f"{tool} changes a file", prefix=tool)
        return Verdict("allow")

    def check_command(self, command: str) -> Verdict:
        """Whether a shell command may run: the strictest verdict of its simple commands."""
        verdicts = [self._check_command(part) for part in split_commands(command)]
        for wanted in ("deny", "ask"):
            for verdict in verdicts:
                if verdict.action == wanted:
                    return verdict
        return Verdict("allow")

    def _check_host(self, tool: str) -> Verdict:
        """A tool that runs on the host, outside the sandbox (an MCP server's): asked for unless
        a rule allows it. Rules match by prefix at ``__`` boundaries (``mcp__time`` is every tool
        of the server ``time``)."""

        def matches_tool(rule: str) -> bool:
            return tool == rule or tool.startswith(rule.rstrip("_") + "__")

        for rule in self.deny:
            if matches_tool(rule):
                return Verdict("deny", f"`{tool}` matches the deny rule `{rule}`")
        if self.mode == "yolo" or any(matches_tool(rule) for rule in self.allow):
            return Verdict("allow")
        return Verdict("ask", f"{tool} runs on your machine, outside the sandbox", prefix=tool)

    def _check_command(self, command: Command) -> Verdict:
        denied = {rule: _deny_match(command, rule) for rule in self.deny}
        for rule, found in denied.items():
            if found == "yes":
                return Verdict("deny", f"`{command.text}` matches the deny rule `{rule}`")
        for rule, found in denied.items():
            if found == "maybe" and self.mode == "yolo":  # nobody to ask: a deny rule holds
                return Verdict("deny", _unsure(command, rule, _DENIED))
            if found == "maybe":
                return Verdict("ask", _unsure(command, rule, _DENIED), _prefix(command))
        allowed = any(_match(command, rule, by_name=False) == "yes" for rule in self.allow)
        if self.mode == "yolo" or allowed:
            return Verdict("allow")
        prefix = _prefix(command)
        if self.mode == "ask" and command.known == 0:
            return Verdict("ask", _chosen_at_run_time(command))
        if self.mode == "ask":
            return Verdict("ask", "every command is checked in ask mode", prefix)
        for rule, danger in self._guarded():
            found = _match(command, rule, by_name=True)
            if found == "maybe":
                return Verdict("ask", _unsure(command, rule, danger), prefix)
            branch_only = rule in CHECKOUT_GIT and BRANCH_ONLY & set(command.words[2:3])
            if found == "yes" and not branch_only:
                return Verdict("ask", f"`{rule}` {danger}", rule)
        return Verdict("allow")

    def _guarded(self) -> list[tuple[str, str]]:
        """The rules ``auto`` mode asks about, with what each does."""
        guarded: list[tuple[str, str]] = []
        if self.network:
            guarded += [(rule, "may reach the network") for rule in NETWORK_COMMANDS]
        if self.bind_mounted:
            guarded += [(rule, "can destroy work in your repository") for rule in DESTRUCTIVE_GIT]
            guarded += [(rule, "can overwrite uncommitted changes") for rule in CHECKOUT_GIT]
        return guarded
