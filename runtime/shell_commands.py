"""Bash command text read as the simple commands it runs, for the approval policy.

The model writes the command, and a reader that takes the first word literally is easy to get
around (``G=git; $G clean``, ``/usr/bin/git``, ``xargs git``). :func:`split_commands` reads
quotes, escapes, redirections and here-documents as bash does, and follows what runs other
commands (``$( )``, backticks, ``eval``, ``bash -c``, ``find -exec``, ``xargs``, wrappers such as
``env``, ``sudo`` or ``timeout``, git's options before its subcommand). A word bash only fills
in when the command runs (``$G``, ``$(echo git)``, a glob) is marked: from it on, a
:class:`Command` could be anything (:attr:`Command.known`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ponder.runtime.shell_words import ShellReader, Word


@dataclass(frozen=True)
class Command:
    """A simple command as ponder reads it."""

    words: tuple[str, ...]
    known: int
    """How many of the first words are certain; from ``words[known]`` on, the command could be
    anything. 0: the program itself is chosen at run time."""
    why: str = ""
    """What is only known at run time, for the reason a person is shown (```$G```)."""

    @property
    def text(self) -> str:
        return " ".join(self.words)


class _Wrapper(NamedTuple):
    values: frozenset[str]
    """Its options that take the next word as their value."""
    operands: int = 0
    """Words before the command (``timeout 5 git``)."""


def _wrapper(values: str = "", operands: int = 0) -> _Wrapper:
    return _Wrapper(frozenset(values.split()), operands)


WRAPPERS = {
    "sudo": _wrapper("-u -g -h -p -C -D -r -t -T -U -R --user --group --host --prompt --chdir"),
    "doas": _wrapper("-u -C"),
    "env": _wrapper("-u -C -a -S --unset --chdir --argv0 --split-string"),
    "nohup": _wrapper(),
    "time": _wrapper("-f -o --format --output"),
    "command": _wrapper(),
    "builtin": _wrapper(),
    "exec": _wrapper("-a"),
    "nice": _wrapper("-n --adjustment"),
    "timeout": _wrapper("-s -k --signal --kill-after", operands=1),
    "stdbuf": _wrapper("-i -o -e --input --output --error"),
    "setsid": _wrapper(),
    "chroot": _wrapper(operands=1),
    "busybox": _wrapper(),
    "xargs": _wrapper("-a -d -E -I -L -n -P -s --arg-file --delimiter --max-lines --max-args"),
}
"""Programs that run the rest of their words as a command (judged as that command)."""
RESERVED = frozenset({"!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done"})
RESERVED |= {"while", "until", "esac"}
SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh", "mksh", "ash", "fish"})
SHELL_VALUES = frozenset({"-o", "-O", "--rcfile", "--init-file"})
FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
GIT_VALUES = frozenset(
    {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env", "--attr-source"}
)
"""git's options before the subcommand that take the next word as their value."""
GIT_SAFE_CONFIG = ("user.", "color.", "advice.", "init.defaultbranch", "commit.gpgsign")
"""``git -c`` settings that cannot change what git runs (an alias, a pager or a hook can)."""
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*(\[[^]]*\])?\+?=")
_MAX_DEPTH = 8


def split_commands(command: str, depth: int = 0) -> list[Command]:
    """Every simple command in ``command``: those of its pipelines and chains, then those that
    its substitutions, ``eval``, ``bash -c`` and the like run."""
    if depth > _MAX_DEPTH:
        return [_command([Word(command, False)], "commands nested too deep to read", known=0)]
    reader = ShellReader(command).read()
    found = [simple for words in reader.commands for simple in _resolve(words, depth)]
    for script in reader.substitutions:
        found += split_commands(script, depth + 1)
    return found


def _command(words: Sequence[Word], why: str = "", known: int | None = None) -> Command:
    certain = next((i for i, word in enumerate(words) if not word.literal), len(words))
    known = certain if known is None else min(known, certain)
    if not why and known < len(words):
        why = f"`{words[known].text}`"
    return Command(tuple(word.text for word in words), known, why)


def program_name(program: str) -> str:
    """The name a program is known by (``/usr/bin/git`` is ``git``)."""
    return program.rsplit("/", 1)[-1]


def _resolve(words: list[Word], depth: int) -> list[Command]:
    """What one simple command runs: past assignments, ``{``/``if``/``!`` and wrappers, to the
    program; then, for programs that run other commands, those commands."""
    at, xargs = 0, None  # for xargs: what ``-I`` replaces with what it reads, or "" (appends it)
    while at < len(words):
        text, name = words[at].text, program_name(words[at].text)
        if _ASSIGNMENT.match(text) or (words[at].literal and text in RESERVED):
            at += 1
        elif text in ("function", "coproc"):  # ``function f {``: the name is not run
            at += 2 if [w.text for w in words[at + 2 : at + 3]] == ["{"] else 1
        elif words[at].literal and name in WRAPPERS:
            end = _past_options(words, at + 1, WRAPPERS[name].values)
            if name == "env" and _has_option(words[at + 1 : end], "-S --split-string"):
                return [_command(words[at:], "the words `env -S` splits", known=0)]
            if name == "xargs":
                xargs = _xargs_replaces(words[at + 1 : end])
            at = end + WRAPPERS[name].operands
        else:
            break
    if at >= len(words):
        return []
    rest = words[at:]
    if xargs is not None:
        rest = _placeholders(rest, xargs) if xargs else [*rest, Word("<what xargs reads>", False)]
    program, name = rest[0], program_name(rest[0].text)
    if not program.literal:
        return [_command(rest)]
    if name.startswith("git-"):  # /usr/lib/git-core/git-clean
        rest = [Word("git", True), Word(name[4:], True), *rest[1:]]
        name = "git"
    if name == "eval":  # bash reads its words again, as a script
        return split_commands(" ".join(word.text for word in rest[1:]), depth + 1)
    if name in SHELLS or name in ("source", "."):
        return _shell(rest, depth)
    if name in ("alias", "hash"):  # ``alias g=git``, ``hash -p /usr/bin/git g``: g is git
        defined = [tuple(w.text.split("=", 1)) for w in rest[1:] if "=" in w.text]
        defined += [(w.text, rest[2].text) for w in rest[3:4] if rest[1].text == "-p"]
        return [
            _followed_by(command, f"<what follows {alias}>")
            for alias, value in defined
            for command in split_commands(value, depth + 1)
        ]
    if name == "trap":  # ``trap 'git clean -fdx' EXIT``
        script = rest[_past_options(rest, 1, frozenset()) :][:1]
        return split_commands(script[0].text, depth + 1) if script else []
    if name == "git":
        return [_git(rest)]
    if name == "find":
        return [_command(rest), *_find_exec(rest, depth)]
    return [_command(rest)]


