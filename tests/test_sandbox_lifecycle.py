"""Sandboxes come and go cleanly: copy mode, leftovers, name conflicts, SIGKILL, the CLI."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest
from conftest import PONDER

from ponder.runtime.copy_diff import copy_diff
from ponder.sandbox.base import SandboxError
from ponder.sandbox.disk_guard import DiskLimits
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import is_leftover, labels, managed_containers, reap_leftovers


def ours(client: docker.DockerClient, workspace: Path | None = None) -> set[str]:
    """ponder's containers; with ``workspace``, only those working on it (so containers of
    anything else running on this engine at the same time do not count)."""
    return {
        name
        for name, labels in managed_containers(client)
        if workspace is None or labels.get("io.ponder.workspace") == str(workspace.resolve())
    }


def sleep_in_a_sandbox(
    client: docker.DockerClient, workspace: Path, user_env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], set[str]]:
    """Start `ponder sandbox exec -- sleep 300`; return once its command runs, with the names
    of the containers it started."""
    before = ours(client, workspace)
    process = subprocess.Popen(
        [PONDER, "sandbox", "exec", "--workspace", str(workspace), "--", "sleep 300"],
        env=user_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ours(client, workspace) - before and time.monotonic() < deadline:
        time.sleep(0.2)
    started = ours(client, workspace) - before
    assert started, "the sandbox never appeared"
    time.sleep(1)  # the command is running inside
    return process, started


def test_copy_mode_leaves_the_host_alone_and_returns_a_diff(
    sandbox_image: str, docker_client: docker.DockerClient, workspace: Path
) -> None:
    (workspace / "app.py").write_text("print('v1')\n")
    (workspace / "notes.txt").write_text("keep\n")
    with DockerSandbox(workspace, sandbox_image, mode="copy", client=docker_client) as box:
        assert box.exec("id -u; cat app.py", 10).output == "0\nprint('v1')\n"
        box.write_file("app.py", b"print('v2')\n")
        box.exec("echo new > added.txt && rm notes.txt", 10)
        diff = copy_diff(box)
    assert (workspace / "app.py").read_text() == "print('v1')\n"
    assert not (workspace / "added.txt").exists()
    assert (workspace / "notes.txt").exists()
    assert "-print('v1')\n+print('v2')" in diff
    assert "diff --git a/added.txt b/added.txt\nnew file mode" in diff
    assert "diff --git a/notes.txt b/notes.txt\ndeleted file mode" in diff
    applied = subprocess.run(
        ["git", "apply", "--check", "-"], input=diff, text=True, cwd=workspace, capture_output=True
    )
    assert applied.returncode == 0, applied.stderr


def test_copy_mode_diff_is_the_files_not_what_the_containers_git_says(
    sandbox_image: str, docker_client: docker.DockerClient, workspace: Path
) -> None:
    # Issue 22, 7: the diff was made by git inside the container, whose .git the model could
    # write: `git config diff.external` made the host apply a patch no test had seen.
    subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
    (workspace / "app.py").write_text("print('v1')\n")
    (workspace / "notes.py").write_text("N = 1\n")
    forged = "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-print('v1')\n"
    forged += "+import os; os.system('id')\n"
    with DockerSandbox(workspace, sandbox_image, mode="copy", client=docker_client) as box:
        attack = (
            f"printf '%s' {shlex.quote(forged)} > /tmp/forged.diff\n"
            "printf '#!/bin/sh\\ncat /tmp/forged.diff\\n' > /tmp/ext.sh; chmod +x /tmp/ext.sh\n"
            "git config diff.external /tmp/ext.sh\n"
            "git config core.fsmonitor /tmp/ext.sh\n"
            "printf '* diff=x filter=x\\n' > .git/info/attributes\n"
            "git config diff.x.textconv /tmp/ext.sh; git config filter.x.clean /tmp/ext.sh\n"
            "echo \"print('v2')\" > app.py\n"
            "mkdir -p sub && echo 'hidden = 1' > sub/mod.py && : > sub/.git\n"
        )
        assert box.exec(attack, 30).exit_code == 0
        diff = copy_diff(box)
        # A .gitignore the model writes can neither hide a change nor fake a deletion.
        box.exec("printf '.gitignore\\nnotes.py\\n' > .gitignore; echo 'N = 2' > notes.py", 10)
        hidden = copy_diff(box)
    assert "os.system" not in diff
    assert "-print('v1')\n+print('v2')" in diff
    assert "+hidden = 1" in diff  # a planted .git does not hide a folder
    assert ".git" not in diff
    assert "-N = 1\n+N = 2" in hidden
    assert "+++ b/.gitignore" in hidden


def test_copy_mode_has_a_disk_limit_and_brings_back_a_bounded_diff(
    sandbox_image: str, docker_client: docker.DockerClient, workspace: Path
) -> None:
    # Issue 22, 13: copy mode had no disk limit (3 GB written with max_growth=100MiB), and the
    # diff was read into host memory whole (2.1 GB from a 1 GB diff).
    (workspace / "app.py").write_text("print('v1')\n")
    limits = DiskLimits(max_growth=100 * 1024**2)
    with DockerSandbox(
        workspace, sandbox_image, mode="copy", client=docker_client, disk=limits
    ) as box:
        filled = box.exec("head -c 3000000000 /dev/zero > big.bin; echo rc=$?; du -sm big.bin", 120)
        assert "rc=1" in filled.output  # the volume is full, not the host
        assert int(filled.output.split()[-2]) <= 101
        box.exec("rm big.bin; head -c 90000000 /dev/urandom > random.bin", 60)
        with pytest.raises(SandboxError, match="over 64 MiB"):
            copy_diff(box)  # a 120 MB patch is not read into memory
        box.exec("rm random.bin; echo \"print('v2')\" > app.py", 10)
        assert "+print('v2')" in copy_diff(box)


def test_leftovers_are_reaped_and_live_sandboxes_kept(
    sandbox_image: str, docker_client: docker.DockerClient, workspace: Path
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    dead_labels = {**labels("deadbeef", 3600, str(workspace)), "io.ponder.owner_pid": str(dead.pid)}
    expired = {**labels("expired", 3600, str(workspace)), "io.ponder.expires_at": "1"}
    for name, container_labels in (("ponder-test-dead", dead_labels), ("ponder-test-old", expired)):
        docker_client.containers.run(
            sandbox_image, ["sleep", "600"], name=name, labels=container_labels, detach=True
        )
    with DockerSandbox(workspace, sandbox_image, client=docker_client) as live:
        removed = reap_leftovers(docker_client)
        assert {"ponder-test-dead", "ponder-test-old"} <= set(removed)
        assert live.name in ours(docker_client)
        assert not {"ponder-test-dead", "ponder-test-old"} & ours(docker_client)


def test_a_reused_pid_is_not_taken_for_the_owner(workspace: Path) -> None:
    mine = labels("s", 3600, str(workspace))
    assert not is_leftover(mine)
    assert is_leftover({**mine, "io.ponder.owner_start": "1"})


def test_a_name_held_by_a_leftover_is_taken_over(
    sandbox_image: str, docker_client: docker.DockerClient, workspace: Path
) -> None:
    expired = {**labels("old", 3600, str(workspace)), "io.ponder.expires_at": "1"}
    docker_client.containers.run(
        sandbox_image, ["sleep", "600"], name="ponder-fixed", labels=expired, detach=True
    )
    with DockerSandbox(workspace, sandbox_image, client=docker_client, name="ponder-fixed") as box:
        assert box.name == "ponder-fixed"
        assert box.exec("echo here", 10).output == "here\n"
    stranger = docker_client.containers.run(
        sandbox_image, ["sleep", "600"], name="ponder-taken", detach=True
    )
    try:
        with DockerSandbox(
            workspace, sandbox_image, client=docker_client, name="ponder-taken"
        ) as box:
            assert box.name == "ponder-taken-2"
    finally:
        stranger.remove(force=True)


def test_sigkill_mid_command_leaves_nothing_after_cleanup(
    sandbox_image: str,
    docker_client: docker.DockerClient,
    workspace: Path,
    user_env: dict[str, str],
) -> None:
    process, started = sleep_in_a_sandbox(docker_client, workspace, user_env)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert started <= ours(docker_client, workspace)  # SIGKILL gives ponder no chance to clean up
    result = subprocess.run(
        [PONDER, "sandbox", "cleanup"], env=user_env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "removed" in result.stdout
    assert not started & ours(docker_client, workspace)


def test_sigterm_removes_the_sandbox(
    sandbox_image: str,
    docker_client: docker.DockerClient,
    workspace: Path,
    user_env: dict[str, str],
) -> None:
    before = ours(docker_client, workspace)
    process, _ = sleep_in_a_sandbox(docker_client, workspace, user_env)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    assert ours(docker_client, workspace) == before


def test_sandbox_exec_json(workspace: Path, user_env: dict[str, str], sandbox_image: str) -> None:
    result = subprocess.run(
        [
            PONDER,
            "sandbox",
            "exec",
            "--json",
            "--workspace",
            str(workspace),
            "--timeout",
            "5",
            "--",
            "echo hi; exit 3",
        ],
        env=user_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert {k: report[k] for k in ("exit_code", "timed_out", "output", "truncated")} == {
        "exit_code": 3,
        "timed_out": False,
        "output": "hi\n",
        "truncated": False,
    }
    assert report["duration_s"] > 0


@pytest.mark.docker  # the engine answers that the image is not there
def test_a_missing_image_says_how_to_get_one(workspace: Path, user_env: dict[str, str]) -> None:
    result = subprocess.run(
        [
            PONDER,
            "sandbox",
            "exec",
            "--image",
            "ponder-nonexistent:1",
            "--workspace",
            str(workspace),
            "--",
            "true",
        ],
        env=user_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "ponder-nonexistent:1 is not here; build it with `ponder sandbox build`" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("sandbox_image")
def test_no_container_outlives_a_normal_run(
    docker_client: docker.DockerClient, workspace: Path, user_env: dict[str, str]
) -> None:
    before = ours(docker_client, workspace)
    subprocess.run(
        [PONDER, "sandbox", "exec", "--workspace", str(workspace), "--", "true"],
        env=user_env,
        check=True,
        capture_output=True,
    )
    assert ours(docker_client, workspace) == before


@pytest.mark.usefixtures("sandbox_image")
def test_an_interactive_shell_in_the_sandbox(
    docker_client: docker.DockerClient, workspace: Path, user_env: dict[str, str]
) -> None:
    from tmux import terminal

    before = ours(docker_client, workspace)
    command = [PONDER, "sandbox", "shell", "--workspace", str(workspace)]
    with terminal(command, {**user_env, "TERM": "xterm-256color"}) as pane:
        pane.wait_for("removed when this shell exits", timeout=60)
        pane.send("echo inside-$((6*7)) $(pwd) $(ls /sys/class/net)", "Enter")
        pane.wait_for("inside-42 /workspace lo", timeout=30)
        pane.send("exit", "Enter")
        pane.wait_for("EXIT=0", timeout=30)
    assert ours(docker_client, workspace) == before
