"""``view`` and ``str_replace`` keep the text editor tool's contract, inside the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ponder.runtime.events import Event, FileEdited
from ponder.runtime.tools.base import ToolContext, ToolInputError, ToolOutcome
from ponder.runtime.tools.editor import StrReplaceTool, ViewTool
from ponder.sandbox.docker_sandbox import DockerSandbox

SOURCE = "def add(a, b):\n\treturn a - b\n\n\ndef sub(a, b):\n\treturn a - b"


@pytest.fixture
def source(workspace: Path) -> Path:
    path = workspace / "calc.py"
    path.write_text(SOURCE)
    return path


def use(
    tool: ViewTool | StrReplaceTool, sandbox: DockerSandbox, **arguments: Any
) -> tuple[ToolOutcome, list[Event]]:
    events: list[Event] = []
    context = ToolContext(sandbox=sandbox, emit=events.append, call_id="functions.x:0", step=1)
    return tool.run(arguments, context), events


def test_view_numbers_lines_like_cat_n(sandbox: DockerSandbox, source: Path) -> None:
    outcome, _ = use(ViewTool(), sandbox, path="calc.py")
    assert outcome.text == (
        "Here's the result of running `cat -n` on /workspace/calc.py:\n"
        "     1\tdef add(a, b):\n     2\t\treturn a - b\n     3\t\n     4\t\n"
        "     5\tdef sub(a, b):\n     6\t\treturn a - b\n"
    )


def test_view_a_range(sandbox: DockerSandbox, source: Path) -> None:
    outcome, _ = use(ViewTool(), sandbox, path="/workspace/calc.py", view_range=[5, -1])
    assert outcome.text.endswith("     5\tdef sub(a, b):\n     6\t\treturn a - b\n")
    with pytest.raises(ToolInputError, match="should be within the range of lines"):
        use(ViewTool(), sandbox, path="calc.py", view_range=[9, 10])


def test_view_lists_a_directory_without_hidden_entries(
    sandbox: DockerSandbox, source: Path, workspace: Path
) -> None:
    (workspace / ".git").mkdir()
    (workspace / "pkg" / "sub" / "deep").mkdir(parents=True)
    outcome, _ = use(ViewTool(), sandbox, path=".")
    listing = outcome.text.splitlines()[1:]
    assert listing == ["/workspace", "/workspace/calc.py", "/workspace/pkg", "/workspace/pkg/sub"]


def test_str_replace_edits_exactly_once_and_reports_the_diff(
    sandbox: DockerSandbox, source: Path
) -> None:
    outcome, events = use(
        StrReplaceTool(),
        sandbox,
        path="calc.py",
        old_str="def add(a, b):\n\treturn a - b",
        new_str="def add(a, b):\n\treturn a + b",
    )
    # Tabs and the missing final newline are kept; nothing else changes.
    assert source.read_text() == SOURCE.replace("return a - b", "return a + b", 1)
    assert "has been edited" in outcome.text
    assert "     2\t\treturn a + b" in outcome.text
    (edited,) = events
    assert isinstance(edited, FileEdited)
    assert "-\treturn a - b\n+\treturn a + b\n" in edited.diff


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"old_str": "return a * b", "new_str": "x"},
            "did not appear verbatim in /workspace/calc.py",
        ),
        (
            {"old_str": "return a - b", "new_str": "x"},
            r"Multiple occurrences of old_str `return a - b` in lines \[2, 6\]",
        ),
        ({"old_str": "b):\n\treturn", "new_str": "x"}, r"in lines \[1, 5\]"),
        ({"old_str": "same", "new_str": "same"}, "is the same as new_str"),
    ],
)
def test_str_replace_errors_leave_the_file_alone(
    sandbox: DockerSandbox, source: Path, arguments: dict[str, str], message: str
) -> None:
    with pytest.raises(ToolInputError, match=message):
        use(StrReplaceTool(), sandbox, path="calc.py", **arguments)
    assert source.read_text() == SOURCE


def test_missing_files_and_directories_are_explained(
    sandbox: DockerSandbox, workspace: Path
) -> None:
    (workspace / "pkg").mkdir()
    with pytest.raises(ToolInputError, match=r"does not exist\. Please provide a valid path"):
        use(ViewTool(), sandbox, path="nope.py")
    with pytest.raises(ToolInputError, match="is a directory and only the `view` command"):
        use(StrReplaceTool(), sandbox, path="pkg", old_str="a", new_str="b")
