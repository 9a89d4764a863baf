"""What a run is given: budgets, sampling, context and loop-guard settings, its system prompt."""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.model.options import GenerationSettings
from ponder.runtime.budgets import Budgets
from ponder.runtime.context import ContextSettings
from ponder.runtime.loop_guard import LoopGuardSettings
from ponder.runtime.usage import Prices


def system_prompt(workdir: str) -> str:
    return (
        "You are ponder, a coding agent. You work in a sandboxed Linux environment where the "
        f"user's repository is at {workdir} (your working directory). Every tool runs there."
        "\n\nWork like a careful engineer: look at the code before changing it, reproduce a "
        "problem before fixing it, make the smallest change that solves it, and run the tests to "
        "check. When the task is done, answer with a short summary of what you changed and why, "
        "without calling a tool."
    )


@dataclass(frozen=True)
class AgentSettings:
    budgets: Budgets = field(default_factory=Budgets)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    loop_guard: LoopGuardSettings = field(default_factory=LoopGuardSettings)
    system_prompt: str | None = None
    """None: :func:`system_prompt` for the sandbox's workspace."""
    instructions: str = ""
    """The repository's instructions (AGENTS.md), added to the system prompt."""
    prices: Prices | None = None
    """The model's prices, for the cost in a run's usage."""
