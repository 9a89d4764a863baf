"""The llama.cpp backend: a GGUF served in-process through llama-cpp-python.

llama-cpp-python's completion APIs detokenize without special tokens, which deletes ``<think>``
and every tool-call marker from K2's output, so this backend runs its own loop over
``Llama.generate`` token ids, detokenizes each with special tokens kept, and feeds the bytes to
the K2 parser. Each step's prompt is rendered with the model's own chat template; when it extends
the previous step's (the normal case inside a task), llama-cpp-python keeps the shared prefix in
the KV cache and only the new suffix is prefilled.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

from ponder.model.backend import BackendError, ConfigurationError, ContextOverflow
from ponder.model.chat_template import ChatTemplate
from ponder.model.deltas import Delta, Finished, ReasoningCut, StopReason, Usage
from ponder.model.gguf_file import read_gguf
from ponder.model.k2_parser import K2OutputParser
from ponder.model.kv_slots import DiskStore, KvSlots, shared_prefix
from ponder.model.llama_glue import (
    CallbackExceptions,
    build_problem,
    captured_log,
    logged_errors,
    overridden_tensors,
    placement_overrides,
)
from ponder.model.messages import Message, ToolSchema
from ponder.model.options import GenerationSettings, LlamaOptions
from ponder.model.placement import placement_problem, resolve_placement
from ponder.model.prompt_lookup import PromptLookup

KV_CACHE_TYPES = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
    "bf16": 30,
}


def _cache_type(name: str | None) -> int | None:
    if name is None:
        return None
    if name.lower() not in KV_CACHE_TYPES:
        raise ConfigurationError(
            f"unknown KV cache type {name!r}; use one of {', '.join(KV_CACHE_TYPES)}"
        )
    return KV_CACHE_TYPES[name.lower()]


class LlamaCppBackend:
    """A loaded GGUF. Not thread-safe: one conversation at a time."""

    def __init__(self, path: str | Path, options: LlamaOptions | None = None) -> None:
        from llama_cpp import Llama

        problem = build_problem()
        if problem is not None:  # refuse before loading: the crash would come after the load
            raise ConfigurationError(problem)
        self.options = options or LlamaOptions()
        self.path = Path(path).expanduser()
        self.model_file = read_gguf(self.path)
        if not self.model_file.has_tokenizer:
            raise ConfigurationError(
                f"{self.path} has no tokenizer (no tokenizer.ggml.model/tokens keys); ponder "
                "needs a GGUF converted with its tokenizer"
            )
        self.overrides = resolve_placement(self.model_file, self.options)
        kwargs: dict[str, Any] = {
            "model_path": str(self.path),
            "n_ctx": self.options.context_size,
            "n_gpu_layers": self.options.n_gpu_layers,
            "n_batch": self.options.n_batch,
            "n_ubatch": self.options.n_ubatch,
            "n_threads": self.options.threads,
            "use_mmap": self.options.mmap,
            "type_k": _cache_type(self.options.cache_type_k),
            "type_v": _cache_type(self.options.cache_type_v),
            "verbose": False,
        }
        if self.options.flash_attn is not None:
            kwargs["flash_attn"] = self.options.flash_attn
        with captured_log() as log, placement_overrides(self.overrides):
            try:
                self._llm = Llama(**kwargs)
            except (ValueError, RuntimeError) as exc:
                detail = "; ".join(line.strip() for line in log[-4:] if line.strip())
                raise ConfigurationError(
                    f"llama.cpp could not load {self.path}: {detail or exc}"
                ) from None
        self.load_log = log
        self.placed = overridden_tensors(log)
        """Tensor -> buffer type for each override the load log confirms."""
        problem = placement_problem(self.model_file, self.overrides, self.placed)
        if problem:
            self._llm.close()
            raise BackendError(f"{self.path.name}: {problem}")
        import llama_cpp

        self._is_eog = llama_cpp.llama_vocab_is_eog
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm._model.model)
        self._think_close = self.tokenize("</think>")
        # llama.cpp asks this between compute steps (prefill included); True aborts the decode.
        self._cancel: threading.Event | None = None
        self._signals = CallbackExceptions()
        self._abort = llama_cpp.ggml_abort_callback(
            lambda _data: (
                self._signals.pending is not None
                or (self._cancel is not None and self._cancel.is_set())
            )
        )
        llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx, self._abort, None)
        disk = None
        if self.options.kv_dir and self.options.kv_disk:
            disk = DiskStore(self._kv_folder(Path(self.options.kv_dir)), self.options.kv_disk)
        self.slots = KvSlots(self._llm, self.options.kv_slots_bytes, disk)
        self.drafted = (0, 0)
        """Guessed tokens so far, and how many of them the model kept."""
        embedded = self.model_file.chat_template
        self.template = (
            ChatTemplate(embedded, origin=f"the chat template in {self.path.name}")
            if embedded
            else ChatTemplate.for_architecture(self.model_file.architecture)
        )

    @property
    def name(self) -> str:
        return f"llamacpp:{self.path.name}"

    @property
    def context_size(self) -> int:
        return int(self._llm.n_ctx())

    @property
    def context_source(self) -> str:
        return "configured ([llama] context_size, -c)"

    def tokenize(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def _reusable_prefix(self, tokens: list[int]) -> int:
        """How many leading prompt tokens the KV cache holds (what llama-cpp-python reuses)."""
        cached = self._llm._input_ids
        shared = 0
        for old, new in zip(cached, tokens, strict=False):
            if old != new:
                break
            shared += 1
        return min(shared, len(tokens) - 1)

    def count_tokens(self, messages: Sequence[Message], tools: Sequence[ToolSchema]) -> int:
        return len(self.tokenize(self.template.render(messages, tools)))

    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSchema],
        settings: GenerationSettings,
        cancel: threading.Event | None = None,
    ) -> Iterator[Delta]:
        tokens = self.tokenize(self.template.render(messages, tools))
        context = self.context_size
        if len(tokens) >= context:
            raise ContextOverflow(
                f"the prompt is {len(tokens)} tokens but the context holds {context}; "
                "start a new session or load the model with a larger context"
            )
        limit = context - len(tokens)
        if settings.max_new_tokens is not None:
            limit = min(limit, settings.max_new_tokens)
        self.slots.prepare(tokens)
        cached = self._reusable_prefix(tokens)
        parser = K2OutputParser()
        reason: StopReason = "length"
        generated = reasoning = 0
        self._cancel = cancel
        started = time.perf_counter()
        first = started
        history = list(tokens)
        logged_errors()  # what an earlier step left, interrupts included

        lookup = PromptLookup(tokens) if self.options.prompt_lookup else None

        def generate() -> Generator[int, Any, None]:
            # Each call continues from ``history``; the KV cache already holds all but its end.
            return self._generate(history, settings, lookup)

        generation = generate()
        try:
            while True:
                try:
                    with self._signals.watching():
                        token = next(generation)
                except StopIteration:
                    break
                except RuntimeError as exc:  # llama_decode returns 2 when told to abort
                    self._signals.raise_pending()
                    if cancel is not None and cancel.is_set():
                        reason = "cancelled"
                        break
                    said = "; ".join(logged_errors())
                    raise BackendError(
                        f"llama.cpp failed while generating: {exc}"
                        + (f" (llama.cpp: {said})" if said else "")
                    ) from None
                self._signals.raise_pending()
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    break
                generated += 1
                history.append(token)
                if lookup is not None:
                    lookup.add(token)
                if generated == 1:
                    first = time.perf_counter()
                if self._is_eog(self._vocab, token):
                    reason = "stop"
                    break
                yield from parser.feed_bytes(self._llm.detokenize([token], special=True))
                if parser.done:
                    reason = "stop"
                    break
                if parser.in_reasoning:
                    reasoning += 1
                    budget = settings.max_reasoning_tokens
                    if budget is not None and reasoning >= budget:
                        # Close the reasoning for the model and let it go on from there.
                        generation.close()
                        history.extend(self._think_close)
                        if lookup is not None:
                            for closing in self._think_close:
                                lookup.add(closing)
                        yield ReasoningCut(reasoning)
                        yield from parser.feed("</think>")
                        generation = generate()
                if generated >= limit:
                    break
        finally:
            generation.close()
            self._cancel = None
        ended = time.perf_counter()
        yield from parser.close()
        yield Usage(
            prompt_tokens=len(tokens),
            cached_tokens=cached,
            completion_tokens=generated,
            prefill_tokens_per_s=(len(tokens) - cached) / (first - started)
            if first > started
            else None,
            decode_tokens_per_s=(generated - 1) / (ended - first) if generated > 1 else None,
        )
        yield Finished(reason)

    def _kv_folder(self, root: Path) -> Path:
        """Caches fit only the model and KV types that made them: one folder for each."""
        stat = self.path.stat()
        key = f"{self.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|"
        key += f"{self.options.cache_type_k}|{self.options.cache_type_v}"
        return root / hashlib.sha256(key.encode()).hexdigest()[:24]

    def _generate(
        self, history: list[int], settings: GenerationSettings, lookup: PromptLookup | None
    ) -> Generator[int, Any, None]:
        """Tokens sampled after ``history``, speculatively when ``lookup`` has a guess.

        Each step decodes the last sampled token together with a draft of guessed tokens,
        asking for logits at every position; then it samples position by position with the
        same sampler a plain decode uses, keeping the guesses while they are what it samples.
        Every emitted token is thus sampled from the model's own distribution given what
        precedes it (the same draws, in the same order, as without guessing); rejected guesses
        leave the KV cache at once.
        """
        llm = self._llm
        shared = shared_prefix(llm.input_ids[: llm.n_tokens].tolist(), history)
        reuse = min(shared, len(history) - 1)
        if reuse <= 0 or not llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
            reuse = 0
        llm.n_tokens = reuse
        llm.eval(history[reuse:])  # the new part of the prompt; logits for its last token
        sampler = llm._init_sampler(
            top_k=settings.top_k or 0,  # 0 turns top-k off
            top_p=settings.top_p,
            min_p=settings.min_p,
            temp=settings.temperature,
            repeat_penalty=1.0,
        )
        pending = sampler.sample(llm._ctx, -1)
        while True:
            yield pending
            draft = lookup.propose() if lookup is not None else []
            draft = draft[: max(0, llm.n_ctx() - llm.n_tokens - 1)]
            start = llm.n_tokens
            batch = [pending, *draft]
            llm._batch.set_batch(batch=batch, n_past=start, logits_all=True)
            began = time.perf_counter()
            llm._ctx.decode(llm._batch)
            llm.input_ids[start : start + len(batch)] = batch
            llm.n_tokens = start + len(batch)
            accepted = 0
            for position, guess in enumerate(draft):
                pending = sampler.sample(llm._ctx, position)
                if pending != guess:
                    llm._ctx.kv_cache_seq_rm(-1, start + 1 + accepted, -1)
                    llm.n_tokens = start + 1 + accepted
                    break
                accepted += 1
                yield pending
            else:
                pending = sampler.sample(llm._ctx, len(draft))
            if lookup is not None:
                lookup.taken(len(draft), accepted, time.perf_counter() - began)
                self.drafted = (self.drafted[0] + len(draft), self.drafted[1] + accepted)

    def close(self) -> None:
        self.slots.persist()
        self._llm.close()
