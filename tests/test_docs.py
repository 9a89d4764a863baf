"""The design documents stay true to the code: every file and name they point at exists, and
nothing in the project points at a file outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def test_every_file_the_architecture_names_exists() -> None:
    text = ARCHITECTURE.read_text()
    paths = set(re.findall(r"`((?:app|runtime|model|sandbox|tests|docs|bench)/[\w/.]*)", text))
    assert len(paths) > 20
    missing = sorted(p for p in paths if not (ROOT / p.split(":")[0]).exists())
    assert missing == []


def test_every_function_the_architecture_places_is_where_it_says() -> None:
    """``name`` (`file.py`) and `file.py:name` pairs: the name is defined in that file."""
    text = ARCHITECTURE.read_text()
    pairs = re.findall(r"`(?:\w+\.)?(\w+)`\s+\(`([\w/]+\.py)`\)", text)
    pairs += [(name, path) for path, name in re.findall(r"`([\w/]+\.py):(\w+)`", text)]
    assert len(pairs) > 10
    wrong = [
        (name, path)
        for name, path in pairs
        if not re.search(rf"^\s*(?:def|class) {name}\b", (ROOT / path).read_text(), re.M)
    ]
    assert wrong == []


def test_nothing_points_outside_the_repository() -> None:
    # The names of the design notes the project began from, which live outside it. Spelled in
    # pieces so that this test is not itself a pointer to them.
    outside = ["DESIGN" + ".md", "../" + "shared", "shared/" + "reference", "research" + "-"]
    pointers = re.compile("|".join(re.escape(name) for name in outside))
    folders = ["app", "runtime", "model", "sandbox", "themes", "tests", "docs", "bench", ".ci"]
    files = [p for folder in folders for p in (ROOT / folder).rglob("*") if p.is_file()]
    files += [p for p in ROOT.iterdir() if p.is_file()]
    found = [
        str(path.relative_to(ROOT))
        for path in files
        if "__pycache__" not in path.parts and pointers.search(path.read_text(errors="replace"))
    ]
    assert found == []
