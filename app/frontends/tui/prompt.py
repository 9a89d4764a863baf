"""The prompt: multiline input with history and completion of ``/commands`` and ``@paths``.

Enter sends; ctrl+j (or alt+enter, or shift+enter where the terminal tells it apart) starts a
new line. Up on the first line and down on the last walk the history, which is shared with
line mode. Tab completes the word before the cursor; when several things fit, they are listed
above the prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import events
from textual.message import Message
from textual.widgets import TextArea

from ponder.app.completion import candidates, common_prefix, current_word

NEWLINE_KEYS = frozenset({"ctrl+j", "alt+enter", "shift+enter"})
HISTORY_KEPT = 1000


class PromptArea(TextArea):
    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Completions(Message):
        """What Tab found when more than one thing fits (empty: nothing to list)."""

        def __init__(self, options: list[str]) -> None:
            super().__init__()
            self.options = options

    def __init__(
        self,
        history: Path | None,
        commands: Callable[[], list[str]],
        files: Callable[[], list[str]],
        arguments: Callable[[], dict[str, list[str]]] = dict,
    ) -> None:
        super().__init__(id="prompt", soft_wrap=True, tab_behavior="focus", compact=True)
        self._history_file = history
        self._history = _read_history(history)
        self._position = len(self._history)
        self._draft = ""
        self._commands = commands
        self._files = files
        self._arguments = arguments

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        handled = True
        if key == "enter":
            self._submit()
        elif key in NEWLINE_KEYS:
            self.insert("\n")
        elif key == "tab" and not self.text:  # nothing to complete: on to the transcript
            self.app.action_focus_previous()
        elif key == "tab":
            self._complete()
        elif key == "up" and self.cursor_location[0] == 0 and self._history:
            self._walk_history(-1)
        elif key == "down" and self.cursor_location[0] == self.document.line_count - 1:
            self._walk_history(1)
        else:
            handled = False
        if handled:
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)

    def _submit(self) -> None:
        text = self.text.strip()
        if not text:
            return
        self._remember(text)
        self.clear()
        self.post_message(self.Completions([]))
        self.post_message(self.Submitted(text))

    def _remember(self, text: str) -> None:
        if not self._history or self._history[-1] != text:
            self._history.append(text)
            if self._history_file is not None:
                try:
                    with self._history_file.open("a", encoding="utf-8") as file:
                        file.write(_history_entry(text))
                except OSError:
                    pass  # history is a convenience; never fail a task over it
        self._position = len(self._history)
        self._draft = ""

    def _walk_history(self, direction: int) -> None:
        if self._position == len(self._history):
            self._draft = self.text
        self._position = max(0, min(len(self._history), self._position + direction))
        text = (
            self._draft if self._position == len(self._history) else self._history[self._position]
        )
        self.load_text(text)
        self.move_cursor(self.document.end if direction > 0 else (0, len(text.split("\n")[0])))

    def _complete(self) -> None:
        row, column = self.cursor_location
        before = self.document.get_text_range((0, 0), (row, column))
        options = candidates(before, self._commands(), self._files(), self._arguments())
        word = current_word(before)
        if not options:
            self.post_message(self.Completions([]))
            return
        completion = options[0] if len(options) == 1 else common_prefix(options)
        if len(completion) > len(word):
            self.insert(completion[len(word) :])
            if len(options) == 1 and not completion.endswith("/"):
                self.insert(" ")
        self.post_message(self.Completions(options if len(options) > 1 else []))


def _history_entry(text: str) -> str:
    """prompt_toolkit's FileHistory format, so line mode reads the same file."""
    lines = "".join(f"+{line}\n" for line in text.split("\n"))
    return f"\n# ponder\n{lines}"


def _read_history(path: Path | None) -> list[str]:
    if path is None or not path.exists():
        return []
    entries: list[str] = []
    lines: list[str] = []
    try:
        content = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in content.split("\n"):
        if line.startswith("+"):
            lines.append(line[1:])
        elif lines:
            entries.append("\n".join(lines))
            lines = []
    if lines:
        entries.append("\n".join(lines))
    return entries[-HISTORY_KEPT:]
