"""The test-time scaling knobs: how far one run may go, and the reason it stops when it cannot."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ponder.runtime.events import FinishReason


TIME_LIMIT_MAX = 10_000_000
"""Seconds (about 115 days): more than any task, less than what a timer can wait for."""


def _setting(**spec: object) -> dict[str, object]:
    return {"setting": spec}


@dataclass(frozen=True)
class Budgets:
    """Settings (``ponder.app.settings``): the config file's top-level keys of the same names,
    and the flags; each docstring is the setting's help. This module stays light for --help."""

    max_steps: int = field(default=300, metadata=_setting(ge=1, flags=["--max-steps"]))
    """Model steps (one generation and its tool calls) in one task."""
    max_reasoning_tokens: int | None = field(
        default=24_000, metadata=_setting(ge=1, flags=["--max-reasoning-tokens"])
    )
    """Reasoning tokens per step; past them a local model's reasoning is closed for it, a
    remote step is capped."""
    max_tokens: int | None = field(default=None, metadata=_setting(ge=1, flags=["--max-tokens"]))
    """Generated tokens over the whole task (unset: no limit)."""
    time_limit: float | None = field(
        default=None,
        metadata=_setting(gt=0, le=TIME_LIMIT_MAX, flags=["--time-limit"], metavar="SECONDS"),
    )
    """Seconds for the whole task (unset: no limit), enforced even in the middle of a
    generation or a command."""
    context_threshold: float = field(default=0.85, metadata=_setting(gt=0, le=1))
    """Share of the model's context a prompt may fill before older parts are shortened."""


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


def start_clock(seconds: float | None, time_up: Callable[[], None]) -> threading.Timer | None:
    """A run's wall clock: ``time_up`` is called once ``seconds`` have passed (None: no clock).
    Cancel it when the run ends."""
    if seconds is None:
        return None
    clock = threading.Timer(seconds, time_up)
    clock.daemon = True
    clock.start()
    return clock
