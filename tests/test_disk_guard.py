"""A command that fills the host's disk through the bind-mounted workspace is stopped, with the
reason for the model and for the user; a full session shows it too.

The guard watches a few times a second, so how far past a limit a command gets depends on how
fast it writes; each filler here writes until something stops it, so what is checked is that
the guard stops it (not how many bytes it managed first)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from conftest import PONDER
from k2text import completion, tool_call, write_script

from ponder.sandbox.disk_guard import DiskLimits, measure
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.local_sandbox import LocalSandbox

MB = 1024**2
LIMITS = DiskLimits(max_growth=300 * MB, max_new_files=20_000)


@pytest.fixture
def guarded(
    workspace: Path, sandbox_image: str, docker_client: docker.DockerClient
) -> Iterator[DockerSandbox]:
    with DockerSandbox(workspace, sandbox_image, client=docker_client, disk=LIMITS) as box:
        yield box


def test_writing_gigabytes_into_the_workspace_is_stopped(
    guarded: DockerSandbox, workspace: Path
) -> None:
    fill = "i=0; while :; do head -c 50000000 /dev/zero > big$i.bin; i=$((i + 1)); done"
    result = guarded.exec(fill, timeout=300)
    assert result.notice is not None
    assert "the workspace grew by" in result.notice
    assert "disk.max_growth" in result.notice
    assert (result.interrupted, result.timed_out, result.exit_code) == (False, False, 137)
    assert measure(workspace).bytes > LIMITS.max_growth  # stopped for what it wrote
    # The model can clean up: a command that does not grow the workspace is never stopped.
    cleaned = guarded.exec("rm -f big*.bin; echo cleaned", timeout=60)
    assert (cleaned.output, cleaned.notice) == ("cleaned\n", None)


def test_creating_hundreds_of_thousands_of_files_is_stopped(
    guarded: DockerSandbox, workspace: Path
) -> None:
    fill = "i=0; while :; do mkdir d$i && (cd d$i && seq 2000 | xargs touch); i=$((i + 1)); done"
    result = guarded.exec(fill, 300)
    assert result.notice is not None
    assert "files in this session" in result.notice
    assert measure(workspace).files > LIMITS.max_new_files


def test_a_growing_workspace_within_the_limits_is_left_alone(guarded: DockerSandbox) -> None:
    result = guarded.exec("head -c 100000000 /dev/zero > ok.bin && echo written", 120)
    assert (result.output, result.notice, result.exit_code) == ("written\n", None, 0)


def test_the_local_backend_is_guarded_too(tmp_path: Path) -> None:
    with LocalSandbox(tmp_path, disk=LIMITS) as box:
        result = box.exec(
            "i=0; while :; do head -c 50000000 /dev/zero > b$i; i=$((i+1)); done", 300
        )
    assert result.notice is not None
    assert "the workspace grew by" in result.notice


@pytest.mark.usefixtures("sandbox_image")
def test_a_session_tells_the_model_and_the_user(
    tmp_path: Path, workspace: Path, user_env: dict[str, str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[disk]\nmax_growth = "200MiB"\n')
    script = write_script(
        tmp_path / "model.jsonl",
        completion(
            "Fill.", tool_call("bash", 0, {"command": "while :; do cat /dev/zero >> x; done"})
        ),
        completion("Stopped; clean up.", tool_call("bash", 1, {"command": "rm x"})),
        completion("Done.", content="cleaned up"),
    )
    env = user_env | {"PONDER_CONFIG": str(config)}
    ran = subprocess.run(
        [PONDER, "exec", "--json", "--model", f"scripted:{script}", "go"],
        env=env, cwd=workspace, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    finished = [
        event
        for event in map(json.loads, ran.stdout.splitlines())
        if event["type"] == "tool_call_finished"
    ]
    assert "disk.max_growth" in finished[0]["notice"]  # the user's view
    assert "disk.max_growth" in finished[0]["result"]  # the model's view
    assert "notice" not in finished[1]
    assert not (workspace / "x").exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 400 MB filesystem of its own (a tmpfs), as a nearly full laptop disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_command_may_not_take_the_disk_below_its_reserve(small_disk: Path) -> None:
    limits = DiskLimits(min_free=150 * MB)
    with LocalSandbox(small_disk, disk=limits) as box:
        result = box.exec(
            "i=0; while :; do head -c 1000000 /dev/zero > f$i; i=$((i + 1)); done", 120
        )
    assert result.notice is not None
    assert "disk.min_free" in result.notice


def test_a_background_writer_is_stopped_while_ponder_waits(
    small_disk: Path, sandbox_image: str, docker_client: docker.DockerClient
) -> None:
    # Issue 22, 10: the guard watched only while a command ran, so a job left in the background
    # filled a 700 MB disk to 100% while ponder sat at its prompt.
    limits = DiskLimits(min_free=150 * MB)
    with DockerSandbox(small_disk, sandbox_image, client=docker_client, disk=limits) as box:
        writer = "while :; do head -c 2000000 /dev/zero >> fill.bin; sleep 0.05; done"
        started = box.exec(f"({writer}) >/dev/null 2>&1 & echo started", 30)
        assert started.output == "started\n"
        assert box.background_jobs()
        # Nothing runs a command now (the model is thinking): the guard stops the writer alone.
        deadline = time.monotonic() + 120
        while box.background_jobs() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not box.background_jobs()
        assert shutil.disk_usage(small_disk).free > 0  # never full
        assert (small_disk / "fill.bin").stat().st_size > 200 * MB  # it was writing
        reported = box.exec("echo next", 10)
    assert reported.output == "next\n"
    assert reported.notice is not None
    assert "between commands, background jobs were stopped" in reported.notice
    assert "disk.min_free" in reported.notice
