"""What a run used: tokens over all its steps, wall time, and what that cost."""

from __future__ import annotations

from dataclasses import dataclass

from ponder.model.deltas import Usage
from ponder.runtime.events import RunUsage


@dataclass(frozen=True)
class Prices:
    """US dollars per million tokens (from the config's per-model table)."""

    input: float
    output: float
    cached_input: float | None = None
    """Unset: cached prompt tokens cost the same as the others."""


@dataclass
class UsageTotals:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    def add(self, usage: Usage | RunUsage) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.cached_tokens += usage.cached_tokens
        self.completion_tokens += usage.completion_tokens
        self.estimated |= usage.estimated

    def report(self, wall_s: float, prices: Prices | None) -> RunUsage:
        cost = None
        if prices is not None:
            cached_price = prices.input if prices.cached_input is None else prices.cached_input
            fresh = self.prompt_tokens - self.cached_tokens
            dollars = (
                fresh * prices.input
                + self.cached_tokens * cached_price
                + self.completion_tokens * prices.output
            )
            cost = dollars / 1_000_000
        return RunUsage(
            prompt_tokens=self.prompt_tokens,
            cached_tokens=self.cached_tokens,
            completion_tokens=self.completion_tokens,
            wall_s=round(wall_s, 3),
            cost_usd=cost,
            estimated=self.estimated,
        )
