"""Speculative decoding from the prompt: on real weights, every token kept is the one the model
picks without guessing (to rounding); the drafts come from where the conversation repeats."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from ponder.model import prompt_lookup
from ponder.model.deltas import ContentDelta
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.messages import Message
from ponder.model.options import GenerationSettings, LlamaOptions
from ponder.model.prompt_lookup import PromptLookup

SOURCE = "".join(
    f"def handler_{i}(request):\n    return respond(request, code={200 + i})\n" for i in range(12)
)
EDIT = [
    Message(
        role="user",
        content=f"Here is app.py:\n```python\n{SOURCE}```\nWrite app.py again in full, exactly "
        "the same except that handler_7 returns code=404.",
    )
]


NEAR_TIE = 0.3
"""Logits this close are a tie to rounding: a batch of guesses is computed by other kernels than
one token at a time, so where the model's two best tokens are this close either may come out."""


def test_guessing_keeps_the_tokens_the_model_would_pick(
    gemma: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy, so each token must be the model's best. The run guesses through the real path
    (``stream``); then the same weights read its tokens back one at a time, as plain decoding
    would, and at each position the token taken must be the best there or tied with it (a
    bitwise match of whole texts is not a property any batched verifier has: a near tie can go
    either way, and from there the two texts part)."""
    # On this small model guessing is slower than plain decoding, so it would mostly rest; the
    # rule that decides that is tested below. Here it guesses at every chance, whatever the
    # clock says, so that most tokens come from checked guesses and the run does not depend on
    # how busy the machine is.
    monkeypatch.setattr(prompt_lookup, "REST_WHEN_SLOWER", 0)
    settings = GenerationSettings(temperature=0.0, top_k=1, max_new_tokens=96)
    guessing = LlamaCppBackend(gemma, LlamaOptions(context_size=4096, prompt_lookup=True))
    prompt = guessing.tokenize(guessing.template.render(EDIT, []))
    text = "".join(
        d.text for d in guessing.stream(EDIT, [], settings) if isinstance(d, ContentDelta)
    )
    llm = guessing._llm  # the KV cache holds the prompt and each token it emitted but the last
    emitted = llm.input_ids[len(prompt) : llm.n_tokens].tolist()
    kept = guessing.drafted[1]
    assert "code=404" in text  # the edit was made: a real answer, not noise
    assert kept > len(emitted) // 4  # guesses were made and taken: the speculative path ran

    llm.reset()  # read back without guessing: one decode per token, logits for each
    llm.eval(prompt)
    for position, token in enumerate(emitted):
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)
        )
        best = int(logits.argmax())
        assert token == best or logits[best] - logits[token] < NEAR_TIE, (
            f"token {position}: took {llm.detokenize([token])!r} ({logits[token]:.2f}) where the "
            f"model prefers {llm.detokenize([best])!r} ({logits[best]:.2f})"
        )
        llm.eval([token])
    guessing.close()


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
