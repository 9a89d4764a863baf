"""`ponder doctor` as a user runs it: everything fine, then each kind of problem with its fix."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import PONDER

from ponder.model.cpu_features import PROBES, cpu_fingerprint

pytestmark = pytest.mark.usefixtures("sandbox_image", "gemma")


def doctor(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PONDER, "doctor"], env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip


def configure(env: dict[str, str], model: str) -> None:
    folder = Path(env["XDG_CONFIG_HOME"]) / "ponder"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.toml").write_text(f"model = {model!r}\n")


def test_a_working_machine_is_ready(workspace: Path, user_env: dict[str, str], gemma: Path) -> None:
    configure(user_env, f"llamacpp:{gemma}")
    ran = doctor(user_env, workspace)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for line in (
        f"ok  configured model: {gemma}: gemma3, 0.3B parameters, trained for 32,768 tokens",
        "ok  Docker engine:",
        "ok  sandbox: a command ran in a locked-down container",
        "ok  llama.cpp build: uses",
        "ok  generation on real weights (the bundled small model, not yours): gemma-3-270m",
    ):
        assert line in ran.stdout
    assert "ponder is ready." in ran.stdout


def test_each_problem_fails_with_its_fix(
    workspace: Path, user_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("max_steps = 'many'\n")
    # This machine's CPU runs AVX2; a probe result that says it does not stands in for a CPU
    # that cannot run what the installed build uses (a cloud VM's AMX, say).
    cache = tmp_path / "cache"
    (cache / "ponder").mkdir(parents=True)
    works = {probe.feature: probe.feature in ("AVX", "FMA", "F16C", "BMI2") for probe in PROBES}
    detail = {"AVX2": "it died with signal 4 (SIGILL is 4)"}
    (cache / "ponder" / f"cpu-{cpu_fingerprint()}.json").write_text(
        json.dumps({"works": works, "how": "probed", "detail": detail})
    )
    env = user_env | {"PONDER_CONFIG": str(config), "XDG_CACHE_HOME": str(cache)}
    ran = doctor(env, workspace)
    assert ran.returncode == 1
    assert "FAIL  configuration: invalid configuration" in ran.stdout
    assert f"fix: fix or remove {config}" in ran.stdout
    assert "FAIL  llama.cpp build: uses AVX2, which this CPU cannot run" in ran.stdout
    assert "-DGGML_AVX2=OFF" in ran.stdout  # the fix names the build that would run
    assert "ponder is not ready" in ran.stdout


def test_no_docker_engine_is_explained(workspace: Path, user_env: dict[str, str]) -> None:
    env = user_env | {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    ran = doctor(env, workspace)
    assert ran.returncode == 1
    assert "FAIL  Docker engine: cannot reach a Docker engine at unix:///nonexistent" in ran.stdout


def test_a_model_that_cannot_work_is_not_ready(workspace: Path, user_env: dict[str, str]) -> None:
    """Issue 24, 1: the doctor said ready with a model that could never answer."""
    configure(user_env, "llamacpp:/nope.gguf")
    ran = doctor(user_env, workspace)
    assert ran.returncode == 1
    assert "FAIL  configured model: llamacpp:/nope.gguf: model file not found" in ran.stdout
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    configure(user_env, f"openai:{url}#kimi-k2-thinking")
    ran = doctor(user_env, workspace)
    assert ran.returncode == 1
    assert f"FAIL  configured model: {url}/models did not answer" in ran.stdout
    assert "fix: start the server, or fix the URL in `model`" in ran.stdout