def _followed_by(command: Command, word: str) -> Command:
    """``command`` with words after it that are only known at run time."""
    if command.known < len(command.words):
        return command
    return Command((*command.words, word), command.known, f"`{word}`")


def _past_options(words: Sequence[Word], at: int, values: frozenset[str]) -> int:
    """The index of the first word after the options that start at ``at``."""
    while at < len(words) and words[at].literal and words[at].text.startswith(("-", "+")):
        option = words[at].text
        if option in ("-", "--"):
            return at + 1
        at += 1 + _takes_value(option, values)
    return at


def _has_option(options: Sequence[Word], names: str) -> bool:
    """Whether one of ``names`` (``-c --split-string``) is among ``options``: alone, in a
    cluster (``-lc``) or with its value (``--split-string=...``)."""
    wanted = names.split()
    for text in (word.text for word in options):
        if text.startswith("--") and text.partition("=")[0] in wanted:
            return True
        if text[:1] == "-" and text[:2] != "--" and any(f"-{c}" in wanted for c in text[1:]):
            return True
    return False


def _takes_value(option: str, values: frozenset[str]) -> bool:
    """Whether ``option`` (``-u``, ``--user``, ``-Eu``) takes the next word as its value."""
    if option.startswith("--"):
        return option in values
    for position, letter in enumerate(option[1:], start=2):
        if f"-{letter}" in values:
            return position == len(option)  # ``-uroot`` has its value in the word
    return False


def _xargs_replaces(options: Sequence[Word]) -> str:
    """What ``xargs -I R`` (``-iR``, ``--replace=R``) replaces with what it reads; "" when it
    adds what it reads to the end of the command."""
    for at, text in enumerate(word.text for word in options):
        if text == "-I" and at + 1 < len(options):
            return options[at + 1].text
        if text.startswith(("-I", "-i")):
            return text[2:] or "{}"
        if text.startswith("--replace"):
            return text.partition("=")[2] or "{}"
    return ""


def _placeholders(words: Sequence[Word], marker: str) -> list[Word]:
    """The words, those with ``marker`` in them (what ``find`` or ``xargs`` fill in) not
    literal."""
    return [Word(word.text, word.literal and marker not in word.text) for word in words]


def _shell(words: list[Word], depth: int) -> list[Command]:
    """``bash -c SCRIPT`` runs SCRIPT; ``bash FILE`` and ``source FILE`` are judged by the file's
    name; a shell that reads its commands from its input or a stream runs what ponder cannot
    see."""
    program = words[0].text
    at = _past_options(words, 1, SHELL_VALUES) if program_name(program) in SHELLS else 1
    script = words[at] if at < len(words) else None
    if script is not None and _has_option(words[1:at], "-c"):
        return split_commands(script.text, depth + 1)
    if script is None or _has_option(words[1:at], "-s"):
        return [_command(words, f"what `{program}` reads from its input", known=0)]
    if script.text.startswith(("/dev/", "/proc/")) or not script.literal:
        return [_command(words, f"the script `{script.text}`", known=0)]
    return [_command(words)]


def _git(words: list[Word]) -> Command:
    """``git -C dir --no-pager clean`` is ``git clean``. A ``-c`` setting can make git run
    anything (``-c alias.x='clean -fdx' x``), as can ``--exec-path=DIR``: what follows it is
    only known at run time."""
    at = 1
    while at < len(words) and words[at].literal and words[at].text.startswith("-"):
        option, _, value = words[at].text.partition("=")
        takes = option in GIT_VALUES and not value
        if takes and at + 1 < len(words):
            value = words[at + 1].text
        changes_what_runs = option in ("-c", "--config-env") or (option == "--exec-path" and value)
        if changes_what_runs and not value.lower().startswith(GIT_SAFE_CONFIG):
            return _command(words, f"what `{option} {value}` does", known=1)
        at += 1 + takes
    return _command(words[:1] + words[at:])


def _find_exec(words: list[Word], depth: int) -> list[Command]:
    """The commands of ``find -exec ... ;`` (``{}``, the file found, is not literal)."""
    found: list[Command] = []
    for at, word in enumerate(words):
        if word.literal and word.text in FIND_EXEC:
            ends = [i for i in range(at + 1, len(words)) if words[i].text in (";", "+")]
            command = words[at + 1 : ends[0] if ends else len(words)]
            found += _resolve(_placeholders(command, "{}"), depth + 1)
    return found
