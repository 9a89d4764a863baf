"""Git on the host, over files the sandbox could write.

A workspace (its ``.git`` too, where the sandbox can reach it) may hold whatever the model put
there: a ``core.fsmonitor`` or ``diff.external`` program, hooks, ``filter`` and ``textconv``
drivers wired up through ``.gitattributes``. Every git command ponder runs on the host goes
through :func:`run_git`, which makes git run nothing but itself: hooks, fsmonitor, the pager,
external diff, credential helpers and editors are switched off on the command line (which wins
over every config file), ``GIT_*`` variables of the caller are dropped, and git is given no
terminal. Filters and textconv are switched off by the attributes file of ponder's own checkpoint
store (:mod:`ponder.runtime.checkpoints`), the only repository whose metadata ponder trusts.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.pager=cat",
    "core.editor=false",
    "core.askPass=",
    "core.sshCommand=false",
    "credential.helper=",
    "diff.external=",
    "core.autocrlf=false",
    "core.safecrlf=false",
    "core.symlinks=true",
    "core.quotePath=false",
    "gc.auto=0",
    "maintenance.auto=false",
)
"""Settings that hold whatever any config file says: each turns off a program git could run."""

NEUTRAL_ATTRIBUTES = "* -text -filter !diff !merge -ident -working-tree-encoding !eol\n"
"""For a repository's ``info/attributes`` (which outranks every ``.gitattributes``): no filter,
textconv or diff driver, no line-ending or encoding conversion: files are stored byte for byte."""

TIMEOUT_S = 600


class GitFailed(Exception):
    """A git command failed; the message is git's own error, shortened."""


def git_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without ``GIT_*`` variables, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_ATTR_NOSYSTEM="1",
        LC_ALL="C",
    )
    env.update(extra or {})
    return env


def git_process(
    *args: str,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    work_tree: Path | None = None,
    index: Path | None = None,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = TIMEOUT_S,
    limit: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``git ARGS`` safely; its exit status, stdout and stderr (:class:`GitFailed` only
    when git cannot run, runs past ``timeout``, or writes more than ``limit`` bytes).

    ``env`` adds variables (an identity for commits); the caller's ``GIT_*`` never pass.
    """
    extra = dict(env or {})
    if git_dir is not None:
        extra["GIT_DIR"] = str(git_dir)
    if work_tree is not None:
        extra["GIT_WORK_TREE"] = str(work_tree)
    if index is not None:
        extra["GIT_INDEX_FILE"] = str(index)
    argv = ["git", "--no-pager"]
    for setting in SAFE_CONFIG:
        argv += ["-c", setting]
    try:
        with tempfile.TemporaryFile() as out:  # on disk, so a huge output never fills memory
            done = subprocess.run(
                [*argv, *args],
                cwd=cwd or work_tree,
                env=git_environment(extra),
                input=stdin if stdin is not None else b"",
                stdout=out,
                stderr=subprocess.PIPE,
                timeout=timeout,
                check=False,
            )
            size = out.seek(0, os.SEEK_END)
            if limit is not None and size > limit:
                raise GitFailed(f"git {args[0]} wrote over {limit // 1024**2} MiB")
            out.seek(0)
            done.stdout = out.read()
            return done
    except FileNotFoundError:
        raise GitFailed("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitFailed(f"git {args[0]} took over {timeout:g} s") from None


def run_git(
    *args: str,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    work_tree: Path | None = None,
    index: Path | None = None,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = TIMEOUT_S,
    limit: int | None = None,
) -> bytes:
    """Run ``git ARGS`` safely and return its stdout; :class:`GitFailed` when it fails."""
    done = git_process(
        *args, cwd=cwd, git_dir=git_dir, work_tree=work_tree, index=index, stdin=stdin,
        env=env, timeout=timeout, limit=limit,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise GitFailed(f"git {args[0]} failed: {_gist(done.stderr)}")
    return done.stdout


def _gist(stderr: bytes) -> str:
    """What git's error output says, without its hints and warnings."""
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return " ".join(errors or lines[-1:])[:300]
