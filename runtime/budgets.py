"""The test-time scaling knobs: how far one run may go, and the reason it stops when it cannot."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ponder.runtime.events import FinishReason


@dataclass(frozen=True)
class Budgets:
    max_steps: int = 300
    reasoning_tokens_per_step: int | None = 24_000
    """Past this, a local model's reasoning is closed for it; a remote step is capped."""
    total_tokens: int | None = None
    """Generated tokens over the whole run (None: no limit)."""
    wall_clock_s: float | None = None
    """Seconds for the whole run (None: no limit)."""


class BudgetTracker:
    """Counts a run's use of its budgets; :meth:`exceeded` names the first one used up."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.started = time.monotonic()
        self.tokens = 0

    def add_tokens(self, generated: int) -> None:
        self.tokens += generated

    def tokens_left(self, step_limit: int | None) -> int | None:
        """What one step may generate: its own limit, within what the run's budget has left
        (a model that never stops must not run past the budget inside one step)."""
        if self.budgets.total_tokens is None:
            return step_limit
        left = max(1, self.budgets.total_tokens - self.tokens)
        return left if step_limit is None else min(step_limit, left)

    def exceeded(self, steps_done: int) -> FinishReason | None:
        budgets = self.budgets
        if steps_done >= budgets.max_steps:
            return "max_steps"
        if self.out_of_tokens:
            return "token_budget"
        if budgets.wall_clock_s is not None and self.elapsed >= budgets.wall_clock_s:
            return "time_limit"
        return None

    @property
    def out_of_tokens(self) -> bool:
        return self.budgets.total_tokens is not None and self.tokens >= self.budgets.total_tokens

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
