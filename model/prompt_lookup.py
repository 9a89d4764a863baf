"""Prompt-lookup drafts for speculative decoding: coding agents copy.

``str_replace`` repeats a file's text, ``create_file`` repeats what was read, a test's output is
quoted back. When the last few tokens appeared earlier in the conversation, the tokens that
followed them then are a good guess for what comes next; the model checks the guess in one
batched decode and keeps what it would have sampled anyway (see ``LlamaCppBackend``), so the
output is the model's own. The draft length adapts: it doubles while guesses are taken whole,
shrinks to what was taken, and after guesses that miss outright it stops guessing for a while
(free text pays almost nothing). Acceptance is not the whole story: checking a guess costs a
batch with logits at every position, which on a small model with a large vocabulary costs more
than the guess saves; so the time per emitted token is measured both ways, and while guessing
is slower than not guessing, it rests.
"""

from __future__ import annotations

NGRAMS = (4, 3, 2)
"""Tail lengths tried, longest first."""
MAX_DRAFT = 8
START_DRAFT = 4
REST_AFTER_MISS = 16
"""Tokens generated without guessing after a guess that missed at its first token."""
REST_WHEN_SLOWER = 128
"""Tokens generated without guessing once guessing has proved slower than not; doubled each
time it proves so again, so a model where guessing never pays stops paying for the probes."""
SMOOTHING = 0.2


class PromptLookup:
    """The conversation's tokens, indexed by their n-grams, and the current draft length."""

    def __init__(self, tokens: list[int]) -> None:
        self.tokens: list[int] = []
        self.ends: dict[tuple[int, ...], int] = {}
        """n-gram -> where its latest occurrence (not the current tail) ends."""
        self.length = START_DRAFT
        self.rest = 0
        self.proposed = 0
        self.accepted = 0
        self.plain_s: float | None = None
        """Seconds per token without a guess (smoothed)."""
        self.guessing_s: float | None = None
        """Seconds per emitted token with a guess (smoothed)."""
        self.rest_when_slower = REST_WHEN_SLOWER
        for token in tokens:
            self.add(token)

    def add(self, token: int) -> None:
        # The n-grams ending at the token before this one are indexed now, one step late, so
        # the tail's own n-grams are never their own match.
        tokens = self.tokens
        end = len(tokens)
        for n in NGRAMS:
            if end >= n:
                self.ends[tuple(tokens[end - n : end])] = end
        tokens.append(token)

    def propose(self) -> list[int]:
        if self.rest > 0:
            self.rest -= 1
            return []
        tokens = self.tokens
        for n in NGRAMS:
            if len(tokens) > n:
                end = self.ends.get(tuple(tokens[-n:]))
                if end is not None:
                    return tokens[end : end + self.length]
        return []

    def taken(self, proposed: int, accepted: int, seconds: float) -> None:
        """How the last decode fared (``seconds`` for it): the length follows."""
        if proposed == 0:
            self.plain_s = _smooth(self.plain_s, seconds)
            return
        self.guessing_s = _smooth(self.guessing_s, seconds / (accepted + 1))
        if self.plain_s is not None and self.guessing_s > self.plain_s:
            self.rest = self.rest_when_slower
            self.rest_when_slower *= 2
            self.guessing_s = None  # measured afresh after the rest: the text may change
        elif self.plain_s is not None:
            self.rest_when_slower = REST_WHEN_SLOWER
        self.proposed += proposed
        self.accepted += accepted
        if accepted == proposed:
            self.length = min(MAX_DRAFT, self.length * 2)
        elif accepted == 0:
            self.length = max(1, self.length // 2)
            self.rest = REST_AFTER_MISS
        else:
            self.length = max(1, accepted + 1)


def _smooth(old: float | None, new: float) -> float:
    return new if old is None else old + SMOOTHING * (new - old)
