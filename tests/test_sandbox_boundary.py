"""A model that attacks the host from inside a real sandbox, through ponder as a user runs it:
git metadata, checkpoint refs, the `.git` link, and two sessions in one repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import git
import pytest
from conftest import PONDER
from k2text import completion, tool_call, write_script

pytestmark = pytest.mark.usefixtures("sandbox_image")


def ponder(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PONDER, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


@pytest.fixture
def repo(workspace: Path) -> Path:
    repository = git.Repo.init(workspace)
    (workspace / "app.py").write_text("print('v1')\n")
    repository.index.add(["app.py"])
    repository.index.commit("first")
    return workspace


def test_a_model_attacking_git_from_the_sandbox_reaches_nothing_on_the_host(
    repo: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    other = tmp_path / "other"
    git.Repo.init(other)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = user_env | {"TMPDIR": str(temporary)}
    run = f"touch {markers}/ran"  # what every planted program would do on the host
    attack = (
        f"git config filter.x.clean '{run}-clean; cat'; "
        f"git config core.fsmonitor '{run}-fsmonitor'; "
        f"git config diff.external '{run}-diff'; "
        "git config core.hooksPath .githooks; "
        f"printf '#!/bin/sh\\n{run}-hook\\n' > .git/hooks/reference-transaction; "
        "mkdir -p .githooks && cp .git/hooks/reference-transaction .githooks/ 2>/dev/null; "
        "echo '* filter=x diff=x' > .gitattributes; "
        "git update-ref refs/ponder/checkpoints/forged HEAD; "
        f"rm -rf .git; echo 'gitdir: {other}/.git' > .git; "
        "echo attack done"
    )
    script = write_script(
        tmp_path / "model.jsonl",
        completion("Plant things.", tool_call("bash", 0, {"command": attack})),
        completion(
            "Now the work.", tool_call("bash", 1, {"command": "echo \"print('v2')\" > app.py"})
        ),
        completion("Done.", content="changed app.py"),
    )
    ran = ponder("exec", "--json", "--model", f"scripted:{script}", "go", env=env, cwd=repo)
    assert ran.returncode == 0, ran.stderr
    results = [
        json.loads(line)["result"]
        for line in ran.stdout.splitlines()
        if json.loads(line)["type"] == "tool_call_finished"
    ]
    assert "Read-only file system" in results[0]
    assert "the repository's .git is read-only in this sandbox" in results[0]

    diff = ponder("diff", env=env, cwd=repo)
    assert "+print('v2')" in diff.stdout
    assert ponder("undo", env=env, cwd=repo).returncode == 0
    assert (repo / "app.py").read_text() == "print('v1')\n"
    # The user goes on with their repository as usual afterwards.
    for args in (["status"], ["diff"], ["add", "-A"], ["commit", "-qm", "after"], ["log"]):
        subprocess.run(
            ["git", "-c", "user.name=u", "-c", "user.email=u@u", *args],
            cwd=repo, capture_output=True, check=True, env=user_env,
        )  # fmt: skip
    assert list(markers.iterdir()) == []
    assert (repo / ".git").is_dir()
    refs = git.Repo(repo).git.for_each_ref("--format=%(refname)")
    assert "ponder" not in refs
    assert not list((other / ".git" / "objects").glob("??"))  # nothing was written there
    assert list(temporary.iterdir()) == []  # no index folder left by the session, diff or undo


def test_undo_of_one_session_keeps_the_other_sessions_edits(
    repo: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    def session(name: str, command: str, *resume: str) -> str:
        script = write_script(
            tmp_path / f"{name}.jsonl",
            completion("Work.", tool_call("bash", 0, {"command": command})),
            completion("Done.", content="done"),
        )
        ran = ponder("exec", *resume, "--model", f"scripted:{script}", name, env=user_env, cwd=repo)
        assert ran.returncode == 0, ran.stderr
        if resume:
            return resume[1]
        listing = ponder("sessions", env=user_env, cwd=repo).stdout.splitlines()
        return listing[0].split("\t")[0]  # the newest

    a = session("A", "echo a1 > a.txt && echo shared-a >> app.py")
    b = session("B", "echo b1 > b.txt")
    session("A2", "echo a2 > a.txt", "--resume", a)

    undone = ponder("undo", "--session", b, env=user_env, cwd=repo)
    assert undone.returncode == 0, undone.stderr
    assert not (repo / "b.txt").exists()
    assert (repo / "a.txt").read_text() == "a2\n"
    assert (repo / "app.py").read_text() == "print('v1')\nshared-a\n"
    assert "b.txt" not in ponder("diff", "--session", a, env=user_env, cwd=repo).stdout

    session("B2", "echo by-b >> app.py", "--resume", b)
    session("A3", "echo by-a-after-b >> app.py", "--resume", a)
    refused = ponder("undo", "--session", b, env=user_env, cwd=repo)
    assert refused.returncode != 0
    assert "app.py changed since this session's last step" in refused.stderr
    assert (repo / "app.py").read_text().endswith("by-b\nby-a-after-b\n")


def test_nested_git_directories_are_read_only_in_the_sandbox(
    repo: Path, sandbox_image: str
) -> None:
    from ponder.sandbox.docker_sandbox import DockerSandbox

    nested = git.Repo.init(repo / "vendor" / "lib")
    (repo / "vendor" / "lib" / "lib.py").write_text("x = 1\n")
    nested.index.add(["lib.py"])
    nested.index.commit("lib")
    config = (repo / "vendor" / "lib" / ".git" / "config").read_text()
    with DockerSandbox(repo, sandbox_image) as box:
        attack = box.exec("echo '[core] fsmonitor = x' >> vendor/lib/.git/config", 30)
        assert "Read-only file system" in attack.output
        work = box.exec("echo 'x = 2' > vendor/lib/lib.py && git -C vendor/lib diff --stat", 30)
        assert work.exit_code == 0
        assert "lib.py | 2 +-" in work.output
    assert (repo / "vendor" / "lib" / ".git" / "config").read_text() == config


def test_the_user_is_told_when_the_model_makes_a_repository(
    workspace: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    script = write_script(
        tmp_path / "model.jsonl",
        completion("Init.", tool_call("bash", 0, {"command": "git init -q"})),
        completion("Done.", content="made a repository"),
    )
    ran = ponder("exec", "--model", f"scripted:{script}", "go", env=user_env, cwd=workspace)
    assert ran.returncode == 0, ran.stderr
    assert "the model made a git repository" in ran.stderr
    assert "look at .git/config and .git/hooks" in ran.stderr


def test_export_into_the_workspace_never_writes_through_a_planted_link(
    workspace: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    script = write_script(
        tmp_path / "model.jsonl",
        completion("Link.", tool_call("bash", 0, {"command": f"ln -s {victim} notes.md"})),
        completion("Done.", content="linked"),
    )
    ran = subprocess.run(
        [PONDER, "--plain", "--model", f"scripted:{script}"],
        input="make notes\n/export md notes.md\n/export md sub/fresh.md\n/export xml\n/export\n",
        env=user_env, cwd=workspace, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert victim.read_text() == "the user's file\n"  # the link was replaced, not followed
    assert not (workspace / "notes.md").is_symlink()
    assert "# ponder session" in (workspace / "notes.md").read_text()
    assert "# ponder session" in (workspace / "sub" / "fresh.md").read_text()
    # An unknown format is refused, and without a path the export goes to the data folder.
    assert "/export takes md or json, then a path if you like; not 'xml'" in ran.stdout
    assert not (workspace / "xml").exists()
    exports = Path(user_env["HOME"]) / ".local" / "share" / "ponder" / "exports"
    (exported,) = exports.glob("*.md")
    assert f"exported to {exported}" in ran.stdout.replace("\n", "")
    assert sorted(p.name for p in workspace.iterdir()) == ["notes.md", "sub"]
