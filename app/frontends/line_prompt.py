"""Line mode's prompt: prompt-toolkit with history, multiline input and completion.

Enter sends; alt+enter (Esc then Enter) or ctrl+j starts a new line. Tab completes
``/commands`` and ``@paths``; the history is the TUI's. When stdin is not a terminal, each line
of it is one message and prompt-toolkit stays out of the way.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output
from rich.console import Console
from rich.text import Text

from ponder.app.completion import candidates, current_word, history_file, workspace_files
from ponder.app.slash_commands import ARGUMENTS, HELP, LINE_KEYS, TASK_COMMANDS, help_text
from ponder.sandbox.safe_text import safe_text

FILES_FRESH_S = 5.0


class _Completer(Completer):
    def __init__(self, names: list[str], workspace: Path | None) -> None:
        self._names = names
        self._workspace = workspace
        self._files: list[str] = []
        self._listed = 0.0

    def _current_files(self) -> list[str]:
        if self._workspace is not None and time.monotonic() - self._listed > FILES_FRESH_S:
            self._files = workspace_files(self._workspace)
            self._listed = time.monotonic()
        return self._files

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        word = current_word(text)
        for option in candidates(text, self._names, self._current_files(), ARGUMENTS):
            yield Completion(option, start_position=-len(word))


class LinePrompt:
    def __init__(
        self,
        commands: dict[str, Callable[[str], str]],
        workspace: Path | None,
        *,
        input: Input | None = None,
        output: Output | None = None,
    ) -> None:
        """``input`` and ``output`` replace the terminal (tests use a pipe)."""
        self.commands = commands
        self.names = [n for n in HELP if n in commands or n in ("help", "quit", *TASK_COMMANDS)]
        self._terminal = input is not None or sys.stdin.isatty()
        if not self._terminal:
            return
        keys = KeyBindings()

        @keys.add("escape", "enter")
        @keys.add("c-j")
        def _newline(event: KeyPressEvent) -> None:
            event.current_buffer.insert_text("\n")

        self._session: PromptSession[str] = PromptSession(
            history=FileHistory(str(history_file())),
            completer=_Completer(self.names, workspace),
            complete_while_typing=False,
            key_bindings=keys,
            prompt_continuation="  ",
            input=input,
            output=output,
        )

    def read(self, typed: str | None = None, draft: str = "") -> str:
        """The next message; raises EOFError at the end of input. ``typed`` is a message
        already typed (before the prompt was up): shown as sent; else ``draft`` starts the
        prompt's text."""
        if not self._terminal:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line.strip()
        if typed is not None:
            print_formatted_text(f"› {typed}", output=self._session.output)
            return typed
        return self._session.prompt("› ", default=draft).strip()

    def command(self, text: str, console: Console) -> str | None:
        """Run a slash command and print what it says; returns ``"quit"`` to leave."""
        name, _, argument = text[1:].partition(" ")
        if name == "quit":
            return "quit"
        if name == "help":
            shown = help_text(self.names, LINE_KEYS)
        elif name == "theme":
            shown = "themes are for the TUI (run ponder without --plain)"
        elif name not in self.commands:
            shown = f"unknown command /{name}; /help lists them"
        else:
            try:
                shown = self.commands[name](argument)
            except Exception as error:  # a command's failure is shown, not fatal
                shown = f"/{name} failed: {error}"
        console.print(Text(safe_text(shown), style="yellow"))
        return None
