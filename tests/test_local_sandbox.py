"""The local backend: no isolation, but the same command and file behaviour as Docker's."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PONDER

from ponder.sandbox.base import OUTSIDE_WORKSPACE, FileAccessError
from ponder.sandbox.local_sandbox import LocalSandbox


@pytest.fixture
def local(workspace: Path) -> Iterator[LocalSandbox]:
    with LocalSandbox(workspace) as sandbox:
        yield sandbox


def test_commands_run_in_the_workspace_and_keep_their_directory(
    local: LocalSandbox, workspace: Path
) -> None:
    assert local.exec("pwd; echo err >&2; exit 4", 10).output == f"{workspace}\nerr\n"
    local.exec("mkdir sub && cd sub && export X=1", 10)
    assert local.exec('pwd; echo "$X"', 10).output == f"{workspace}/sub\n1\n"


def test_a_timeout_stops_the_command_and_what_it_started(local: LocalSandbox) -> None:
    result = local.exec("setsid sleep 611 >/dev/null 2>&1 & sleep 612", timeout=1)
    assert result.timed_out
    left = subprocess.run(["pgrep", "-f", "^sleep 61[12]$"], capture_output=True, text=True)
    assert left.stdout == ""


def test_files_are_confined_to_the_workspace(local: LocalSandbox, workspace: Path) -> None:
    local.write_file("a/b.txt", b"x\n")
    assert (workspace / "a" / "b.txt").read_bytes() == b"x\n"
    (workspace / "escape").symlink_to("/etc")
    with pytest.raises(FileAccessError) as raised:
        local.read_file("escape/hostname")
    assert raised.value.kind == OUTSIDE_WORKSPACE


def test_choosing_it_prints_a_warning(workspace: Path, user_env: dict[str, str]) -> None:
    result = subprocess.run(
        [
            PONDER,
            "sandbox",
            "exec",
            "--sandbox",
            "local",
            "--workspace",
            str(workspace),
            "--",
            "echo hi",
        ],
        env=user_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout == "hi\n"
    assert "nothing is isolated" in result.stderr
