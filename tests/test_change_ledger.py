"""Issue 22's hidden changes, through the real commands and a real Docker sandbox: whatever the
model does to the workspace, `ponder diff` shows it (or lists it, with a warning when something
on the host would run it), and `ponder undo` takes back what can be kept.

Each test is one of the issue's attacks, played by a scripted model through `ponder exec`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import git
import pytest
from conftest import PONDER
from fake_openai import Reply, delta_chunk, fake_openai
from k2text import completion, tool_call, write_script

pytestmark = pytest.mark.usefixtures("sandbox_image")


def ponder(
    *args: str, env: dict[str, str], cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [PONDER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def run_commands(
    tmp_path: Path, workspace: Path, env: dict[str, str], *commands: str
) -> subprocess.CompletedProcess[str]:
    """One `ponder exec` whose model runs ``commands`` (a step each), then answers."""
    steps = [
        completion(f"Step {index + 1}: run it.", tool_call("bash", index, {"command": command}))
        for index, command in enumerate(commands)
    ]
    script = write_script(tmp_path / "model.jsonl", *steps, completion("Done.", content="done"))
    return ponder("exec", "--model", f"scripted:{script}", "go", env=env, cwd=workspace)


@pytest.fixture
def repo(workspace: Path) -> Path:
    repository = git.Repo.init(workspace)
    (workspace / "a.py").write_text("VALUE = 'v1'\n")
    (workspace / "src").mkdir()
    (workspace / "src" / "main.py").write_text("print('main')\n")
    (workspace / ".gitignore").write_text(".env\ndata/\nbuild/\n")
    repository.index.add(["a.py", "src/main.py", ".gitignore"])
    repository.index.commit("first")
    return workspace


def test_a_forged_modification_time_does_not_hide_an_edit(
    repo: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    run_commands(
        tmp_path, repo, user_env,
        "cp -p a.py /tmp/r && sed -i s/v1/v2/ a.py && touch -r /tmp/r a.py",
    )  # fmt: skip
    assert "-VALUE = 'v1'\n+VALUE = 'v2'" in ponder("diff", env=user_env, cwd=repo).stdout
    ponder("undo", env=user_env, cwd=repo)
    assert (repo / "a.py").read_text() == "VALUE = 'v1'\n"


def test_a_planted_git_file_does_not_hide_a_folder(
    repo: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    run_commands(
        tmp_path, repo, user_env, "echo 'import os; os.system(\"id\")' >> src/main.py; : > src/.git"
    )
    shown = ponder("diff", env=user_env, cwd=repo)
    assert '+import os; os.system("id")' in shown.stdout
    assert "deleted file" not in shown.stdout
    assert "⚠ src/.git" in shown.stderr
    ponder("undo", env=user_env, cwd=repo)
    assert (repo / "src" / "main.py").read_text() == "print('main')\n"


def test_ignored_and_cache_folders_are_seen_and_small_ignored_files_come_back(
    repo: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    (repo / ".env").write_text("SECRET=1\n")
    (repo / "data").mkdir()
    (repo / "data" / "db.sqlite").write_bytes(b"SQLite format 3\0" + bytes(4000))
    site = ".venv/lib/python3.11/site-packages"
    run_commands(
        tmp_path, repo, user_env,
        "mkdir -p src/__pycache__ && printf 'fake bytecode' > src/__pycache__/main.cpython-311.pyc"
        f" && mkdir -p {site} && echo 'import os' > {site}/evil.pth"
        " && mkdir -p node_modules/x && echo 'module.exports = 1' > node_modules/x/index.js"
        " && rm .env data/db.sqlite",
    )  # fmt: skip
    listed = ponder("diff", env=user_env, cwd=repo).stderr
    assert "⚠ src/__pycache__/" in listed
    assert "bytecode" in listed
    assert "runs whenever Python starts" in listed
    assert "node_modules/" in listed
    assert ".env  deleted" in listed
    ponder("undo", env=user_env, cwd=repo)
    assert (repo / ".env").read_text() == "SECRET=1\n"
    assert (repo / "data" / "db.sqlite").read_bytes().startswith(b"SQLite format 3")
    assert not (repo / "src" / "__pycache__" / "main.cpython-311.pyc").exists()
    assert not (repo / site / "evil.pth").exists()


def test_nested_repositories_are_diffed_and_a_swapped_one_is_named(
    repo: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    nested = git.Repo.init(repo / "sub")
    (repo / "sub" / "x.py").write_text("x = 1\n")
    nested.index.add(["x.py"])
    nested.index.commit("first")
    venv_repo = git.Repo.init(repo / ".venv" / "src" / "pkg")
    del venv_repo
    result = run_commands(
        tmp_path, repo, user_env,
        "echo 'x = 2' > sub/x.py",
        "touch .venv/src/pkg/.git/hooks/post-checkout 2>&1 || echo read-only",
        "mv sub sub.old && mkdir sub && git init -q sub"
        " && git -C sub config core.fsmonitor 'touch /tmp/ran'",
    )  # fmt: skip
    del result
    shown = ponder("diff", env=user_env, cwd=repo)
    assert "+x = 2" in shown.stdout
    assert "⚠ sub/.git/" in shown.stderr
    assert "core.fsmonitor" in shown.stderr
    assert not (repo / ".venv" / "src" / "pkg" / ".git" / "hooks" / "post-checkout").exists()


def test_what_a_background_job_writes_while_the_model_thinks_is_the_sessions(
    repo: Path, user_env: dict[str, str]
) -> None:
    later = "(sleep 1.5; echo 'import os; os.system(\"id\")' >> src/main.py) >/dev/null 2>&1 &"
    step = completion("Start it.", tool_call("bash", 0, {"command": later}))
    answer = completion("Done.", content="done")
    replies = [
        Reply(chunks=[delta_chunk(role="assistant", content=step)]),
        Reply(chunks=[delta_chunk(role="assistant", content=answer)], delay_s=4),
    ]
    with fake_openai(*replies) as server:
        ponder("exec", "--model", f"openai:{server.url}#k2", "go", env=user_env, cwd=repo)
    assert '+import os; os.system("id")' in ponder("diff", env=user_env, cwd=repo).stdout
    ponder("undo", env=user_env, cwd=repo)
    assert (repo / "src" / "main.py").read_text() == "print('main')\n"


def test_names_git_refuses_do_not_switch_checkpoints_off(
    repo: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    ran = run_commands(
        tmp_path, repo, user_env,
        "git init -q build/x && mkdir -p sub/.GIT && echo '[core]' > sub/.GIT/config"
        " && echo x > '.git ' && sed -i s/v1/v2/ a.py",
    )  # fmt: skip
    assert "checkpoints are off" not in ran.stderr
    shown = ponder("diff", env=user_env, cwd=repo)
    assert "+VALUE = 'v2'" in shown.stdout
    assert "sub/.GIT/" in shown.stderr
    assert "build/x/.git/" in shown.stderr
    ponder("undo", env=user_env, cwd=repo)
    assert (repo / "a.py").read_text() == "VALUE = 'v1'\n"


def test_a_huge_sparse_file_in_a_folder_that_is_no_project(
    workspace: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    (workspace / "notes.txt").write_text("one\n")
    run_commands(
        tmp_path, workspace, user_env,
        "truncate -s 1100M big && for i in 1 2 3 4; do ln big link$i; done && echo two > notes.txt",
    )  # fmt: skip
    shown = ponder("diff", env=user_env, cwd=workspace)
    assert "+two" in shown.stdout
    assert "big  added: not in the diff: over 8 MiB" in shown.stderr
    store = Path(user_env["HOME"]) / ".local" / "share" / "ponder" / "checkpoints"
    assert sum(f.stat().st_blocks * 512 for f in store.rglob("*") if f.is_file()) < 5 * 1024**2


def test_the_store_keeps_no_copy_of_a_big_file_rewritten_at_every_step(
    repo: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    rewrites = [f"head -c 10000000{i} /dev/urandom > data.bin" for i in range(5)]
    run_commands(tmp_path, repo, user_env, *rewrites)
    store = Path(user_env["HOME"]) / ".local" / "share" / "ponder" / "checkpoints"
    assert sum(f.stat().st_blocks * 512 for f in store.rglob("*") if f.is_file()) < 5 * 1024**2
    listed = ponder("diff", env=user_env, cwd=repo).stderr
    assert "data.bin  added: not in the diff: over 8 MiB\n" in listed  # made by it: undo removes
    undone = ponder("undo", env=user_env, cwd=repo, check=False)
    assert undone.returncode == 1  # nothing could be put back, and it says so
    assert "not put back: data.bin: its content was not kept (over 8 MiB" in undone.stdout
    assert (repo / "data.bin").stat().st_size == 100000004


def test_a_git_directory_elsewhere_in_the_workspace_is_read_only_too(
    repo: Path, tmp_path: Path, user_env: dict[str, str]
) -> None:
    # A nested repository whose .git is a link (or a "gitdir:" file) to a folder elsewhere in
    # the workspace: that folder holds its config and hooks, and git on the host follows it.
    elsewhere = repo / ".gitdirs" / "proj.git"
    git.Repo.init(elsewhere, bare=True)
    (repo / "proj").mkdir()
    (repo / "proj" / ".git").symlink_to("../.gitdirs/proj.git")
    (repo / "lib").mkdir()
    (repo / "lib" / ".git").write_text("gitdir: ../.gitdirs/proj.git\n")
    run_commands(tmp_path, repo, user_env, "git -C proj config core.fsmonitor 'touch /tmp/ran'")
    assert "fsmonitor" not in (elsewhere / "config").read_text()
