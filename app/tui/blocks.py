"""The blocks of the transcript: a user message, reasoning, an answer, a tool call, a diff, an
approval and notes.

Every block can take the focus (Tab and shift+Tab walk the transcript); Enter opens or closes
what a block folds away, and ``c`` copies the block's text to the clipboard (OSC 52).
Colours come from theme variables only, so /theme repaints everything.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Input, Log, Markdown, Static

from ponder.app.line import describe_call, describe_ending
from ponder.model.backend import estimate_tokens
from ponder.runtime.approvals import ApprovalAnswer
from ponder.runtime.events import ApprovalRequested, ToolCallFinished, ToolCallStarted

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
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
    """The model's visible answer as Markdown, set whole at most once a frame.

    ``Markdown.append`` (and ``MarkdownStream``, which uses it) garbles inline code that is split
    across two fragments (seen with Textual 8.2.8), so the full text is parsed each time.
    """

    can_focus = True
    BINDINGS = [Binding("c", "copy", "Copy", show=False)]

    def __init__(self, text: str) -> None:
        super().__init__(text, classes="answer")
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


class ToolCard(Block):
    """One tool call: what was called, its live output, then how it ended.

    Output and the end can arrive in the same frame as the call itself, before the card's
    children exist, so they are kept until the card is mounted. The output log is capped;
    Enter shows all of what it holds.
    """

    def __init__(self, event: ToolCallStarted) -> None:
        super().__init__(classes="tool")
        self.call_id = event.call_id
        self.summary = describe_call(event.name, event.arguments)
        self._name = event.name
        self._pending: list[str] = []
        self._finished: ToolCallFinished | None = None
        self._output: list[str] = []
        self._ready = False
        self._waiting = False
        self._column = 0

    def compose(self) -> ComposeResult:
        yield Static(self._header(SPINNER[0]), classes="block-title")
        yield Log(max_lines=2000, classes="tool-output", auto_scroll=True)
        yield Static(Content.styled(self._state(), "$text-muted"), classes="tool-status")

    def _state(self) -> str:
        return "waiting for your approval" if self._waiting else "running…"

    def _header(self, mark: str) -> Content:
        return Content.assemble(
            (f"{mark} ", "$primary bold"), (f"{self._name} ", "bold"), self.summary
        )

    def on_mount(self) -> None:
        self._ready = True
        pending, self._pending = self._pending, []
        for text in pending:
            self.write(text)
        if self._finished is not None:
            self.finish(self._finished)

    @property
    def running(self) -> bool:
        return self._finished is None

    def waiting(self, for_approval: bool) -> None:
        """While its approval is asked, the call is not running: no spinner, and it says so."""
        self._waiting = for_approval
        if self._ready and self.running:
            status = Content.styled(self._state(), "$text-muted")
            self.query_one(".tool-status", Static).update(status)

    def spin(self, frame: int) -> None:
        if self._ready and self.running and not self._waiting:
            self.query_one(".block-title", Static).update(self._header(SPINNER[frame % 10]))

    def write(self, text: str) -> None:
        if not self._ready:
            self._pending.append(text)
            return
        self._output.append(text)
        log = self.query_one(Log)
        log.display = True
        log.write(self._wrapped(text, log.scrollable_content_region.width))

    def _wrapped(self, text: str, width: int) -> str:
        """``text`` with line breaks where the log's width ends (a Log clips, it does not wrap);
        the column is carried over, as output comes in pieces."""
        if width < 8:
            return text
        out = []
        for piece in re.split(r"(\n)", text):
            if piece == "\n":
                self._column = 0
                out.append(piece)
                continue
            while self._column + len(piece) > width:
                take = width - self._column
                out.append(piece[:take] + "\n")
                piece, self._column = piece[take:], 0
            out.append(piece)
            self._column += len(piece)
        return "".join(out)

    def finish(self, event: ToolCallFinished) -> None:
        self._finished = event
        if not self._ready:
            return
        detail = describe_ending(event)
        if detail is None:
            detail = "done" if event.ok else event.result.splitlines()[0][:160]
        mark, style = ("✓", "$success") if event.ok else ("✗", "$error")
        self.query_one(".block-title", Static).update(self._header("▶"))
        self.query_one(".tool-status", Static).update(
            Content.assemble(
                (f"{mark} {detail}", style),
                (f" · {event.elapsed_s:.1f}s", "$text-muted"),
                (f"\n{event.notice}" if event.notice else "", "$warning"),
            )
        )
        self.add_class("ok" if event.ok else "failed")

    def copy_text(self) -> str:
        return f"{self.summary}\n{''.join(self._output)}"


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


class ApprovalCard(Vertical, can_focus=True):
    """A call waiting for an answer: y once, a always, n deny, m deny with a message."""

    BINDINGS = [
        ("y", "answer('once')", "Allow once"),
        ("a", "answer('always')", "Always allow"),
        ("n", "answer('deny')", "Deny"),
        ("m", "message", "Deny with a message"),
    ]

    def __init__(
        self,
        request: ApprovalRequested,
        reply: Future[ApprovalAnswer],
        answered: Callable[[], None],
    ) -> None:
        """``reply`` is completed with the person's answer; ``answered`` is told after."""
        super().__init__(classes="approval")
        self.request = request
        self._reply = reply
        self._on_answered = answered
        self.border_title = f"{request.name} needs approval"

    def compose(self) -> ComposeResult:
        yield Static(Content(self.request.reason), classes="approval-reason")
        summary = self.request.summary
        yield Static(
            diff_content(summary) if summary.startswith("---") else Content(summary),
            classes="approval-summary",
        )
        yield Static(
            Content.assemble(
                ("[y]", "$warning bold"),
                " allow once   ",
                ("[a]", "$warning bold"),
                f" always allow `{self.request.prefix}`   ",
                ("[n]", "$warning bold"),
                " deny   ",
                ("[m]", "$warning bold"),
                " deny with a message",
            ),
            classes="approval-keys",
        )

    def on_mount(self) -> None:
        self.focus()
        self._reply.add_done_callback(self._withdrawn)

    def _withdrawn(self, reply: Future[ApprovalAnswer]) -> None:
        """The run stopped asking (interrupted): the card says so instead of waiting on."""
        if not reply.cancelled():
            return
        try:
            self.app.call_from_thread(self._done, None)
        except RuntimeError:  # already on the app's thread (it was withdrawn before mounting)
            self._done(None)

    def action_answer(self, decision: str) -> None:
        if decision in ("once", "always", "deny"):
            self._done(ApprovalAnswer(decision))  # type: ignore[arg-type]

    def action_message(self) -> None:
        field = Input(placeholder="Tell the model why (Enter sends)", classes="approval-message")
        self.mount(field)
        field.focus()

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        self._done(ApprovalAnswer("deny", message.value.strip() or None))

    def _done(self, answer: ApprovalAnswer | None) -> None:
        """Show the answer (None: the run stopped asking) and hand it to the run."""
        if self.has_class("answered"):
            return
        shown = "no longer asked: the run was interrupted"
        if answer is not None:
            try:
                self._reply.set_result(answer)
                labels = {"once": "allowed once", "always": "always allowed", "deny": "denied"}
                shown = labels[answer.decision] + (f": {answer.message}" if answer.message else "")
            except InvalidStateError:  # the run was interrupted while it asked
                pass
        self._on_answered()
        self.remove_children()
        self.mount(Static(shown))
        self.add_class("answered")
