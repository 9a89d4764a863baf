"""What a run used: tokens over all its steps, wall time, and what that cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.model.deltas import Usage
from ponder.runtime.events import RunFinished, RunUsage


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


def runs_together(runs: Sequence[RunFinished]) -> RunFinished:
    """The last of several runs of one task (``--output-schema``'s retries), counting the steps
    and usage of all of them."""
    last = runs[-1]
    used = [run.usage for run in runs if run.usage is not None]
    if not used:
        return last
    totals = UsageTotals()
    for usage in used:
        totals.add(usage)
    costs = [usage.cost_usd for usage in used]
    together = totals.report(sum(usage.wall_s for usage in used), None)
    if None not in costs:
        together = together.model_copy(update={"cost_usd": sum(c for c in costs if c is not None)})
    return last.model_copy(update={"steps": sum(run.steps for run in runs), "usage": together})
