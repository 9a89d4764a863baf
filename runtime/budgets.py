"""The test-time scaling knobs: how far one run may go, and the reason it stops when it cannot."""

from __future__ import annotations

from dataclasses import dataclass

from ponder.runtime.events import FinishReason


@dataclass(frozen=True)
class Budgets:
    """The names are the configuration's and the flags' (``--max-steps`` is ``max_steps``)."""

    max_steps: int = 300
    """Model steps (one generation and its tool calls) in one task."""
    max_reasoning_tokens: int | None = 24_000
    """Reasoning tokens per step; past them a local model's reasoning is closed for it, a
    remote step is capped."""
    max_tokens: int | None = None
    """Generated tokens over the whole task (None: no limit)."""
    time_limit: float | None = None
    """Seconds for the whole task (None: no limit); the agent's clock enforces it, even in the
    middle of a generation or a command."""


class BudgetTracker:
    """Counts a run's use of its budgets; :meth:`exceeded` names the first one used up."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.tokens = 0

    def add_tokens(self, generated: int) -> None:
        self.tokens += generated

    def tokens_left(self, step_limit: int | None) -> int | None:
        """What one step may generate: its own limit, within what the run's budget has left
        (a model that never stops must not run past the budget inside one step)."""
        if self.budgets.max_tokens is None:
            return step_limit
        left = max(1, self.budgets.max_tokens - self.tokens)
        return left if step_limit is None else min(step_limit, left)

    def exceeded(self, steps_done: int) -> FinishReason | None:
        """The step or token budget used up, between steps (the time limit is the clock's)."""
        if steps_done >= self.budgets.max_steps:
            return "max_steps"
        return "token_budget" if self.out_of_tokens else None

    @property
    def out_of_tokens(self) -> bool:
        return self.budgets.max_tokens is not None and self.tokens >= self.budgets.max_tokens
