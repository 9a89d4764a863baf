"""Small SWE-bench tasks built on the spot: a repository with a real bug and failing tests, its
instances in SWE-bench's schema, and recorded trajectories that fix it, fail to, or never end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from k2text import completion, tool_call, write_script

BUGGY = '''"""Tiny arithmetic."""


def add(a, b):
    return a - b


def sub(a, b):
    return a - b
'''
TESTS = """from calc import sub


def test_sub():
    assert sub(5, 3) == 2
"""
TEST_PATCH = """diff --git a/tests/test_calc.py b/tests/test_calc.py
--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -1,5 +1,9 @@
-from calc import sub
+from calc import add, sub
 
 
 def test_sub():
     assert sub(5, 3) == 2
+
+
+def test_add():
+    assert add(2, 3) == 5
"""
PROBLEM = "add(2, 3) returns -1 instead of 5. It should return the sum of its arguments."


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def make_repository(root: Path) -> tuple[Path, str]:
    """The calc repository and its base commit."""
    repo = root / "calc-repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text(BUGGY)
    (repo / "tests" / "test_calc.py").write_text(TESTS)
    (repo / "tests" / "conftest.py").write_text(
        "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent))\n"
    )
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "calc")
    return repo, git(repo, "rev-parse", "HEAD")


def instance(instance_id: str, repo: Path, base: str, **extra: object) -> dict[str, object]:
    return {
        "instance_id": instance_id,
        "repo": "example/calc",
        "base_commit": base,
        "problem_statement": PROBLEM,
        "test_patch": TEST_PATCH,
        "FAIL_TO_PASS": json.dumps(["tests/test_calc.py::test_add"]),
        "PASS_TO_PASS": json.dumps(["tests/test_calc.py::test_sub"]),
        "repo_path": str(repo),
        **extra,
    }


def replace(index: int, new: str) -> str:
    return tool_call(
        "str_replace",
        index,
        {"path": "calc.py", "old_str": "def add(a, b):\n    return a - b", "new_str": new},
    )


TRAJECTORIES = {
    # Reads the code, fixes it, checks with its own test file (left out of the patch), submits.
    "fix": [
        completion("Look at calc.py.", tool_call("bash", 0, {"command": "cat calc.py"})),
        completion("add subtracts.", replace(1, "def add(a, b):\n    return a + b")),
        completion(
            "Check it.",
            tool_call(
                "bash",
                2,
                {
                    "command": "printf 'from calc import add\\nassert add(2, 3) == 5\\n' "
                    "> test_mine.py && python3 test_mine.py && echo ok"
                },
            ),
        ),
        completion("Done.", tool_call("submit", 3, {"summary": "add now adds."})),
    ],
    # Takes a while (a slow check), then fixes it: long enough to be caught mid-run.
    "slow": [
        completion("Run the tests first.", tool_call("bash", 0, {"command": "sleep 8"})),
        completion("add subtracts.", replace(1, "def add(a, b):\n    return a + b")),
        completion("Done.", tool_call("submit", 2, {"summary": "add now adds."})),
    ],
    # Changes the wrong thing and submits.
    "wrong": [
        completion("Guess.", replace(0, "def add(a, b):\n    return a * b")),
        completion("Done.", tool_call("submit", 1, {"summary": "changed add"})),
    ],
    # Runs a command that never ends: the instance's wall clock stops it.
    "endless": [
        completion(
            "Wait for it.", tool_call("bash", 0, {"command": "while true; do sleep 1; done"})
        ),
        completion("never reached", tool_call("submit", 1, {})),
    ],
    # A "fix" whose tests never finish: the grader's timeout stops them.
    "hang": [
        completion("Fix.", replace(0, "def add(a, b):\n    while True:\n        pass")),
        completion("Done.", tool_call("submit", 1, {})),
    ],
}


def write_task_set(root: Path, kinds: list[str], **extra: object) -> tuple[Path, Path]:
    """An instances file with one instance per kind (``calc__<kind>-<n>``) and the directory of
    their recorded trajectories."""
    repo, base = make_repository(root)
    scripts = root / "trajectories"
    scripts.mkdir()
    records = []
    for number, kind in enumerate(kinds, 1):
        iid = f"calc__{kind}-{number}"
        records.append(instance(iid, repo, base, **extra))
        write_script(scripts / f"{iid}.jsonl", *TRAJECTORIES[kind])
    instances = root / "instances.jsonl"
    instances.write_text("".join(json.dumps(r) + "\n" for r in records))
    return instances, scripts
