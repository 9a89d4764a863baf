"""AGENTS.md: which files are read, in what order, within what size, and what the model sees."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import PONDER
from k2text import completion, write_script

from ponder.runtime.events import InstructionsLoaded, MessageAdded, RunStarted, event_from_json
from ponder.runtime.project_docs import find_project_docs


def tree(root: Path) -> Path:
    """A repository whose working folder is two levels down, with instructions at each level."""
    (root / ".git").mkdir(parents=True)
    deep = root / "sub" / "deep"
    deep.mkdir(parents=True)
    (root / "AGENTS.md").write_text("Use tabs.\n")
    (root / "sub" / "AGENTS.md").write_text("Never read me: the override replaces me.\n")
    (root / "sub" / "AGENTS.override.md").write_text("Use spaces here.\n")
    (deep / "CLAUDE.md").write_text("Run make test.\n")
    return deep


def test_root_first_overrides_replace_and_fallbacks_count_only_when_named(tmp_path: Path) -> None:
    deep = tree(tmp_path / "repo")
    user = tmp_path / "config" / "AGENTS.md"
    user.parent.mkdir()
    user.write_text("Answer briefly.\n")
    docs, note = find_project_docs(deep, ("CLAUDE.md",), user)
    assert [d.shown_as for d in docs] == [
        str(user),
        "AGENTS.md",
        "sub/AGENTS.override.md",
        "sub/deep/CLAUDE.md",
    ]
    assert note is None
    docs, _ = find_project_docs(deep)  # without the fallback name CLAUDE.md is not read
    assert [d.shown_as for d in docs] == ["AGENTS.md", "sub/AGENTS.override.md"]


def test_past_the_cap_the_deepest_are_kept(tmp_path: Path) -> None:
    deep = tree(tmp_path / "repo")
    (tmp_path / "repo" / "AGENTS.md").write_text("x" * 100)
    docs, note = find_project_docs(deep, ("CLAUDE.md",), max_bytes=60)
    assert [d.shown_as for d in docs] == ["sub/AGENTS.override.md", "sub/deep/CLAUDE.md"]
    assert note == "instructions are over 60 bytes: left out AGENTS.md"
    (deep / "CLAUDE.md").write_text("y" * 1000)
    docs, note = find_project_docs(deep, ("CLAUDE.md",), max_bytes=60)
    (only,) = docs
    assert only.text.startswith("y" * 60)
    assert "cut at the size limit" in only.text
    assert note == (
        "instructions are over 60 bytes: sub/deep/CLAUDE.md cut; "
        "left out AGENTS.md, sub/AGENTS.override.md"
    )


def test_links_and_fifos_planted_by_the_sandbox_are_not_read(tmp_path: Path) -> None:
    """The workspace is the sandbox's to write: a link to a host secret must not reach the
    model, and a FIFO must not hang ponder."""
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY\n")
    workspace = tmp_path / "repo"
    (workspace / ".git").mkdir(parents=True)
    (workspace / "AGENTS.override.md").symlink_to(secret)
    os.mkfifo(workspace / "AGENTS.md")
    (workspace / "CLAUDE.md").write_text("The real one.\n")
    docs, _ = find_project_docs(workspace, ("CLAUDE.md",))
    assert [d.text for d in docs] == ["The real one.\n"]


def test_the_model_reads_them_in_its_system_prompt(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    deep = tree(tmp_path / "repo")
    script = write_script(tmp_path / "script.jsonl", completion("Read.", content="ok"))
    (Path(user_env["XDG_CONFIG_HOME"]) / "ponder").mkdir(parents=True)
    (Path(user_env["XDG_CONFIG_HOME"]) / "ponder" / "config.toml").write_text(
        'project_doc_fallback_filenames = ["CLAUDE.md"]\n'
    )
    result = subprocess.run(
        [PONDER, "exec", "--json", "go", "--model", f"scripted:{script}", "--sandbox", "local"],
        cwd=deep, env=user_env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [event_from_json(line) for line in result.stdout.splitlines()]
    assert isinstance(events[0], RunStarted)  # a consumer's first line names the session
    (loaded,) = [e for e in events if isinstance(e, InstructionsLoaded)]
    assert loaded.files == ["AGENTS.md", "sub/AGENTS.override.md", "sub/deep/CLAUDE.md"]
    system = next(e.message["content"] for e in events if isinstance(e, MessageAdded))
    assert "## AGENTS.md\n\nUse tabs." in system
    assert "## sub/AGENTS.override.md\n\nUse spaces here." in system
    assert system.index("Use tabs.") < system.index("Run make test.")
    assert "Never read me" not in system
