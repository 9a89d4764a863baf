"""The blocks of the transcript: a user message, reasoning, an answer, a tool call, a diff."""

from __future__ import annotations

from collections.abc import Callable

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Log, Markdown, Static

from ponder.app.line import describe_call
from ponder.runtime.approvals import ApprovalAnswer, ApprovalRequest
from ponder.runtime.events import ToolCallFinished, ToolCallStarted


class UserBlock(Static):
    def __init__(self, text: str) -> None:
        super().__init__(Text(text), classes="user")


class ReasoningBlock(Static):
    """The model's reasoning for one step, growing as it streams."""

    def __init__(self) -> None:
        super().__init__("", classes="reasoning")
        self.border_title = "thinking"
        self.text = ""

    def add_text(self, text: str) -> None:
        self.text += text
        self.update(Text(self.text))


class AnswerBlock(Markdown):
    """The model's visible answer as Markdown, set whole at most once a frame.

    ``Markdown.append`` (and ``MarkdownStream``, which uses it) garbles inline code that is split
    across two fragments (seen with Textual 8.2.8), so the full text is parsed each time.
    """

    def __init__(self) -> None:
        super().__init__(classes="answer")
        self.text = ""

    def add_text(self, text: str) -> None:
        self.text += text
        self.update(self.text)


class ToolCard(Vertical):
    """One tool call: what was called, its live output, then how it ended.

    Output and the end can arrive in the same frame as the call itself, before the card's
    children exist, so they are kept until the card is mounted.
    """

    def __init__(self, event: ToolCallStarted) -> None:
        super().__init__(classes="tool")
        self.call_id = event.call_id
        self._header = Text.assemble(
            ("▶ ", "bold"), (f"{event.name} ", "bold"), describe_call(event.name, event.arguments)
        )
        self._pending: list[str] = []
        self._finished: ToolCallFinished | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._header, classes="tool-header")
        yield Log(max_lines=2000, classes="tool-output", auto_scroll=True)
        yield Static("running…", classes="tool-status")

    def on_mount(self) -> None:
        pending, self._pending = self._pending, []
        for text in pending:
            self.write(text)
        if self._finished is not None:
            self.finish(self._finished)

    def write(self, text: str) -> None:
        if not self.is_mounted:
            self._pending.append(text)
            return
        log = self.query_one(Log)
        log.display = True
        log.write(text)

    def finish(self, event: ToolCallFinished) -> None:
        if not self.is_mounted:
            self._finished = event
            return
        status = self.query_one(".tool-status", Static)
        if event.timed_out:
            detail = "timed out"
        elif event.exit_code is not None:
            detail = f"exit {event.exit_code}"
        else:
            detail = "done" if event.ok else event.result.splitlines()[0][:160]
        status.update(f"{'✓' if event.ok else '✗'} {detail} · {event.elapsed:.1f}s")
        self.add_class("ok" if event.ok else "failed")


class DiffBlock(Static):
    def __init__(self, path: str, diff: str) -> None:
        super().__init__(Syntax(diff.rstrip("\n"), "diff", theme="ansi_dark"), classes="diff")
        self.border_title = f"edited {path}"


class ApprovalCard(Vertical, can_focus=True):
    """A call waiting for an answer: y once, a always, n deny, m deny with a message."""

    BINDINGS = [
        ("y", "answer('once')", "Allow once"),
        ("a", "answer('always')", "Always allow"),
        ("n", "answer('deny')", "Deny"),
        ("m", "message", "Deny with a message"),
    ]

    def __init__(self, request: ApprovalRequest, respond: Callable[[ApprovalAnswer], None]) -> None:
        super().__init__(classes="approval")
        self.request = request
        self._respond = respond
        self.border_title = f"{request.tool} needs approval"

    def compose(self) -> ComposeResult:
        yield Static(Text(self.request.reason), classes="approval-reason")
        yield Static(Text(self.request.summary), classes="approval-summary")
        yield Static(
            f"[y] allow once   [a] always allow `{self.request.prefix}`   [n] deny   "
            "[m] deny with a message",
            classes="approval-keys",
        )

    def on_mount(self) -> None:
        self.focus()

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

    def _done(self, answer: ApprovalAnswer) -> None:
        self._respond(answer)
        labels = {"once": "allowed once", "always": "always allowed", "deny": "denied"}
        self.remove_children()
        self.mount(
            Static(f"{labels[answer.decision]}{': ' + answer.message if answer.message else ''}")
        )
        self.add_class("answered")
