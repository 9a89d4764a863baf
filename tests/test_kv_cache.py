"""KV caches that outlive the process: a session's cache is written when its model is closed and
restored by the next process whose prompt starts the same way, with the same output as a fresh
prefill (real weights), within the disk cap."""

from __future__ import annotations

from pathlib import Path

from ponder.model.deltas import ContentDelta, Delta, ReasoningDelta, Usage
from ponder.model.kv_slots import DiskStore, Saved
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.messages import Message
from ponder.model.options import GenerationSettings, LlamaOptions

GREEDY = GenerationSettings(temperature=0.0, top_k=1, max_new_tokens=24)
TALK = [
    Message(role="system", content="You are a careful assistant. " * 10),
    Message(role="user", content="Name three rivers of Europe and say one thing about each."),
]


def step(backend: LlamaCppBackend, messages: list[Message]) -> tuple[str, Usage]:
    deltas: list[Delta] = list(backend.stream(messages, [], GREEDY))
    text = "".join(d.text for d in deltas if isinstance(d, ReasoningDelta | ContentDelta))
    (usage,) = [d for d in deltas if isinstance(d, Usage)]
    return text, usage


def test_a_resumed_conversation_restores_its_cache_and_answers_the_same(
    gemma: Path, tmp_path: Path
) -> None:
    kept = LlamaOptions(context_size=4096, kv_dir=str(tmp_path / "kv"))
    first = LlamaCppBackend(gemma, kept)
    answer, _ = step(first, TALK)
    first.close()  # the session ends: its cache goes to disk
    follow = [
        *TALK,
        Message(role="assistant", content=answer),
        Message(role="user", content="Why?"),
    ]

    resumed = LlamaCppBackend(gemma, kept)  # a new process, as far as the cache knows
    again, usage = step(resumed, follow)
    resumed.close()
    fresh = LlamaCppBackend(gemma, LlamaOptions(context_size=4096))
    expected, fresh_usage = step(fresh, follow)
    fresh.close()
    assert fresh_usage.cached_tokens == 0
    assert usage.cached_tokens > usage.prompt_tokens // 2  # most of it came from disk
    assert again == expected  # greedy: a restored cache is the cache a prefill makes


def test_the_disk_keeps_within_its_cap_newest_first(tmp_path: Path) -> None:
    store = DiskStore(tmp_path, max_bytes=3000)  # a file: 8 + 400 + 1000 bytes
    for number in range(4):
        store.put(Saved(tuple(range(number, number + 100)), bytes([number]) * 1000))
    kept = sorted(tokens[0] for tokens in DiskStore(tmp_path, 3000).index().values())
    assert kept == [2, 3]  # the two newest fit; reading the folder again finds them
    found = store.best([*range(3, 103), 7, 7])
    assert found is not None
    assert found[1] == 100
    loaded = store.load(found[0])
    assert loaded is not None
    assert loaded.data == bytes([3]) * 1000
