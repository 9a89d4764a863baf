"""The transcript: the run's events become blocks (reasoning, answers, tool cards, diffs, notes).

It keeps the newest :attr:`Transcript.MAX_BLOCKS` blocks (the session file keeps everything),
places an approval's question above the call it asks about, and gives its text back as plain
text for ``--inline``'s scrollback.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widget import Widget

from ponder.app.frontends.tui.blocks import AnswerBlock, Block, DiffBlock, ReasoningBlock, TextBlock
from ponder.app.frontends.tui.cards import ApprovalCard, ToolCard
from ponder.app.wording.events import describe_note
from ponder.runtime.events import (
    ApprovalRequested,
    ApprovalResolved,
    ContentText,
    Event,
    FileEdited,
    ReasoningText,
    StepStarted,
    ToolCallFinished,
    ToolCallStarted,
    ToolOutput,
)
from ponder.sandbox.safe_text import safe_text


class Transcript(VerticalScroll):
    MAX_BLOCKS = 600

    def __init__(self) -> None:
        super().__init__(id="transcript")
        self._reasoning: ReasoningBlock | None = None
        self._answer: AnswerBlock | None = None
        self._cards: dict[str, ToolCard] = {}

    def add(self, widget: Widget) -> None:
        self.mount(widget)
        excess = len(self.children) - self.MAX_BLOCKS
        if excess > 0:
            for old in self.children[:excess]:
                old.remove()

    def note(self, text: str, error: bool = False) -> TextBlock:
        block = TextBlock(safe_text(text), classes="error" if error else "note")
        self.add(block)
        return block

    def ask(self, card: ApprovalCard) -> None:
        """The question goes above the call it asks about."""
        self.end_reasoning()
        call = self._cards.get(card.request.call_id)
        if call is not None and call.is_attached:
            self.mount(card, before=call)
        else:
            self.add(card)

    def end_reasoning(self) -> None:
        if self._reasoning is not None:
            self._reasoning.finish()

    def apply(self, event: Event) -> None:
        """Show an event (already made safe to display)."""
        if isinstance(event, StepStarted):
            self.end_reasoning()
            self._reasoning = self._answer = None
        elif isinstance(event, ReasoningText):
            if self._reasoning is None:
                self._reasoning = ReasoningBlock()
                self.add(self._reasoning)
            self._reasoning.add_text(event.text)
        elif isinstance(event, ContentText):
            self.end_reasoning()
            if self._answer is None:
                self._answer = AnswerBlock(event.text)
                self.add(self._answer)
            else:
                self._answer.add_text(event.text)
        elif isinstance(event, ToolCallStarted):
            self.end_reasoning()
            card = self._cards[event.call_id] = ToolCard(event)
            self.add(card)
        elif isinstance(event, ToolOutput):
            self._cards[event.call_id].write(event.text)
        elif isinstance(event, ApprovalRequested | ApprovalResolved):
            if event.call_id in self._cards:
                self._cards[event.call_id].waiting(isinstance(event, ApprovalRequested))
        elif isinstance(event, ToolCallFinished):
            self._cards.pop(event.call_id).finish(event)
        elif isinstance(event, FileEdited):
            self.add(DiffBlock(f"edited {event.path}", event.diff))
        elif (note := describe_note(event)) is not None:
            self.note(note)

    def run_ended(self) -> None:
        """Calls the run left unfinished stop spinning."""
        self.end_reasoning()
        for card in self._cards.values():
            card.remove_class("running")
        self._cards.clear()

    def spin(self, frame: int) -> None:
        for card in self._cards.values():
            card.spin(frame)

    def plain_text(self) -> str:
        """The transcript as plain text: what ``--inline`` leaves in the terminal's scrollback
        (the inline frame holds only the last screenful)."""
        parts = []
        for block in self.children:
            if isinstance(block, ReasoningBlock):
                continue  # folded in the TUI; the session file keeps it
            if isinstance(block, ToolCard):
                lines = block.copy_text().rstrip("\n").split("\n")
                parts.append("\n".join([f"▶ {lines[0]}", *lines[1:][-20:]]))
            elif isinstance(block, TextBlock) and block.has_class("user"):
                parts.append(f"› {block.text}")
            elif isinstance(block, AnswerBlock):
                parts.append(block.text)
            elif isinstance(block, Block):
                parts.append(block.copy_text())
        return safe_text("\n\n".join(p for p in parts if p.strip()))
