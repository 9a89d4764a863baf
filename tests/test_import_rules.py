"""The dependency rule (docs/architecture.md, "Layers") is checked by import-linter with the
contracts in pyproject.

These tests run that check on small trees shaped like ponder, to show it fails when the rule is
broken and passes when it holds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint(tree: Path, imports: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for package in ("app", "runtime", "model", "sandbox"):
        (tree / "ponder" / package).mkdir(parents=True)
        (tree / "ponder" / package / "__init__.py").write_text("")
        (tree / "ponder" / package / "code.py").write_text(imports.get(package, ""))
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(REPO_ROOT / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("package", "statement"),
    [
        ("runtime", "import textual"),
        ("model", "from rich.text import Text"),
        ("sandbox", "import prompt_toolkit"),
        ("model", "from ponder.sandbox import code"),
        ("sandbox", "import ponder.model.code"),
        ("runtime", "from ponder.app import code"),
    ],
)
def test_breaking_the_rule_fails_the_check(tmp_path: Path, package: str, statement: str) -> None:
    result = lint(tmp_path, {package: statement})
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_the_allowed_direction_passes(tmp_path: Path) -> None:
    result = lint(
        tmp_path,
        {
            "app": "import textual\nfrom ponder.runtime import code",
            "runtime": "from ponder.model import code\nfrom ponder.sandbox import code as c",
        },
    )
    assert result.returncode == 0, result.stdout
