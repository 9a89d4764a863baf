"""The one connection between a run and whoever watches it.

:meth:`~ponder.runtime.loop.Agent.run` takes a :class:`RunPort` for the length of one task:
every event of the run goes out through :meth:`RunPort.event`, and every approval request goes
out through :meth:`RunPort.approve` and comes back as a reply, a future the frontend completes
when it has the answer (a person pressing a key, or at once for a policy). The run waits for
the reply and stays interruptible meanwhile. Frontends (the TUI, line mode, headless runs, the
batch runner) implement the port; nothing reaches into the agent from outside a run.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from ponder.runtime.approvals import ApprovalAnswer, Decision
from ponder.runtime.events import ApprovalRequested, Event


class RunPort(Protocol):
    def event(self, event: Event) -> None:
        """Take one event (called on the run's thread, in order)."""
        ...

    def approve(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        """Ask for a decision; the reply may come later, from another thread."""
        ...


def answered(answer: ApprovalAnswer) -> Future[ApprovalAnswer]:
    """A reply that is already there."""
    future: Future[ApprovalAnswer] = Future()
    future.set_result(answer)
    return future


NOBODY = "This action needs approval, and this run has nobody to give it."


def policy_answer(decision: Decision) -> ApprovalAnswer:
    """What a run without a person answers (``--approve-unattended``)."""
    return ApprovalAnswer(decision, NOBODY if decision == "deny" else None, by="policy")


@dataclass
class Unattended:
    """A port with nobody to ask: events go to ``sink``, approvals get the same decision."""

    sink: Callable[[Event], None]
    decision: Decision = "deny"

    def event(self, event: Event) -> None:
        self.sink(event)

    def approve(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        return answered(policy_answer(self.decision))
