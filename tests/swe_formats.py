"""SWE-bench 5 instances (with ``eval_script`` and ``log_parser``) on a repository built on the
spot, whose tests run under three runners with the output formats SWE-bench grades: pytest's
``-rA`` summary, Django's runner (unittest's verbose lines, as ``tests/runtests.py`` prints
them) and SymPy's ``bin/test``. Each has predictions that fix the bug, get it wrong, break the
import, never finish, or do not apply."""

from __future__ import annotations

import json
from pathlib import Path

from swe_tasks import git

CALC = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"
PYTEST_TESTS = "from calc import sub\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n"
UNIT_TESTS = (
    "import unittest\n\nfrom calc import sub\n\n\nclass CalcTests(unittest.TestCase):\n"
    "    def test_sub(self):\n        self.assertEqual(sub(5, 3), 2)\n"
)
SYMPY_TESTS = PYTEST_TESTS
RUNTESTS = """import sys, unittest
sys.path.insert(0, ".")
suite = unittest.defaultTestLoader.loadTestsFromName("tests.test_unit")
result = unittest.TextTestRunner(verbosity=2).run(suite)
sys.exit(not result.wasSuccessful())
"""
BIN_TEST = '''"""SymPy's bin/test output: a line per test (ok, F, E), then a block per failure."""
import importlib, sys, traceback
sys.path.insert(0, ".")
path = sys.argv[1]
module = importlib.import_module(path[:-3].replace("/", "."))
print(f"{path}[{sum(n.startswith('test_') for n in dir(module))}] ")
failed = []
for name in sorted(n for n in dir(module) if n.startswith("test_")):
    try:
        getattr(module, name)()
        print(f"{name} ok")
    except AssertionError:
        print(f"{name} F"); failed.append(name)
    except Exception:
        print(f"{name} E"); failed.append(name)
for name in failed:
    print(f"________________ {path}:{name} ________________")
sys.exit(1 if failed else 0)
'''

FORMATS = {
    # name: (log parser, test file, command, test added by the test patch, FAIL_TO_PASS,
    #        PASS_TO_PASS)
    "pytest": (
        "parse_log_pytest",
        "tests/test_calc.py",
        "pytest --no-header -rA --tb=no -p no:cacheprovider tests/test_calc.py",
        "\n\ndef test_add():\n    from calc import add\n    assert add(2, 3) == 5\n",
        ["tests/test_calc.py::test_add"],
        ["tests/test_calc.py::test_sub"],
    ),
    "django": (
        "parse_log_django",
        "tests/test_unit.py",
        "python3 tests/runtests.py",
        "\n    def test_add(self):\n        from calc import add\n"
        "        self.assertEqual(add(2, 3), 5)\n",
        ["test_add (tests.test_unit.CalcTests.test_add)"],
        ["test_sub (tests.test_unit.CalcTests.test_sub)"],
    ),
    "sympy": (
        "parse_log_sympy",
        "tests/test_sym.py",
        "python3 bin/test tests/test_sym.py",
        "\n\ndef test_add():\n    from calc import add\n    assert add(2, 3) == 5\n",
        ["test_add"],
        ["test_sub"],
    ),
}
FIXES = {
    "fix": "return a + b",
    "wrong": "return a * b",
    "broken": "return a +",  # a syntax error: every test errors
    "hang": "while True: pass",
}
"""Predictions by kind; ``stale`` is a patch against lines that are not there."""


def _diff(repo: Path, path: str, text: str) -> str:
    original = (repo / path).read_text()
    (repo / path).write_text(text)
    patch = git(repo, "diff") + "\n"
    (repo / path).write_text(original)
    return patch


def eval_script(base: str, test_file: str, test_patch: str, command: str) -> str:
    """An eval script in the shape SWE-bench 5's datasets carry."""
    return "\n".join(
        [
            "#!/bin/bash",
            "set -uxo pipefail",
            "cd /testbed",
            f"git checkout {base} {test_file}",
            f"git apply -v - <<'EOF_114329324912'\n{test_patch}\nEOF_114329324912",
            ": '>>>>> Start Test Output'",
            command,
            ": '>>>>> End Test Output'",
            f"git checkout {base} {test_file}",
        ]
    )


def write_format_set(root: Path) -> tuple[Path, Path]:
    """An instances file (one instance per format and kind, ``shop__FORMAT-KIND``) and a
    predictions file with a patch for each."""
    repo = root / "shop"
    (repo / "tests").mkdir(parents=True)
    (repo / "bin").mkdir()
    (repo / "calc.py").write_text(CALC)
    (repo / "tests" / "__init__.py").write_text("")
    (repo / "tests" / "conftest.py").write_text(
        "import sys, pathlib\nsys.path.insert(0, str(pathlib.Path(__file__).parent.parent))\n"
    )
    (repo / "tests" / "test_calc.py").write_text(PYTEST_TESTS)
    (repo / "tests" / "test_unit.py").write_text(UNIT_TESTS)
    (repo / "tests" / "test_sym.py").write_text(SYMPY_TESTS)
    (repo / "tests" / "runtests.py").write_text(RUNTESTS)
    (repo / "bin" / "test").write_text(BIN_TEST)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "shop")
    base = git(repo, "rev-parse", "HEAD")
    patches = {
        kind: _diff(repo, "calc.py", CALC.replace("return a - b", new, 1))
        for kind, new in FIXES.items()
    }
    patches["stale"] = patches["fix"].replace("-    return a - b", "-    return a / b")
    records, predictions = [], []
    for name, (parser, test_file, command, added, f2p, p2p) in FORMATS.items():
        test_patch = _diff(repo, test_file, (repo / test_file).read_text() + added)
        for kind, patch in patches.items():
            iid = f"shop__{name}-{kind}"
            records.append(
                {
                    "instance_id": iid,
                    "repo": "example/shop",
                    "base_commit": base,
                    "problem_statement": "add(2, 3) returns -1 instead of 5.",
                    "test_patch": test_patch,
                    "FAIL_TO_PASS": json.dumps(f2p),
                    "PASS_TO_PASS": json.dumps(p2p),
                    "version": "1.0",
                    "eval_script": eval_script(base, test_file, test_patch, command),
                    "log_parser": parser,
                    "eval_type": "pass_and_fail",
                    "repo_path": str(repo),
                }
            )
            predictions.append(
                {"instance_id": iid, "model_name_or_path": "org/model", "model_patch": patch}
            )
    instances = root / "instances.jsonl"
    instances.write_text("".join(json.dumps(r) + "\n" for r in records))
    preds = root / "preds.jsonl"
    preds.write_text("".join(json.dumps(p) + "\n" for p in predictions))
    return instances, preds
