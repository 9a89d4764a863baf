"""The CPU probe: evidence that an extension runs, a crash taken as a no, and the build it means."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from ponder.model import cpu_features
from ponder.model.cpu_features import (
    PROBES,
    ProbeResult,
    built_features,
    cmake_args,
    probe,
    reported_flags,
    unusable,
)


def test_an_instruction_this_cpu_cannot_run_is_a_no_not_a_crash() -> None:
    missing = [p for p in PROBES if not cpu_features._REPORTED[p.feature] <= reported_flags()]
    if not missing:
        pytest.skip("this CPU reports every extension llama.cpp can use")
    compiler = cpu_features._compiler()
    assert compiler is not None
    with tempfile.TemporaryDirectory() as folder:
        works, why = cpu_features._run_probe(missing[-1], compiler, Path(folder), timeout=20)
    assert not works
    assert why == "it died with signal 4 (SIGILL is 4)"


def test_the_probe_here_agrees_with_the_installed_build() -> None:
    import llama_cpp

    result = probe()
    assert result.how == "probed"
    assert result.works["AVX"]  # x86-64 machines that run ponder have had AVX since 2011
    built = built_features(llama_cpp.llama_print_system_info().decode())
    assert built
    assert unusable(built, result) == []


def test_system_info_and_cmake_options() -> None:
    info = (
        "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
        "AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
    )
    built = built_features(info)
    assert built == {"AVX", "AVX2", "F16C", "FMA", "BMI2", "AVX512", "AVX512_VNNI", "AMX_INT8"}
    vm = ProbeResult(
        {p.feature: p.feature not in ("AMX_TILE", "AMX_INT8", "AMX_BF16") for p in PROBES},
        "probed",
        {"AMX_TILE": "it died with signal 4 (SIGILL is 4)"},
    )
    assert unusable(built, vm) == ["AMX_INT8"]  # the cloud VM: AVX-512 yes, AMX no
    args = cmake_args(vm)
    assert args[0] == "-DGGML_NATIVE=OFF"
    assert "-DGGML_AVX512=ON" in args
    assert "-DGGML_AMX_INT8=OFF" in args
    assert len(args) == 1 + len(PROBES)
