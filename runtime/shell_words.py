"""Bash text read the way bash reads it, as far as approvals need: words, quotes, escapes,
operators, redirections, here-documents and expansions (:class:`ShellReader`). What those words
run is :mod:`ponder.runtime.shell_commands`'s business."""

from __future__ import annotations

import re
from typing import NamedTuple


class Word(NamedTuple):
    text: str
    """Without its quotes; an expansion is kept as written (``$G``, ``$(echo git)``)."""
    literal: bool
    """Nothing in it is filled in at run time: the text is what the program receives."""


_OPERATORS: tuple[str, ...] = ("&&", "||", ";;&", ";;", ";&", "|&", "&>>", "&>", "<<<", "<<-")
_OPERATORS += ("<<", ">>", "<&", ">&", ">|", "<>", "&", "|", ";", "(", ")", "<", ">")
"""Longest first, so that ``&&`` is not read as two ``&``."""
_REDIRECTS = frozenset(op for op in _OPERATORS if "<" in op or ">" in op)
_GLOB = re.compile(r"[*?]|\[[^\s\]]+\]|\{[^\s{}]*(,|\.\.)[^\s{}]*\}")
_VARIABLE = re.compile(r"\$([A-Za-z_]\w*|[0-9@*#?$!-])")


class ShellReader:
    """Splits a bash script into simple commands the way bash does, as far as approvals need:
    quotes, escapes, operators, redirections (their targets are not arguments), here-documents
    (their bodies are not commands) and expansions, which make a word not literal. The scripts
    that substitutions run are kept in ``substitutions`` to be judged on their own."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.at = 0
        self.commands: list[list[Word]] = [[]]
        self.substitutions: list[str] = []
        self._text: list[str] = []
        self._open = self._quoted = False
        self._literal = True
        self._redirect: str | None = None
        """The redirection whose target the next word is."""
        self._pattern = False
        """Reading a ``case`` pattern (``a|b)``): words that are not commands."""
        self._heredocs: list[tuple[str, bool, bool]] = []
        """Here-documents whose bodies start after the next newline: (delimiter, the body is
        expanded, leading tabs are stripped)."""

    def read(self) -> ShellReader:
        script = self.script
        while self.at < len(script):
            char = script[self.at]
            if char in " \t\n":
                self._end_word()
                self.at += 1
                if char == "\n":
                    self._separate()
                    self._skip_heredocs()
            elif char == "#" and not self._open:  # a comment, to the end of the line
                self.at = _find(script, "\n", self.at)
            elif char == "\\":
                if script[self.at + 1 : self.at + 2] != "\n":  # a backslash-newline joins lines
                    self._add(script[self.at + 1 : self.at + 2], quoted=True)
                self.at += 2
            elif char == "'":
                end = _find(script, "'", self.at + 1)
                self._add(script[self.at + 1 : end], quoted=True)
                self.at = end + 1
            elif char == '"':
                self.at += 1
                self._double_quoted('"')
            elif char in "$`" or script.startswith(("<(", ">("), self.at):
                self._expansion()
            elif char == "(" and self._open and not script.startswith("()", self.at):
                self._in_word_parentheses()
            elif char in "&|;()<>":  # each of them starts an operator
                self._operator(next(op for op in _OPERATORS if script.startswith(op, self.at)))
            else:
                if _GLOB.match(script, self.at):
                    self._literal = False
                self._add(char)
                self.at += 1
        self._end_word()
        self.commands = [words for words in self.commands if words]
        return self

    def _add(self, text: str, quoted: bool = False) -> None:
        self._text.append(text)
        self._open = True
        self._quoted |= quoted

    def _end_word(self) -> None:
        if not self._open:
            return
        word = Word("".join(self._text), self._literal)
        if self._pattern:
            self._pattern = word.text != "esac"
        elif self._redirect is None:
            self.commands[-1].append(word)
            texts = [w.text for w in self.commands[-1]]
            self._pattern = len(texts) == 3 and texts[0] == "case" and texts[2] == "in"
        elif self._redirect in ("<<", "<<-"):
            self._heredocs.append((word.text, not self._quoted, self._redirect == "<<-"))
        self._redirect = None
        self._text = []
        self._open = self._quoted = False
        self._literal = True

    def _separate(self) -> None:
        self._redirect = None
        if self.commands[-1]:
            self.commands.append([])

    def _operator(self, operator: str) -> None:
        self.at += len(operator)
        if operator in _REDIRECTS:
            if self._open and "".join(self._text).isdigit() and not self._quoted:
                self._text, self._open = [], False  # ``2>&1``: the 2 is a file descriptor
            self._end_word()
            self._redirect = operator
            return
        self._end_word()
        if self._pattern and operator != ")":  # ``a|b)``, ``(a)``: still the pattern
            return
        self._separate()  # also for ``f()``: the body that follows is a command
        self._pattern = operator in (";;", ";&", ";;&")  # the next pattern of a ``case``

    def _double_quoted(self, closing: str) -> None:
        """From after the opening quote to after ``closing`` (none: to the end, for the body of
        a here-document, which is expanded the same way)."""
        script = self.script
        self._add("", quoted=True)
        while self.at < len(script) and script[self.at] != closing:
            char = script[self.at]
            if char == "\\" and script[self.at + 1 : self.at + 2] in ("$", "`", '"', "\\", "\n"):
                self._add(script[self.at + 1].strip("\n"))
                self.at += 2
            elif char in "$`":
                self._expansion()
            else:
                self._add(char)
                self.at += 1
        self.at += 1

    def _expansion(self) -> None:
        """``$name``, ``${...}``, ``$(...)``, backticks, ``<(...)``, ``$'...'``: kept as written
        and not literal; the scripts that substitutions run are kept."""
        script, start = self.script, self.at
        if script.startswith(("$(", "<(", ">("), start):
            end = _closing(script, start + 2, "(", ")")
            self.substitutions.append(script[start + 2 : end])
        elif script[start] == "`":
            end = _find(script, "`", start + 1, escapes=True)
            self.substitutions.append(re.sub(r"\\([`$\\])", r"\1", script[start + 1 : end]))
        elif script.startswith("${", start):
            end = _closing(script, start + 2, "{", "}")
            self.substitutions += ShellReader(script[start + 2 : end]).read().substitutions
        elif script.startswith("$'", start):
            end = _find(script, "'", start + 2, escapes=True)
        elif variable := _VARIABLE.match(script, start):
            end = variable.end() - 1
        else:  # a lone ``$`` is just a dollar sign
            self._add("$")
            self.at += 1
            return
        self._add(script[start : end + 1])
        self._literal = False
        self.at = end + 1

    def _in_word_parentheses(self) -> None:
        """``a=(1 2)``, extglob's ``@(a|b)``: part of the word, and not literal."""
        end = _closing(self.script, self.at + 1, "(", ")")
        self.substitutions += ShellReader(self.script[self.at + 1 : end]).read().substitutions
        self._add(self.script[self.at : end + 1])
        self._literal = False
        self.at = end + 1

    def _skip_heredocs(self) -> None:
        for delimiter, expanded, tabs in self._heredocs:
            start = self.at
            while self.at < len(self.script):
                end = _find(self.script, "\n", self.at)
                line = self.script[self.at : end]
                self.at = end + 1
                if (line.lstrip("\t") if tabs else line) == delimiter:
                    break
            if expanded:
                body = ShellReader(self.script[start : self.at])
                body._double_quoted("")
                self.substitutions += body.substitutions
        self._heredocs = []


def _find(text: str, char: str, start: int, escapes: bool = False) -> int:
    """Where ``char`` next is (past backslash escapes if ``escapes``), or the end."""
    at = start
    while at < len(text) and text[at] != char:
        at += 2 if escapes and text[at] == "\\" else 1
    return min(at, len(text))


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """Where the ``closing`` that matches an ``opening`` before ``start`` is (quotes skipped), or
    the end. A misread only moves text between a substitution and its command: all of it is
    still judged."""
    depth, at = 1, start
    while at < len(text):
        char = text[at]
        if char == "\\":
            at += 1
        elif char in "'\"":
            at = _find(text, char, at + 1, escapes=char == '"')
        elif char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return at
        at += 1
    return len(text)


# What each simple command runs.
