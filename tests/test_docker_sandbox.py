"""The Docker sandbox against a real engine: commands, files, isolation, cleanup."""

from __future__ import annotations

import os
from pathlib import Path

import docker
import docker.errors
import pytest

from ponder.sandbox.base import IS_DIRECTORY, NOT_FOUND, OUTSIDE_WORKSPACE, FileAccessError
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import LABEL


def test_exit_code_and_output_in_order(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("echo one; echo two >&2; echo three; exit 7", timeout=30)
    assert result.exit_code == 7
    assert result.output == "one\ntwo\nthree\n"
    assert not result.timed_out


def test_output_streams_while_the_command_runs(sandbox: DockerSandbox) -> None:
    seen: list[str] = []
    result = sandbox.exec("for i in 1 2 3; do echo $i; sleep 0.2; done", 30, seen.append)
    assert "".join(seen) == result.output == "1\n2\n3\n"
    assert len(seen) >= 2


def test_working_directory_carries_over(sandbox: DockerSandbox) -> None:
    assert sandbox.exec("pwd", 30).output == "/workspace\n"
    sandbox.exec("mkdir -p sub/dir && cd sub/dir", 30)
    assert sandbox.exec("pwd", 30).output == "/workspace/sub/dir\n"


def test_stdin_is_closed(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("read line; echo \"rc=$?\"; python3 -c 'input()' 2>&1 | tail -1", 30)
    assert result.output.startswith("rc=1\n")
    assert "EOFError" in result.output


def test_a_command_that_never_ends_is_stopped(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("echo started; sleep 1000", timeout=2)
    assert result.timed_out
    assert result.output.startswith("started\n")
    leftover = sandbox.exec("ps -eo args | grep -c '[s]leep 1000'", 30)
    assert leftover.output.strip() == "0"
    assert sandbox.exec("echo still usable", 30).output == "still usable\n"


def test_files_written_in_the_sandbox_belong_to_the_user(
    sandbox: DockerSandbox, workspace: Path
) -> None:
    sandbox.exec("echo data > made-inside.txt", 30)
    made = workspace / "made-inside.txt"
    assert made.read_text() == "data\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (os.getuid(), os.getgid())


def test_no_network_and_no_host_secrets(
    sandbox_image: str, workspace: Path, docker_client: docker.DockerClient
) -> None:
    os.environ["PONDER_TEST_SECRET_TOKEN"] = "hunter2"
    try:
        with DockerSandbox(workspace, sandbox_image, client=docker_client) as box:
            interfaces = box.exec("ls /sys/class/net", 30).output.split()
            environment = box.exec("env", 30).output
    finally:
        del os.environ["PONDER_TEST_SECRET_TOKEN"]
    assert interfaces == ["lo"]
    assert "hunter2" not in environment


def test_system_files_are_read_only_and_capabilities_dropped(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("touch /usr/x 2>&1; grep CapEff /proc/self/status", 30)
    assert "Read-only file system" in result.output
    assert "CapEff:\t0000000000000000" in result.output


def test_large_output_is_capped_with_a_marker(sandbox: DockerSandbox) -> None:
    result = sandbox.exec("seq 1 200000", 60)
    assert result.total_bytes == len("".join(f"{i}\n" for i in range(1, 200001)))
    assert result.output.startswith("1\n2\n")
    assert result.output.endswith("199999\n200000\n")
    assert result.truncated
    assert f"left out; the full output is in {result.log_path} ...]" in result.output
    # The model can grep the whole output where the marker says.
    saved = sandbox.exec(f"wc -c < {result.log_path}; grep -c . {result.log_path}", 30)
    assert saved.output.split() == [str(result.total_bytes), "200000"]


def test_read_and_write_files(sandbox: DockerSandbox, workspace: Path) -> None:
    (workspace / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (workspace / "script.sh").chmod(0o755)
    assert sandbox.read_file("script.sh") == b"#!/bin/sh\necho hi\n"
    sandbox.write_file("/workspace/script.sh", b"#!/bin/sh\necho bye\n")
    assert (workspace / "script.sh").read_text() == "#!/bin/sh\necho bye\n"
    assert (workspace / "script.sh").stat().st_mode & 0o777 == 0o755
    sandbox.write_file("new/dir/file.txt", "ü\n".encode())
    assert (workspace / "new/dir/file.txt").read_text() == "ü\n"
    assert sorted(sandbox.list_dir(".", depth=2)) == ["new", "new/dir", "script.sh"]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/etc/passwd", OUTSIDE_WORKSPACE),
        ("../etc/passwd", OUTSIDE_WORKSPACE),
        ("escape/passwd", OUTSIDE_WORKSPACE),
        ("missing.txt", NOT_FOUND),
        ("adir", IS_DIRECTORY),
    ],
)
def test_file_access_is_refused_outside_the_workspace(
    sandbox: DockerSandbox, workspace: Path, path: str, kind: str
) -> None:
    (workspace / "adir").mkdir()
    # A symlink made inside the workspace must not lead the file tools out of it.
    (workspace / "escape").symlink_to("/etc")
    with pytest.raises(FileAccessError) as raised:
        sandbox.read_file(path)
    assert raised.value.kind == kind
    if kind == OUTSIDE_WORKSPACE:
        with pytest.raises(FileAccessError):
            sandbox.write_file(path, b"x")


def test_stop_removes_the_container(
    sandbox_image: str, workspace: Path, docker_client: docker.DockerClient
) -> None:
    box = DockerSandbox(workspace, sandbox_image, client=docker_client)
    box.start()
    labels = docker_client.containers.get(box.name).labels
    assert labels[LABEL] == "1"
    assert labels["io.ponder.owner_pid"] == str(os.getpid())
    box.stop()
    box.stop()
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(box.name)
