"""Which x86 instruction set extensions really run on this machine, and the llama.cpp build
that uses exactly those.

``/proc/cpuinfo`` is not evidence: a cloud VM can report ``amx_tile`` and still kill the first
thread that runs ``tilezero`` (llama.cpp compiled with ``-march=native`` picks AMX for every
K-quant tensor of a real model and dies with SIGILL). So each extension llama.cpp can use is
probed: a tiny C program runs one of its instructions on the main thread and on four more
threads at once (AMX after asking the kernel for tile data, as llama.cpp does), in a process
of its own; an extension counts only if that program exits cleanly. The results map to
llama.cpp's CMake options with ``GGML_NATIVE=OFF``.

Standard library only, so ``install.sh`` runs it with any Python before ponder is installed:
``python3 model/cpu_features.py --cmake-args``. Results are cached by CPU (model name and
flags), so a venv moved to another CPU is probed again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

THREADS = 4


@dataclass(frozen=True)
class Probe:
    feature: str
    """The name llama.cpp's system info uses (``AVX512``, ``AMX_INT8``)."""
    option: str
    """The CMake option (``GGML_AVX512``)."""
    cflags: tuple[str, ...]
    body: str
    """C statements that run the extension's instructions (``volatile`` keeps them)."""
    needs: tuple[str, ...] = ()
    """Features that must work first (AVX512_VNNI needs AVX512)."""


_AMX_CONFIG = """
    struct { unsigned char palette, start; unsigned char pad[14]; unsigned short colsb[16];
             unsigned char rows[16]; } __attribute__((aligned(64))) cfg = {0};
    static unsigned char a[16 * 64] __attribute__((aligned(64)));
    static int c[16 * 16] __attribute__((aligned(64)));
    cfg.palette = 1;
    for (int t = 0; t < 3; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    _tile_loadconfig(&cfg);
    _tile_zero(0); _tile_loadd(1, a, 64); _tile_loadd(2, a, 64);
"""

PROBES = (
    Probe("AVX", "GGML_AVX", ("-mavx",),
          "volatile __m256 x = _mm256_set1_ps(1.0f); x = _mm256_add_ps(x, x);"),
    Probe("AVX2", "GGML_AVX2", ("-mavx2",),
          "volatile __m256i x = _mm256_set1_epi32(1); x = _mm256_add_epi32(x, x);"),
    Probe("FMA", "GGML_FMA", ("-mfma",),
          "volatile __m256 x = _mm256_set1_ps(1.0f); x = _mm256_fmadd_ps(x, x, x);"),
    Probe("F16C", "GGML_F16C", ("-mf16c",),
          "volatile __m128i h = _mm_set1_epi16(15360); volatile __m256 x = _mm256_cvtph_ps(h);"),
    Probe("BMI2", "GGML_BMI2", ("-mbmi2",),
          "volatile unsigned long long x = 5; x = _pdep_u64(x, 0xF0F0ULL);"),
    Probe("AVX_VNNI", "GGML_AVX_VNNI", ("-mavxvnni",),
          "volatile __m256i x = _mm256_set1_epi32(1); x = _mm256_dpbusd_avx_epi32(x, x, x);"),
    Probe("AVX512", "GGML_AVX512",
          ("-mavx512f", "-mavx512cd", "-mavx512vl", "-mavx512dq", "-mavx512bw"),
          "volatile __m512 f = _mm512_set1_ps(1.0f); f = _mm512_add_ps(f, f);"
          " volatile __m512i b = _mm512_set1_epi8(1); b = _mm512_add_epi8(b, b);"
          " volatile __m512i d = _mm512_set1_epi32(3); d = _mm512_conflict_epi32(d);"
          " volatile __m512 q = _mm512_and_ps(f, f);"
          " volatile __m256 v = _mm256_set1_ps(2.0f); v = _mm256_mask_add_ps(v, 3, v, v);"),
    Probe("AVX512_VBMI", "GGML_AVX512_VBMI", ("-mavx512f", "-mavx512vbmi"),
          "volatile __m512i x = _mm512_set1_epi8(1); x = _mm512_permutexvar_epi8(x, x);",
          needs=("AVX512",)),
    Probe("AVX512_VNNI", "GGML_AVX512_VNNI", ("-mavx512f", "-mavx512vnni"),
          "volatile __m512i x = _mm512_set1_epi32(1); x = _mm512_dpbusd_epi32(x, x, x);",
          needs=("AVX512",)),
    Probe("AVX512_BF16", "GGML_AVX512_BF16", ("-mavx512f", "-mavx512bf16"),
          "volatile __m512 x = _mm512_set1_ps(1.0f);"
          " volatile __m512bh h = _mm512_cvtne2ps_pbh(x, x);",
          needs=("AVX512",)),
    Probe("AMX_TILE", "GGML_AMX_TILE", ("-mamx-tile",),
          _AMX_CONFIG + "_tile_stored(0, c, 64); _tile_release();"),
    Probe("AMX_INT8", "GGML_AMX_INT8", ("-mamx-tile", "-mamx-int8"),
          _AMX_CONFIG + "_tile_dpbssd(0, 1, 2); _tile_stored(0, c, 64); _tile_release();",
          needs=("AMX_TILE",)),
    Probe("AMX_BF16", "GGML_AMX_BF16", ("-mamx-tile", "-mamx-bf16"),
          _AMX_CONFIG + "_tile_dpbf16ps(0, 1, 2); _tile_stored(0, c, 64); _tile_release();",
          needs=("AMX_TILE",)),
)  # fmt: skip

