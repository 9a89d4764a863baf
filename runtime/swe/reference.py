"""SWE-bench's own grading code (the ``swebench`` package, ``pip install 'ponder[swebench]'``).

ponder runs the tests itself, in its sandboxes; the verdict comes from the reference harness:
its log parsers (``PARSER_REGISTRY``), ``get_eval_report`` and ``make_run_report``, so a
verdict here is the verdict ``swebench.harness.run_evaluation`` gives for the same log.

``swebench/harness/__init__.py`` imports ``docker_utils`` and ``modal_eval`` (and through them
docker, modal and datasets) before any of its modules can be used. The parsers and the grading
need none of that, so :func:`harness` registers a bare ``swebench.harness`` package over the
real folder and imports only ``grading``: 0.06 s, no modal, no Docker client.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import sys
import types
from functools import cache
from pathlib import Path
from typing import Any

from ponder.runtime.swe.instances import INSTALL, Instance, InstanceError

START, END = ">>>>> Start Test Output", ">>>>> End Test Output"
EXIT_CODE, EXIT_CODE_VARIABLE = ">>>>> Test Exit Code", "SWEBENCH_TEST_EXIT_CODE"
DEFAULT_PARSER = "parse_log_pytest"


@cache
def harness() -> types.SimpleNamespace:
    """``swebench``'s grading modules; InstanceError (with the install line) when missing."""
    try:
        package = importlib.util.find_spec("swebench.harness")
    except ModuleNotFoundError:
        package = None
    if package is None or package.submodule_search_locations is None:
        raise InstanceError(f"grading uses SWE-bench's own code: {INSTALL}")
    if "swebench.harness" not in sys.modules:
        bare = types.ModuleType("swebench.harness")
        bare.__path__ = list(package.submodule_search_locations)
        sys.modules["swebench.harness"] = bare
    grading = importlib.import_module("swebench.harness.grading")
    return types.SimpleNamespace(
        grading=grading,
        parsers=importlib.import_module("swebench.harness.log_parsers").PARSER_REGISTRY,
        TestSpec=importlib.import_module("swebench.types").TestSpec,
        heredoc=importlib.import_module("swebench.utils").generate_heredoc_delimiter,
    )


def check_parser(instance: Instance) -> None:
    """InstanceError when the instance names a log parser SWE-bench does not have."""
    name = instance.log_parser or DEFAULT_PARSER
    if name not in harness().parsers:
        raise InstanceError(f"{instance.instance_id}: no SWE-bench log parser {name!r}")


def eval_lines(instance: Instance, workdir: str) -> list[str]:
    """The eval script's commands: the instance's own (SWE-bench 5's ``eval_script``), else
    the same shape written for its ``test_cmd``: test files reset to the base, the test patch
    applied, the tests run between the markers, the test files reset again."""
    if instance.eval_script:
        lines = instance.eval_script.strip().split("\n")
        return [line for line in lines if line not in ("#!/bin/bash", "set -uxo pipefail")]
    from ponder.runtime.swe.patches import touched_files

    tests = touched_files(instance.test_patch)
    reset = ["git", "checkout", instance.base_commit or "HEAD", "--", *tests]
    lines = [f"cd {workdir}"]
    if tests:
        lines.append(" ".join(_quoted(word) for word in reset))
        delimiter = harness().heredoc(instance.test_patch)
        lines.append(f"git apply -v - <<'{delimiter}'\n{instance.test_patch}\n{delimiter}")
    lines += [f": '{START}'", instance.test_cmd or default_test_command(tests), f": '{END}'"]
    if tests:
        lines.append(" ".join(_quoted(word) for word in reset))
    return lines


def default_test_command(test_files: list[str]) -> str:
    files = [_quoted(f) for f in test_files if f.endswith(".py")]
    command = ["pytest", "--no-header", "-rA", "--tb=short", "-p", "no:cacheprovider"]
    return " ".join([*command, *files])


def _quoted(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def record_exit_code(lines: list[str]) -> list[str]:
    """As swebench's ``record_test_exit_code``: the test command's own status is echoed after
    the end marker, so a log that claims success over a failing exit is caught."""
    for index, line in enumerate(lines):
        if END in line:
            return [
                *lines[:index],
                f"{EXIT_CODE_VARIABLE}=$?",
                line,
                f'echo "{EXIT_CODE}: ${EXIT_CODE_VARIABLE}"',
                *lines[index + 1 :],
            ]
    return lines


def test_spec(instance: Instance, image: str, workdir: str) -> Any:
    """The instance as ``swebench.types.TestSpec``, as ``make_test_spec`` builds it (which
    lives in ``swebench.harness.utils``, a module that loads ``datasets`` and a ``.env``)."""
    return harness().TestSpec(
        instance_id=instance.instance_id,
        image=image,
        eval_script_list=record_exit_code(eval_lines(instance, workdir)),
        repo=instance.repo,
        version=instance.version,
        FAIL_TO_PASS=instance.fail_to_pass,
        PASS_TO_PASS=instance.pass_to_pass,
        log_parser=instance.log_parser or DEFAULT_PARSER,
        eval_type=instance.eval_type or "pass_and_fail",
    )


def eval_report(spec: Any, prediction: dict[str, Any], test_output: Path) -> dict[str, Any]:
    """``get_eval_report`` with the tests' status, as run_evaluation writes it."""
    report: dict[str, Any] = harness().grading.get_eval_report(
        test_spec=spec,
        prediction=prediction,
        test_log_path=str(test_output),
        include_tests_status=True,
    )
    return report


def run_report(
    predictions: dict[str, dict[str, Any]], dataset: list[dict[str, Any]], run_id: str, to: Path
) -> tuple[Path, dict[str, Any]]:
    """The run's summary, written by swebench's own ``make_run_report`` (it reads the reports
    under ``logs/run_evaluation`` in the working directory, as the harness lays them out)."""
    harness()
    reporting = importlib.import_module("swebench.harness.reporting")
    with contextlib.redirect_stdout(io.StringIO()):  # its tally; ponder prints its own
        path = Path(reporting.make_run_report(predictions, dataset, run_id, report_dir=str(to)))
    return path, json.loads(path.read_text())
