"""The blocks of the transcript: a user message, reasoning, an answer, a diff and notes (the
cards of tool calls and approvals are in :mod:`ponder.app.frontends.tui.cards`).

Every block can take the focus (Tab and shift+Tab walk the transcript); Enter opens or closes
what a block folds away, and ``c`` copies the block's text to the clipboard (OSC 52).
Colours come from theme variables only, so /theme repaints everything.
"""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Markdown, Static

from ponder.app.frontends.tui.links import answer_parser, follow_link
from ponder.model.backend import estimate_tokens

CHUNK_CHARS = 4000
"""Streamed reasoning is kept in pieces of about this size, so a frame re-renders one piece."""


class Block(Widget, can_focus=True):
    """Something in the transcript a person can focus, fold and copy."""

    BINDINGS = [
        Binding("enter", "fold", "Open/close", show=False),
        Binding("c", "copy", "Copy", show=False),
    ]

    def copy_text(self) -> str:
        return ""

    def action_copy(self) -> None:
        text = self.copy_text()
        self.app.copy_to_clipboard(text)
        self.notify(f"copied {len(text):,} characters", timeout=2)

    def action_fold(self) -> None:
        self.toggle_class("open")

    def on_click(self) -> None:
        self.action_fold()


class TextBlock(Block):
    """A block of plain text: the user's message, or a note."""

    DEFAULT_CSS = "TextBlock { height: auto; }"

    def __init__(self, text: str, classes: str) -> None:
        super().__init__(classes=classes)
        self.text = text

    def render(self) -> Content:
        return Content(self.text)

    def copy_text(self) -> str:
        return self.text


class FoldedBlock(Block):
    """A title with a body that Enter (or a click) opens: a resumed session's conversation."""

    def __init__(self, title: str, body: str) -> None:
        super().__init__(classes="folded note")
        self.title = title
        self.body = body

    def compose(self) -> ComposeResult:
        yield Static(self._title(), classes="block-title")
        yield Static(Content(self.body), classes="folded-body")

    def _title(self) -> Content:
        return Content.assemble(
            ("▾ " if self.has_class("open") else "▸ ", "$secondary"), self.title
        )

    def action_fold(self) -> None:
        super().action_fold()
        self.query_one(".block-title", Static).update(self._title())

    def copy_text(self) -> str:
        return self.body


class ReasoningBlock(Block):
    """The model's reasoning for one step: live while it streams, then folded to one line
    ("Thought for 12 s, ~834 tokens") that Enter opens again."""

    def __init__(self) -> None:
        super().__init__(classes="reasoning live")
        self._pieces: list[str] = [""]
        self._shown: list[Static] = []
        self._ready = False
        self._started = time.monotonic()
        self._seconds: float | None = None

    def compose(self) -> ComposeResult:
        yield Static(Content.styled("thinking…", "$secondary italic"), classes="block-title")
        yield Vertical(classes="reasoning-body")

    def on_mount(self) -> None:
        self._ready = True
        self._sync()
        if self._seconds is not None:
            self._show_summary()

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def add_text(self, text: str) -> None:
        pieces = self._pieces
        pieces[-1] += text
        if len(pieces[-1]) > CHUNK_CHARS and "\n" in pieces[-1][CHUNK_CHARS // 2 :]:
            # Close this piece at a line end; the rest starts the next one.
            cut = pieces[-1].rindex("\n") + 1
            pieces[-1:] = [pieces[-1][:cut], pieces[-1][cut:]]
        if self._ready:
            self._sync()

    def _sync(self) -> None:
        """Show the pieces: the last shown one may have grown, later ones are new."""
        if self._shown:
            self._shown[-1].update(Content(self._pieces[len(self._shown) - 1]))
        new = [
            Static(Content(piece), classes="reasoning-text")
            for piece in self._pieces[len(self._shown) :]
        ]
        if new:
            self._shown.extend(new)
            self.query_one(".reasoning-body", Vertical).mount_all(new)

    def finish(self) -> None:
        """The reasoning is over: fold it to its summary line."""
        if self._seconds is not None:
            return
        self._seconds = time.monotonic() - self._started
        self.remove_class("live")
        if self._ready:
            self._show_summary()

    def action_fold(self) -> None:
        super().action_fold()
        if self._ready and self._seconds is not None:
            self._show_summary()

    def _show_summary(self) -> None:
        tokens = estimate_tokens(self.text)
        title = self.query_one(".block-title", Static)
        title.update(
            Content.assemble(
                ("▾ " if self.has_class("open") else "▸ ", "$secondary"),
                (
                    f"Thought for {self._seconds or 0:.0f} s, ~{tokens:,} tokens",
                    "$text-muted italic",
                ),
            )
        )

    def copy_text(self) -> str:
        return self.text


class AnswerBlock(Markdown):
    """The model's visible answer as Markdown, set whole at most once a frame; each link shows
    its target, and a click asks before it opens one.

    ``Markdown.append`` (and ``MarkdownStream``, which uses it) garbles inline code that is split
    across two fragments (seen with Textual 8.2.8), so the full text is parsed each time.
    """

    can_focus = True
    BINDINGS = [Binding("c", "copy", "Copy", show=False)]

    def __init__(self, text: str) -> None:
        super().__init__(text, classes="answer", parser_factory=answer_parser, open_links=False)
        self.text = text
        self._ready = False

    def on_mount(self) -> None:
        # Markdown renders its initial text when mounted; text that came meanwhile follows.
        self._ready = True
        if self.text != self._markdown:
            self.update(self.text)

    def add_text(self, text: str) -> None:
        self.text += text
        if self._ready:
            self.update(self.text)
        else:
            self._initial_markdown = self.text

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify(f"copied {len(self.text):,} characters", timeout=2)

    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        """Not Textual's default (open any link at once): see
        :mod:`ponder.app.frontends.tui.links`."""
        event.stop()
        follow_link(self.app, event.href)


def diff_content(diff: str, width: int | None = None) -> Content:
    """A unified diff coloured with the theme: additions, removals, hunk headers. With a
    ``width``, a longer line goes on in rows of its own that start with its ``+``, ``-`` or
    space, so a wrapped change still reads as one."""
    parts: list[str | tuple[str, str]] = []
    for line in _rows(diff.rstrip("\n").split("\n"), width):
        if line.startswith(("+++", "---")):
            style = "$text-muted bold"
        elif line.startswith("+"):
            style = "$text-success on $success-muted"
        elif line.startswith("-"):
            style = "$text-error on $error-muted"
        elif line.startswith("@@"):
            style = "$accent"
        else:
            style = ""
        parts.append((line, style) if style else line)
        parts.append("\n")
    return Content.assemble(*parts[:-1])


def _rows(lines: list[str], width: int | None) -> list[str]:
    if not width or width < 8:
        return lines
    rows = []
    for line in lines:
        marker = line[:1] if line[:1] in "+- " and not line.startswith(("+++", "---")) else ""
        while len(line) > width:
            rows.append(line[:width])
            line = marker + line[width:]
        rows.append(line)
    return rows


class DiffBlock(Block):
    def __init__(self, title: str, diff: str) -> None:
        super().__init__(classes="diff")
        self.diff = diff
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield Static(diff_content(self.diff))

    def on_resize(self) -> None:
        """Wrap at the width there is, each row keeping its line's mark."""
        self.query_one(Static).update(diff_content(self.diff, self.content_size.width))

    def copy_text(self) -> str:
        return self.diff