_PROGRAM = """
#include <immintrin.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/syscall.h>
static void *run(void *unused) {{
{body}
    return 0;
}}
int main(void) {{
    /* AMX: ask for tile data as llama.cpp does (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA). */
    {amx_permission}
    pthread_t threads[{threads}];
    for (int i = 0; i < {threads}; i++) if (pthread_create(&threads[i], 0, run, 0)) return 3;
    run(0);
    for (int i = 0; i < {threads}; i++) pthread_join(threads[i], 0);
    return 0;
}}
"""


@dataclass(frozen=True)
class ProbeResult:
    works: dict[str, bool]
    """Each probed feature: did it run?"""
    how: str
    """``probed`` (compiled and run), or why not: ``no C compiler``, ``not x86-64``."""
    detail: dict[str, str]
    """Why a feature does not count: ``SIGILL``, ``the compiler lacks it``, ``not reported``."""

    @property
    def features(self) -> set[str]:
        return {name for name, ok in self.works.items() if ok}


def cpu_fingerprint() -> str:
    """The CPU model and its reported flags, hashed: what a cached probe belongs to."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = platform.processor()
    wanted = [
        line for line in info.splitlines() if line.startswith(("model name", "flags", "vendor"))
    ]
    return hashlib.sha256("\n".join(sorted(set(wanted))).encode()).hexdigest()[:16]


def reported_flags() -> set[str]:
    """What /proc/cpuinfo claims (the probe's starting point, not its evidence)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


_REPORTED = {
    "AVX": {"avx"},
    "AVX2": {"avx2"},
    "FMA": {"fma"},
    "F16C": {"f16c"},
    "BMI2": {"bmi2"},
    "AVX_VNNI": {"avx_vnni"},
    "AVX512": {"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"},
    "AVX512_VBMI": {"avx512vbmi"},
    "AVX512_VNNI": {"avx512_vnni"},
    "AVX512_BF16": {"avx512_bf16"},
    "AMX_TILE": {"amx_tile"},
    "AMX_INT8": {"amx_int8"},
    "AMX_BF16": {"amx_bf16"},
}


def _compiler() -> str | None:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def probe(timeout: float = 20.0) -> ProbeResult:
    """Compile and run every probe here (no cache)."""
    names = [p.feature for p in PROBES]
    if platform.machine() not in ("x86_64", "AMD64"):
        return ProbeResult(dict.fromkeys(names, False), "not x86-64", {})
    compiler = _compiler()
    reported = reported_flags()
    if compiler is None:
        claimed = {p.feature: _REPORTED[p.feature] <= reported for p in PROBES}
        return ProbeResult(claimed, "no C compiler: /proc/cpuinfo taken at its word", {})
    works: dict[str, bool] = {}
    detail: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ponder-cpu-probe-") as folder:
        for item in PROBES:
            if not all(works.get(need) for need in item.needs):
                works[item.feature], detail[item.feature] = False, "needs " + "+".join(item.needs)
                continue
            if not _REPORTED[item.feature] <= reported:
                works[item.feature], detail[item.feature] = False, "not reported by the CPU"
                continue
            works[item.feature], why = _run_probe(item, compiler, Path(folder), timeout)
            if why:
                detail[item.feature] = why
    return ProbeResult(works, "probed", detail)


def _run_probe(item: Probe, compiler: str, folder: Path, timeout: float) -> tuple[bool, str]:
    amx = item.feature.startswith("AMX")
    source = folder / f"{item.feature}.c"
    binary = folder / item.feature
    source.write_text(
        _PROGRAM.format(
            body=item.body,
            threads=THREADS,
            amx_permission="syscall(SYS_arch_prctl, 0x1023, 18);" if amx else "",
        )
    )
    built = subprocess.run(
        [compiler, "-O0", "-pthread", *item.cflags, str(source), "-o", str(binary)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if built.returncode != 0:
        return False, "the compiler cannot build it"
    try:
        ran = subprocess.run([str(binary)], capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False, "it hung"
    if ran.returncode == 0:
        return True, ""
    if ran.returncode < 0:
        return False, f"it died with signal {-ran.returncode} (SIGILL is 4)"
    return False, f"it exited with {ran.returncode}"


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ponder" / f"cpu-{cpu_fingerprint()}.json"


def probe_cached() -> ProbeResult:
    """The probe's result for this CPU, run once per CPU and kept in the user's cache."""
    path = cache_path()
    try:
        data = json.loads(path.read_text())
        return ProbeResult(dict(data["works"]), str(data["how"]), dict(data.get("detail", {})))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    result = probe()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"works": result.works, "how": result.how, "detail": result.detail})
        )
    except OSError:
        pass
    return result


def cmake_args(result: ProbeResult) -> list[str]:
    """llama.cpp's CMake options for exactly the extensions that run here."""
    args = ["-DGGML_NATIVE=OFF"]
    for item in PROBES:
        args.append(f"-D{item.option}={'ON' if result.works.get(item.feature) else 'OFF'}")
    return args


def built_features(system_info: str) -> set[str]:
    """The extensions a llama.cpp build uses, from its ``llama_print_system_info()``."""
    known = {p.feature for p in PROBES}
    found = set()
    for part in system_info.replace("\n", "|").split("|"):
        name, _, value = part.strip().rpartition(" = ")
        name = name.split(":")[-1].strip()
        if name in known and value.strip() == "1":
            found.add(name)
    return found


def unusable(built: set[str], result: ProbeResult) -> list[str]:
    """What a build uses that does not run here (empty: the build is safe on this CPU)."""
    return sorted(feature for feature in built if not result.works.get(feature, False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cmake-args", action="store_true", help="print CMAKE_ARGS to build with")
    parser.add_argument("--json", action="store_true", help="print the probe's result as JSON")
    parser.add_argument("--check", metavar="SYSTEM_INFO", help="exit 1 if this build cannot run")
    parser.add_argument("--record", metavar="FILE", help="with --check: write what was built")
    args = parser.parse_args(argv)
    result = probe_cached()
    if args.check is not None:
        built = built_features(args.check)
        bad = unusable(built, result)
        if bad:
            print(f"the llama.cpp build uses {', '.join(bad)}, which this CPU cannot run")
        elif args.record:
            record = {
                "cpu": cpu_fingerprint(),
                "built_with": sorted(built),
                "cpu_runs": sorted(result.features),
                "probe": result.how,
            }
            Path(args.record).write_text(json.dumps(record, indent=2) + "\n")
        return 1 if bad else 0
    if args.cmake_args:
        print(" ".join(cmake_args(result)))
    elif args.json:
        print(json.dumps({"works": result.works, "how": result.how, "detail": result.detail}))
    else:
        for name, ok in result.works.items():
            print(f"{name:12} {'runs' if ok else 'no'}  {result.detail.get(name, '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
