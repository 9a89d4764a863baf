"""Git checkpoints on real repositories: undo anything, and never touch the user's git state."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import git
import pytest

from ponder.runtime.checkpoint_store import store_size
from ponder.runtime.checkpoints import PRIVATE_FILE_LIMIT, CheckpointError, Checkpoints


def git_state(repo: Path) -> tuple[str, str, str, str]:
    """HEAD, the branch, the index's tree and the stash list: what ponder must leave alone."""

    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout

    return (
        run("rev-parse", "HEAD"),
        run("branch", "--show-current"),
        run("write-tree"),
        run("stash", "list"),
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    repository = git.Repo.init(path)
    (path / "app.py").write_text("print('v1')\n")
    (path / ".gitignore").write_text("*.log\n")
    repository.index.add(["app.py", ".gitignore"])
    repository.index.commit("first")
    (path / "staged.py").write_text("x = 1\n")
    repository.index.add(["staged.py"])  # the user's own staged change
    return path


def test_undo_restores_untracked_files_and_leaves_git_alone(repo: Path, tmp_path: Path) -> None:
    before = git_state(repo)
    refs_before = git.Repo(repo).git.for_each_ref("--format=%(refname)")
    checkpoints = Checkpoints(repo, "s1", tmp_path / "store")

    (repo / "notes.txt").write_text("draft 1\n")  # a step makes an untracked file
    first = checkpoints.checkpoint()
    assert first is not None
    assert first.files == ["notes.txt"]
    assert checkpoints.checkpoint() is None  # nothing changed: no checkpoint

    (repo / "notes.txt").write_text("draft 2\n")  # the next step changes it
    (repo / "app.py").write_text("print('v2')\n")
    (repo / "new.py").write_text("y = 2\n")
    (repo / "debug.log").write_text("ignored\n")
    second = checkpoints.checkpoint()
    assert second is not None
    assert sorted(second.files) == ["app.py", "debug.log", "new.py", "notes.txt"]
    log = next(c for c in second.changes if c.path == "debug.log")
    assert (log.shown, log.undoable) == (False, True)
    assert "ignored by .gitignore" in log.note

    undone = checkpoints.undo()
    assert undone.commit == first.commit
    assert (repo / "notes.txt").read_text() == "draft 1\n"
    assert (repo / "app.py").read_text() == "print('v1')\n"
    assert not (repo / "new.py").exists()
    assert not (repo / "debug.log").exists()  # small ignored files are kept, and undone too
    assert git_state(repo) == before

    checkpoints.undo()
    assert not (repo / "notes.txt").exists()  # back at the start: the file had not been made
    with pytest.raises(CheckpointError, match="no earlier checkpoint"):
        checkpoints.undo()
    assert git_state(repo) == before
    # The checkpoints live in ponder's own store; the repository has not a byte more.
    assert git.Repo(repo).git.for_each_ref("--format=%(refname)") == refs_before
    assert not git.Repo(repo).git.stash("list")


def test_diff_shows_what_the_session_changed(repo: Path, tmp_path: Path) -> None:
    checkpoints = Checkpoints(repo, "s2", tmp_path / "store")
    checkpoints.before_step()
    (repo / "app.py").write_text("print('v2')\n")
    (repo / "added.py").write_text("z = 3\n")
    assert checkpoints.checkpoint() is not None
    (repo / "mine.txt").write_text("the user's own, after the session's step\n")
    diff = checkpoints.diff()
    patch = diff.patch.decode()
    assert "-print('v1')\n+print('v2')" in patch
    assert "diff --git a/added.py b/added.py\nnew file mode" in patch
    assert "staged.py" not in patch  # it was there before the session
    assert "mine.txt" not in patch  # someone else's, since the session's last step
    assert [c.path for c in diff.changes] == ["added.py", "app.py"]


def test_a_directory_that_is_not_a_repository(tmp_path: Path) -> None:
    workspace = tmp_path / "plain"
    workspace.mkdir()
    (workspace / "a.txt").write_text("one\n")
    checkpoints = Checkpoints(workspace, "s3", tmp_path / "store")
    assert not (workspace / ".git").exists()
    (workspace / "a.txt").write_text("two\n")
    (workspace / "b.txt").write_text("new\n")
    assert checkpoints.checkpoint() is not None
    checkpoints.undo()
    assert (workspace / "a.txt").read_text() == "one\n"
    assert not (workspace / "b.txt").exists()
    assert not (workspace / ".git").exists()


def test_nested_repositories_are_checkpointed_but_their_git_metadata_never_written(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "projects"
    (workspace / "empty").mkdir(parents=True)
    git.Repo.init(workspace / "empty")  # no commit yet: git cannot add it at all
    clone = git.Repo.init(workspace / "clone")
    (workspace / "clone" / "x.py").write_text("x = 1\n")
    clone.index.add(["x.py"])
    clone.index.commit("first")
    (workspace / "notes.txt").write_text("one\n")
    checkpoints = Checkpoints(workspace, "s4", tmp_path / "store")
    (workspace / "notes.txt").write_text("two\n")
    (workspace / "clone" / "x.py").write_text("x = 2\n")  # the diff shows it, undo puts it back
    metadata = sorted(p.relative_to(workspace) for p in workspace.rglob("*") if ".git" in p.parts)
    changed = checkpoints.checkpoint()
    assert changed is not None
    assert changed.files == ["clone/x.py", "notes.txt"]
    assert "+x = 2" in checkpoints.diff().patch.decode()
    checkpoints.undo()
    assert (workspace / "notes.txt").read_text() == "one\n"
    assert (workspace / "clone" / "x.py").read_text() == "x = 1\n"
    assert sorted(p.relative_to(workspace) for p in workspace.rglob("*") if ".git" in p.parts) == (
        metadata
    )


def test_a_folder_too_big_to_copy_is_refused_with_the_reason(tmp_path: Path) -> None:
    workspace = tmp_path / "home"
    workspace.mkdir()
    for index in range(PRIVATE_FILE_LIMIT + 1):  # a home directory, say
        (workspace / f"f{index}").touch()
    with pytest.raises(CheckpointError, match="is not a git repository and holds more than"):
        Checkpoints(workspace, "s5", tmp_path / "store")
    assert not list((tmp_path / "store").glob("*/objects/??"))  # nothing was copied


def test_the_store_keeps_under_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 22, 11: nothing pruned the store. Over its cap, other sessions' checkpoints go
    # first, then this session's oldest steps are merged into one: what the session changed
    # since its start stays whole, and undo still goes back step by step at the end.
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("start\n")
    store = tmp_path / "store"
    with Checkpoints(workspace, "old", store) as old:
        old.before_step()
        (workspace / "old.bin").write_bytes(os.urandom(2_000_000))
        assert old.checkpoint() is not None
    (workspace / "old.bin").unlink()
    monkeypatch.setattr("ponder.runtime.checkpoints.STORE_CAP", 1_000_000)
    with Checkpoints(workspace, "new", store) as new:
        for step in range(25):
            new.before_step()
            (workspace / "notes.txt").write_text(f"step {step}\n")
            (workspace / "data.bin").write_bytes(os.urandom(100_000))
            assert new.checkpoint() is not None
        refs = git.Repo(new.git_dir).git.for_each_ref("--format=%(refname)").split()
        assert refs == ["refs/ponder/ledger/new"]  # the other session went first
        assert store_size(new.git_dir) < 1_000_000 + 200_000  # one step past it at most
        assert len(git.Repo(new.git_dir).git.log("--format=%H", new.ref).split()) < 25
        assert "-start\n+step 24" in new.diff().patch.decode()
        new.undo()
        assert (workspace / "notes.txt").read_text() == "step 23\n"


def test_a_private_file_stays_private(tmp_path: Path) -> None:
    # The store holds a copy of every file, a 600 .env among them; git keeps only 644 or 755,
    # so undo must put the file back as private as it was.
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    secret = workspace / ".env"
    secret.write_text("TOKEN=1\n")
    secret.chmod(0o600)
    store = tmp_path / "store"
    with Checkpoints(workspace, "s1", store) as checkpoints:
        checkpoints.before_step()
        secret.unlink()
        assert checkpoints.checkpoint() is not None
        undone = checkpoints.undo()
    assert undone.restored == [".env"]
    assert secret.read_text() == "TOKEN=1\n"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert store.stat().st_mode & 0o777 == 0o700


def test_what_the_host_would_run_stands_out(tmp_path: Path) -> None:
    # The review's routes to code running on the host without a ⚠ (issue 22).
    workspace = tmp_path / "workspace"
    (workspace / "src").mkdir(parents=True)
    cache = tmp_path / "uv-cache"  # a package cache whose files are hard-linked in
    cache.mkdir()
    (cache / "requests.py").write_text("ok = 1\n")
    site = workspace / ".venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    os.link(cache / "requests.py", site / "requests.py")
    (workspace / "src" / "linked.py").write_text("x = 1\n")
    os.link(workspace / "src" / "linked.py", tmp_path / "other-project.py")
    with Checkpoints(workspace, "s1", tmp_path / "store") as checkpoints:
        checkpoints.before_step()
        (workspace / "src" / "helper.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
        (workspace / "tests" / "git~1").mkdir(parents=True)
        (workspace / "tests" / "git~1" / "conftest.py").write_text("import os\n")
        with (site / "requests.py").open("a") as trojan:  # in place, through the link
            trojan.write("import os\n")
        (site / "evil.py").write_text("import os\n")
        with (workspace / "src" / "linked.py").open("a") as shared:
            shared.write("y = 2\n")
        bare = git.Repo.init(workspace / "build" / "cache", bare=True)
        with bare.config_writer() as config:
            config.set_value("core", "fsmonitor", "touch /tmp/ran")
        step = checkpoints.checkpoint()
    assert step is not None
    warnings = {change.path: change.warning for change in step.changes}
    assert "a native library" in warnings["src/helper.cpython-311-x86_64-linux-gnu.so"]
    assert "git cannot store this name" in warnings["tests/git~1/conftest.py"]
    assert (
        "its code runs when you use this environment: lib/python3.11/site-packages/evil.py"
        in warnings[".venv/"]
    )
    assert "a hard link" in warnings[".venv/"]  # the uv cache changed too
    assert "a hard link" in warnings["src/linked.py"]
    assert "core.fsmonitor" in warnings["build/cache/"]
