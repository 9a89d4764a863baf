"""The file tools keep the text editor tool's contract, inside a real sandbox, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ponder.runtime.events import Event, FileEdited
from ponder.runtime.tools import default_tools
from ponder.runtime.tools.base import Tool, ToolContext, ToolInputError, ToolOutcome
from ponder.sandbox.docker_sandbox import DockerSandbox

SOURCE = "def add(a, b):\n\treturn a - b\n\n\ndef sub(a, b):\n\treturn a - b"


class Tools:
    """The default tool set on one sandbox, sharing one undo history."""

    def __init__(self, sandbox: DockerSandbox) -> None:
        self.sandbox = sandbox
        self.tools: dict[str, Tool] = {t.schema.name: t for t in default_tools()}
        self.events: list[Event] = []

    def __call__(self, name: str, **arguments: Any) -> ToolOutcome:
        context = ToolContext(
            sandbox=self.sandbox, emit=self.events.append, call_id="functions.x:0", step=1
        )
        return self.tools[name].run(arguments, context)


@pytest.fixture
def tools(sandbox: DockerSandbox) -> Tools:
    return Tools(sandbox)


@pytest.fixture
def source(workspace: Path) -> Path:
    path = workspace / "calc.py"
    path.write_text(SOURCE)
    return path


def test_view_numbers_lines_like_cat_n(tools: Tools, source: Path) -> None:
    assert tools("view", path="calc.py").text == (
        "Here's the result of running `cat -n` on /workspace/calc.py:\n"
        "     1\tdef add(a, b):\n     2\t\treturn a - b\n     3\t\n     4\t\n"
        "     5\tdef sub(a, b):\n     6\t\treturn a - b\n"
    )


def test_view_a_range(tools: Tools, source: Path) -> None:
    text = tools("view", path="/workspace/calc.py", view_range=[5, -1]).text
    assert text.endswith("     5\tdef sub(a, b):\n     6\t\treturn a - b\n")
    with pytest.raises(ToolInputError, match="should be within the range of lines"):
        tools("view", path="calc.py", view_range=[9, 10])


def test_view_lists_a_directory_without_hidden_entries(
    tools: Tools, source: Path, workspace: Path
) -> None:
    (workspace / ".git").mkdir()
    (workspace / "pkg" / "sub" / "deep").mkdir(parents=True)
    listing = tools("view", path=".").text.splitlines()[1:]
    assert listing == ["/workspace", "/workspace/calc.py", "/workspace/pkg", "/workspace/pkg/sub"]


def test_view_of_a_long_file_is_clipped_with_a_hint(tools: Tools, workspace: Path) -> None:
    (workspace / "long.txt").write_text("".join(f"line {i}\n" for i in range(10_000)))
    text = tools("view", path="long.txt").text
    assert len(text) < 17_000
    assert text.endswith("in order to find the line numbers of what you are looking for.</NOTE>")
    assert "  9000\tline 8999" in tools("view", path="long.txt", view_range=[9000, 9001]).text


def test_str_replace_edits_exactly_once_and_reports_the_diff(tools: Tools, source: Path) -> None:
    outcome = tools(
        "str_replace",
        path="calc.py",
        old_str="def add(a, b):\n\treturn a - b",
        new_str="def add(a, b):\n\treturn a + b",
    )
    # Tabs and the missing final newline are kept; nothing else changes.
    assert source.read_text() == SOURCE.replace("return a - b", "return a + b", 1)
    assert "has been edited" in outcome.text
    assert "     2\t\treturn a + b" in outcome.text
    (edited,) = tools.events
    assert isinstance(edited, FileEdited)
    assert "-\treturn a - b\n+\treturn a + b\n" in edited.diff


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"old_str": "return a * b", "new_str": "x"}, "did not appear verbatim in /workspace/"),
        (
            {"old_str": "return a - b", "new_str": "x"},
            r"Multiple occurrences of old_str `return a - b` in lines \[2, 6\]",
        ),
        ({"old_str": "b):\n\treturn", "new_str": "x"}, r"in lines \[1, 5\]"),
        ({"old_str": "same", "new_str": "same"}, "is the same as new_str"),
    ],
)
def test_str_replace_errors_leave_the_file_alone(
    tools: Tools, source: Path, arguments: dict[str, str], message: str
) -> None:
    with pytest.raises(ToolInputError, match=message):
        tools("str_replace", path="calc.py", **arguments)
    assert source.read_bytes() == SOURCE.encode()


def test_create_insert_and_undo(tools: Tools, workspace: Path) -> None:
    assert tools("create_file", path="pkg/new.py", file_text="a = 1\n").text == (
        "File created successfully at: /workspace/pkg/new.py"
    )
    new = workspace / "pkg" / "new.py"
    assert new.read_text() == "a = 1\n"
    with pytest.raises(ToolInputError, match=r"File already exists at: /workspace/pkg/new\.py"):
        tools("create_file", path="pkg/new.py", file_text="other")
    with pytest.raises(ToolInputError, match="is a directory"):
        tools("create_file", path="pkg", file_text="x")

    tools("insert", path="pkg/new.py", insert_line=0, new_str="# header")
    tools("insert", path="pkg/new.py", insert_line=2, new_str="b = 2\nc = 3")
    assert new.read_text() == "# header\na = 1\nb = 2\nc = 3\n"
    with pytest.raises(
        ToolInputError, match=r"should be within the range of lines of the file: \[0, 4\]"
    ):
        tools("insert", path="pkg/new.py", insert_line=5, new_str="x")

    tools("undo_edit", path="pkg/new.py")
    assert new.read_text() == "# header\na = 1\n"
    tools("undo_edit", path="pkg/new.py")
    assert new.read_text() == "a = 1\n"
    with pytest.raises(ToolInputError, match="created it; remove it with bash"):
        tools("undo_edit", path="pkg/new.py")
    with pytest.raises(ToolInputError, match=r"No edit history found for /workspace/pkg/new\.py"):
        tools("undo_edit", path="pkg/new.py")


def test_insert_after_a_last_line_without_newline(tools: Tools, source: Path) -> None:
    tools("insert", path="calc.py", insert_line=6, new_str="# end")
    assert source.read_text() == SOURCE + "\n# end\n"


FIDELITY = {
    "crlf.txt": (b"one\r\ntwo\r\nthree\r\n", "two", "TWO", b"one\r\nTWO\r\nthree\r\n"),
    "Makefile": (b"all:\n\tcc -o x x.c\n", "cc -o", "gcc -o", b"all:\n\tgcc -o x x.c\n"),
    "tail.txt": (b"a\nb", "b", "c", b"a\nc"),
    "latin1.txt": ("café = 1\n".encode("latin-1"), "1", "2", "café = 2\n".encode("latin-1")),
    "bom.txt": (b"\xef\xbb\xbfkey=1\n", "1", "2", b"\xef\xbb\xbfkey=2\n"),
}


@pytest.mark.parametrize("name", sorted(FIDELITY))
def test_edits_change_only_the_targeted_bytes(tools: Tools, workspace: Path, name: str) -> None:
    before, old, new, after = FIDELITY[name]
    (workspace / name).write_bytes(before)
    tools("str_replace", path=name, old_str=old, new_str=new)
    assert (workspace / name).read_bytes() == after
    tools("undo_edit", path=name)
    assert (workspace / name).read_bytes() == before


def test_mode_and_a_long_file_are_kept(tools: Tools, workspace: Path) -> None:
    script = workspace / "run.sh"
    script.write_text("#!/bin/sh\necho one\n")
    script.chmod(0o755)
    tools("str_replace", path="run.sh", old_str="one", new_str="two")
    assert script.stat().st_mode & 0o777 == 0o755
    lines = [f"value_{i} = {i}\n" for i in range(10_000)]
    long = workspace / "long.py"
    long.write_text("".join(lines))
    tools("str_replace", path="long.py", old_str="value_9998 = 9998\n", new_str="value_9998 = -1\n")
    lines[9998] = "value_9998 = -1\n"
    assert long.read_text() == "".join(lines)


def test_binary_files_and_paths_outside_are_refused(tools: Tools, workspace: Path) -> None:
    (workspace / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ToolInputError, match="is binary"):
        tools("str_replace", path="image.png", old_str="PNG", new_str="JPG")
    assert (workspace / "image.png").read_bytes().startswith(b"\x89PNG")
    (workspace / "link").symlink_to("/etc/passwd")
    for name, arguments in [
        ("str_replace", {"path": "link", "old_str": "root", "new_str": "toor"}),
        ("create_file", {"path": "../escape.txt", "file_text": "x"}),
        ("view", {"path": "/etc/passwd"}),
        ("insert", {"path": "link", "insert_line": 0, "new_str": "x"}),
    ]:
        with pytest.raises(ToolInputError, match="is outside the workspace"):
            tools(name, **arguments)
    assert not (workspace.parent / "escape.txt").exists()


def test_missing_files_and_directories_are_explained(tools: Tools, workspace: Path) -> None:
    (workspace / "pkg").mkdir()
    with pytest.raises(ToolInputError, match=r"does not exist\. Please provide a valid path"):
        tools("view", path="nope.py")
    with pytest.raises(ToolInputError, match="is a directory and only the `view` command"):
        tools("str_replace", path="pkg", old_str="a", new_str="b")
