"""The host side of the sandbox boundary: what ponder does on the host with a workspace the
model could write (checkpoints, diff, undo, patches, completion) runs nothing the workspace
names, follows no symlink out of it, handles every file name, and keeps sessions apart.

Real git repositories throughout; the poison is written straight into ``.git`` here, as a
sandbox could before ``.git`` was read-only, or as ``--sandbox local`` still can.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import git
import pytest

from ponder.app.completion import workspace_files
from ponder.runtime.checkpoint_store import apply_patch
from ponder.runtime.checkpoints import CheckpointError, Checkpoints
from ponder.runtime.ledger import facts_of
from ponder.sandbox.tree_walk import walk_entries


def poison(repo: Path, markers: Path) -> None:
    """Every way a repository can make git run a program, each leaving a marker file."""

    def program(name: str) -> str:
        script = markers.parent / f"{name}.sh"
        script.write_text(f"#!/bin/sh\ntouch {markers}/{name}\ncat\n")
        script.chmod(0o755)
        return str(script)

    hooks = repo / ".git" / "hooks"
    for hook in ("reference-transaction", "post-index-change", "pre-commit", "post-checkout"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {markers}/hook-{hook}\n")
        (hooks / hook).chmod(0o755)
    with git.Repo(repo).config_writer() as config:
        config.set_value('filter "x"', "clean", program("clean"))
        config.set_value('filter "x"', "smudge", program("smudge"))
        config.set_value('diff "x"', "textconv", program("textconv"))
        config.set_value('diff "x"', "command", program("diff-driver"))
        config.set_value("diff", "external", program("external-diff"))
        config.set_value("core", "fsmonitor", program("fsmonitor"))
        config.set_value("core", "pager", program("pager"))
        config.set_value("core", "hooksPath", str(hooks))
    (repo / ".gitattributes").write_text("* filter=x diff=x\n")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    repository = git.Repo.init(path)
    (path / "app.py").write_text("print('v1')\n")
    repository.index.add(["app.py"])
    repository.index.commit("first")
    return path


def test_a_poisoned_repository_runs_nothing_on_the_host(repo: Path, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    poison(repo, markers)
    os.environ["GIT_EXTERNAL_DIFF"] = str(tmp_path / "external-diff.sh")  # the caller's own
    try:
        with Checkpoints(repo, "s1", tmp_path / "store") as checkpoints:
            checkpoints.before_step()
            (repo / "app.py").write_text("print('v2')\n")
            (repo / "new.py").write_text("x = 1\n")
            assert checkpoints.checkpoint() is not None
            diff = checkpoints.diff().patch
            checkpoints.undo()
            assert not (repo / "new.py").exists()
            apply_patch(repo, tmp_path / "store", diff)  # heavy mode's way back
        workspace_files(repo)
    finally:
        del os.environ["GIT_EXTERNAL_DIFF"]
    assert list(markers.iterdir()) == []
    # The change shows as it is: no clean filter could hide it, no textconv disguise it.
    assert b"-print('v1')\n+print('v2')" in diff
    assert b"+x = 1" in diff
    assert (repo / "new.py").read_text() == "x = 1\n"


def test_undo_never_follows_a_symlink_out_of_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "d").mkdir(parents=True)
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "victim.txt").write_text("x\n")
    (outside / "kept.txt").write_text("host file\n")
    with Checkpoints(workspace, "s1", tmp_path / "store") as checkpoints:
        checkpoints.before_step()
        (workspace / "d" / "victim.txt").write_text("x\n")  # the step adds d/victim.txt
        (workspace / "d" / "kept.txt").write_text("made by the step\n")
        assert checkpoints.checkpoint() is not None
        # Then (a background job, say) d becomes a link to a host folder with the same files.
        for name in ("victim.txt", "kept.txt"):
            (workspace / "d" / name).unlink()
        (workspace / "d").rmdir()
        (workspace / "d").symlink_to(outside)
        with pytest.raises(CheckpointError, match="nothing undone: d/"):
            checkpoints.undo()
    assert (outside / "victim.txt").read_text() == "x\n"
    assert (outside / "kept.txt").read_text() == "host file\n"


NAMES = [
    "café.txt",
    "tab\there.txt",
    "new\nline.txt",
    'quote".txt',
    "back\\slash.txt",
    "-dash.txt",
    "dir with space/ünï.txt",
    " leading space",
]


def test_undo_puts_back_every_file_name(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    odd = workspace / os.fsdecode(b"not-utf8-\xff\xfe.bin")
    for name in NAMES:
        (workspace / name).parent.mkdir(exist_ok=True)
        (workspace / name).write_text(f"before {name}\n")
    odd.write_bytes(b"before\n")
    with Checkpoints(workspace, "s1", tmp_path / "store") as checkpoints:
        for name in NAMES:
            (workspace / name).write_text(f"after {name}\n")
        odd.unlink()
        (workspace / "né\tw.txt").write_text("new\n")
        step = checkpoints.checkpoint()
        assert step is not None
        assert len(step.files) == len(NAMES) + 2
        undone = checkpoints.undo()
    assert (len(undone.restored), undone.removed) == (len(NAMES) + 1, ["né\tw.txt"])
    for name in NAMES:
        assert (workspace / name).read_text() == f"before {name}\n"
    assert odd.read_bytes() == b"before\n"
    assert not (workspace / "né\tw.txt").exists()


def test_two_sessions_in_one_workspace_undo_only_their_own_change(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "shared.txt").write_text("start\n")
    store = tmp_path / "store"
    with Checkpoints(workspace, "A", store) as a, Checkpoints(workspace, "B", store) as b:
        a.before_step()
        (workspace / "a.txt").write_text("a1\n")
        assert a.checkpoint() is not None
        b.before_step()
        (workspace / "b.txt").write_text("b1\n")
        assert b.checkpoint() is not None
        a.before_step()
        (workspace / "a.txt").write_text("a2\n")
        assert a.checkpoint() is not None

        assert b"a.txt" not in b.diff().patch  # only A changed it
        assert b"+b1" in b.diff().patch
        b.undo()
        assert not (workspace / "b.txt").exists()
        assert (workspace / "a.txt").read_text() == "a2\n"  # A's edits survive B's undo

        b.before_step()
        (workspace / "shared.txt").write_text("by B\n")
        assert b.checkpoint() is not None
        a.before_step()
        (workspace / "shared.txt").write_text("by A after B\n")
        assert a.checkpoint() is not None
        with pytest.raises(CheckpointError, match=r"shared\.txt changed since"):
            b.undo()
        assert (workspace / "shared.txt").read_text() == "by A after B\n"
        a.undo()
        assert (workspace / "shared.txt").read_text() == "by B\n"
        assert (workspace / "a.txt").read_text() == "a2\n"


def test_the_private_index_is_removed_and_nothing_left_in_tmp(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    script = (
        "import sys, pathlib\n"
        "from ponder.runtime.checkpoints import Checkpoints\n"
        "with Checkpoints(pathlib.Path(sys.argv[1]), 's1', pathlib.Path(sys.argv[2])) as c:\n"
        "    (pathlib.Path(sys.argv[1]) / 'f').write_text('x')\n"
        "    c.checkpoint(); c.diff(); c.undo()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(workspace), str(tmp_path / "store")],
        env={**os.environ, "TMPDIR": str(temporary)},
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert list(temporary.iterdir()) == []


def test_a_new_gitignore_that_hides_files_shows_in_every_diff(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    with Checkpoints(workspace, "s1", tmp_path / "store") as checkpoints:
        checkpoints.before_step()
        (workspace / "tests").mkdir()
        (workspace / "tests" / ".gitignore").write_text("*\n")  # ignores itself and the rest
        (workspace / "tests" / "conftest.py").write_text("import os\n")
        step = checkpoints.checkpoint()
        assert step is not None
        assert step.files == ["tests/.gitignore", "tests/conftest.py"]
        hidden = next(c for c in step.changes if c.path == "tests/conftest.py")
        assert not hidden.shown  # listed, not hidden
        assert "ignored by .gitignore" in hidden.note
        assert b"+++ b/tests/.gitignore\n@@ -0,0 +1 @@\n+*" in checkpoints.diff().patch


def test_a_directory_swapped_for_a_link_mid_walk_is_not_entered(tmp_path: Path) -> None:
    # A background job can turn a directory into a link to / between the walk listing its
    # parent and entering it: a walk by path would then read the host's whole disk.
    workspace = tmp_path / "workspace"
    (workspace / "d").mkdir(parents=True)
    (workspace / "d" / "kept.py").write_text("x = 1\n")
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "secret.txt").write_text("host\n")

    def swap_then_descend(path: bytes, entry: os.DirEntry[str]) -> bool:
        if path == b"d":
            (workspace / "d" / "kept.py").unlink()
            (workspace / "d").rmdir()
            (workspace / "d").symlink_to(outside)
        return True

    unlistable: list[bytes] = []
    seen = [
        path
        for path, _, _ in walk_entries(
            os.fsencode(workspace), swap_then_descend, unlistable=lambda p, e: unlistable.append(p)
        )
    ]
    assert seen == [b"d"]
    assert unlistable == [b"d"]


def test_a_rewrite_in_the_second_git_read_it_is_seen(tmp_path: Path) -> None:
    # git trusts its record of a file's times to the second: a file a background job rewrote
    # within the second git read it, same size, its mtime set back, kept its old content.
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    target = workspace / "a.py"
    target.write_text("X = 'harmless'\n")
    with Checkpoints(workspace, "s1", tmp_path / "store", busy=lambda: True) as checkpoints:
        for _ in range(5):  # until the rewrite lands in the second of the read
            time.sleep(1 - time.time() % 1)  # at the start of a second
            checkpoints.before_step()
            target.write_text("X = 'harmless'\n")
            os.utime(target, ns=(0, 946_684_800 * 10**9))
            checkpoints.checkpoint()  # git reads the harmless line
            read_in = int(target.stat().st_ctime)
            target.write_text("X = 'evil!!!!'\n")  # the job, while the model thinks (same size)
            os.utime(target, ns=(0, 946_684_800 * 10**9))
            if int(target.stat().st_ctime) == read_in:
                break
        else:
            pytest.skip("the machine was too slow to rewrite within one second")
        background = checkpoints.before_step()
        assert background is not None
        assert background.files == ["a.py"]
        assert b"+X = 'evil!!!!'" in checkpoints.diff().patch


def test_a_written_file_is_read_again_even_when_its_facts_did_not_move(tmp_path: Path) -> None:
    # A write into a memory-mapped page that is still dirty changes neither mtime nor ctime
    # (seen by the attack in issue 22's review; when the kernel writes the page back first,
    # the times do move, so it cannot be staged reliably here). What must hold: a file the
    # kernel's watch says was written is read again although its facts are those of the last
    # walk. The last walk's record is set to the facts after the write to stand for that.
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    target = workspace / "b.py"
    target.write_bytes(b"Y = 'harmless'\n")
    with Checkpoints(workspace, "s1", tmp_path / "store") as checkpoints:
        checkpoints.before_step()
        target.write_bytes(b"Y = 'evil!!!!'\n")  # same size
        checkpoints._indexes.seen[b"b.py"] = facts_of(target.stat())  # (see above)
        assert checkpoints.checkpoint() is not None
        assert b"+Y = 'evil!!!!'" in checkpoints.diff().patch
