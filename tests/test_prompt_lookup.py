"""Speculative decoding from the prompt: the model's output is exactly what it is without it,
on real weights; the drafts come from where the conversation repeats itself."""

from __future__ import annotations

from pathlib import Path

from ponder.model.deltas import ContentDelta, ReasoningDelta
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.messages import Message
from ponder.model.options import GenerationSettings, LlamaOptions
from ponder.model.prompt_lookup import PromptLookup

SOURCE = "".join(
    f"def handler_{i}(request):\n    return respond(request, code={200 + i})\n" for i in range(30)
)
EDIT = [
    Message(
        role="user",
        content=f"Here is app.py:\n```python\n{SOURCE}```\nWrite app.py again in full, exactly "
        "the same except that handler_7 returns code=404.",
    )
]


def generate(gemma: Path, lookup: bool, settings: GenerationSettings) -> tuple[str, int]:
    backend = LlamaCppBackend(gemma, LlamaOptions(context_size=4096, prompt_lookup=lookup))
    backend._llm.set_seed(1234)  # the same draws on both sides
    deltas = list(backend.stream(EDIT, [], settings))
    backend.close()
    text = "".join(d.text for d in deltas if isinstance(d, ReasoningDelta | ContentDelta))
    return text, backend.drafted[1]


def test_guessing_changes_nothing_the_model_writes(gemma: Path) -> None:
    """Greedy, so the comparison is token for token. (Sampling draws each token from the same
    distribution too, but a draw near a boundary can land differently when the logits come from
    a batch instead of a single decode, as with llama.cpp's own batches.)"""
    settings = GenerationSettings(temperature=0.0, top_k=1, max_new_tokens=160)
    plain, _ = generate(gemma, False, settings)
    guessed, kept = generate(gemma, True, settings)
    assert guessed == plain
    assert kept > 0  # guesses were made and taken: the speculative path ran


def test_drafts_follow_the_last_repeat_and_back_off() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 1, 2])
    assert lookup.propose() == [3, 4, 5, 9]  # what followed "1 2" before
    lookup.taken(4, 4, 0.01)
    assert lookup.length == 8  # taken whole: guess further
    lookup.taken(8, 0, 0.01)
    assert lookup.propose() == []  # a miss at the first token: rest a while
    fresh = PromptLookup([7, 8, 9])
    fresh.taken(0, 0, 0.01)  # a plain token takes 10 ms
    fresh.taken(4, 1, 0.05)  # a guess costs 25 ms per token it gave: slower
    assert fresh.propose() == []
