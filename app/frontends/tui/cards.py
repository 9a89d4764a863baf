"""The cards of the transcript: a tool call with its live output and ending, and an approval
waiting for its answer."""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Input, Log, Static

from ponder.app.frontends.tui.blocks import Block, diff_content
from ponder.app.wording.events import describe_ending
from ponder.runtime.approvals import ApprovalAnswer
from ponder.runtime.events import ApprovalRequested, ToolCallFinished, ToolCallStarted

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class ToolCard(Block):
    """One tool call: what was called, its live output, then how it ended.

    Output and the end can arrive in the same frame as the call itself, before the card's
    children exist, so they are kept until the card is mounted. The output log is capped;
    Enter shows all of what it holds.
    """

    def __init__(self, event: ToolCallStarted) -> None:
        super().__init__(classes="tool")
        self.call_id = event.call_id
        self.summary = event.summary
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
        mark, style = ("✓", "$success") if event.ok else ("✗", "$error")
        self.query_one(".block-title", Static).update(self._header("▶"))
        self.query_one(".tool-status", Static).update(
            Content.assemble(
                (f"{mark} {_ending(event)}", style),
                (f" · {event.elapsed_s:.1f}s", "$text-muted"),
                (f"\n{event.notice}" if event.notice else "", "$warning"),
            )
        )
        self.add_class("ok" if event.ok else "failed")

    def copy_text(self) -> str:
        """The call as text: its name and summary, its output, and how it ended."""
        text = f"{self._name} {self.summary}\n{''.join(self._output)}"
        done = self._finished
        if done is not None:
            mark = "✓" if done.ok else "✗"
            text += f"\n{mark} {_ending(done)} · {done.elapsed_s:.1f}s"
        return text


def _ending(event: ToolCallFinished) -> str:
    """How a call ended, in a few words (an exit code, a timeout, or what went wrong)."""
    detail = describe_ending(event)
    if detail is None:
        detail = "done" if event.ok else event.result.splitlines()[0][:160]
    return detail


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
        yield Static(classes="approval-answer")  # shown, alone, once answered

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
        if self.has_class("answered"):
            return
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
        # One update and one class: no frame shows the card emptied (as removing and mounting did).
        self.query_one(".approval-answer", Static).update(Content(shown))
        self.add_class("answered")
        self.query(".approval-message").remove()  # hidden already; it must not keep the focus
