"""Noticing a model that goes round in circles: the same call again and again, or the same
reasoning over again. First it is told (a nudge in the tool result); if it goes on, the run
stops with reason ``loop``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from ponder.model.deltas import ParsedToolCall
from ponder.runtime.events import LoopDetected
from ponder.runtime.tools.base import ToolOutcome

Kind = Literal["repeated_call", "repeated_reasoning"]
Action = Literal["nudge", "stop"]

NUDGES = {
    "repeated_call": (
        "[ponder: you have made this same call {n} times in a row. Its result will not change. "
        "Step back, reconsider what you know, and try a different approach.]"
    ),
    "repeated_reasoning": (
        "[ponder: your reasoning has repeated itself for {n} steps. Step back, reconsider what "
        "you know, and try a different approach.]"
    ),
}


@dataclass(frozen=True)
class LoopGuardSettings:
    repeats_to_nudge: int = 3
    """The same call (or near-identical reasoning) this many steps in a row gets a nudge."""
    repeats_to_stop: int = 5
    """... and this many ends the run."""
    similarity: float = 0.9
    """Reasoning this similar (word 3-gram overlap) counts as the same."""


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + 3]) for i in range(max(1, len(words) - 2))}


def _similar(a: set[tuple[str, ...]], b: set[tuple[str, ...]], threshold: float) -> bool:
    if not a or not b:
        return False
    return len(a & b) / len(a | b) >= threshold


class LoopGuard:
    def __init__(self, settings: LoopGuardSettings | None = None) -> None:
        self.settings = settings or LoopGuardSettings()
        self._last_calls: str | None = None
        self._call_repeats = 0
        self._last_reasoning: set[tuple[str, ...]] = set()
        self._reasoning_repeats = 0

    def observe(
        self, reasoning: str, calls: list[tuple[str, dict[str, Any] | None, str]]
    ) -> tuple[Kind, int, Action] | None:
        """Look at one step (its reasoning and its (name, arguments, raw) calls)."""
        signature = json.dumps(
            [(name, args if args is not None else raw) for name, args, raw in calls],
            sort_keys=True,
        )
        self._call_repeats = self._call_repeats + 1 if signature == self._last_calls else 1
        self._last_calls = signature
        shingles = _shingles(reasoning)
        same = _similar(shingles, self._last_reasoning, self.settings.similarity)
        self._reasoning_repeats = self._reasoning_repeats + 1 if same else 1
        self._last_reasoning = shingles
        checks: list[tuple[Kind, int]] = [
            ("repeated_call", self._call_repeats if calls else 0),
            ("repeated_reasoning", self._reasoning_repeats if reasoning.strip() else 0),
        ]
        for kind, repeats in checks:
            if repeats >= self.settings.repeats_to_stop:
                return kind, repeats, "stop"
            if repeats == self.settings.repeats_to_nudge:
                return kind, repeats, "nudge"
        return None

    def judge(
        self, step: int, reasoning: str, calls: list[ParsedToolCall], outcomes: list[ToolOutcome]
    ) -> LoopDetected | None:
        """Look at one step; on a nudge its text is added to the step's last tool result
        (``outcomes`` is changed in place). What was seen, for the run to send."""
        if not calls or not outcomes:
            return None
        seen = self.observe(reasoning, [(c.name, c.arguments, c.raw_arguments) for c in calls])
        if seen is None:
            return None
        kind, repeats, action = seen
        if action == "nudge":
            last = outcomes[-1]
            outcomes[-1] = replace(last, text=f"{last.text}\n\n{NUDGES[kind].format(n=repeats)}")
        return LoopDetected(step=step, kind=kind, repeats=repeats, action=action)
