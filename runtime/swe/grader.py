"""An offline grader with SWE-bench's rules and report formats.

For each prediction: a fresh sandbox with the repository at ``base_commit``; the patch applied
(``git apply``, then ``patch --fuzz`` as SWE-bench falls back to); the instance's ``test_patch``
applied; its tests run (``test_cmd``, else ``pytest -rA`` on the test patch's files) with a
timeout; the ``-rA`` lines parsed. Resolved means every FAIL_TO_PASS and every PASS_TO_PASS test
passed. As in SWE-bench 5, the test command's own exit code is checked too: a non-zero exit with
no failing test in the log is an error, not a pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.runtime.swe.instances import Instance, Prediction
from ponder.runtime.swe.patches import touched_files
from ponder.runtime.swe.workspaces import InfrastructureError, instance_sandbox
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import Engine, Limits

PASSING = ("PASSED", "XPASS", "XFAIL")
STATUSES = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS")
PATCH_FILE = ".ponder-eval.patch"
OUTPUT_FILE = ".ponder-test-output.txt"
APPLY = f"git apply -v {PATCH_FILE} 2>&1 || patch --batch --fuzz=5 -p1 -i {PATCH_FILE} 2>&1"


def parse_pytest_log(text: str) -> dict[str, str]:
    """Test id -> status from pytest's ``-rA`` summary lines (SWE-bench's pytest parser)."""
    statuses: dict[str, str] = {}
    for line in text.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if not line.startswith(STATUSES):
            continue
        if line.startswith("FAILED") or line.startswith("ERROR"):
            line = line.split(" - ", 1)[0]
        words = line.split()
        if len(words) >= 2:
            statuses[words[1]] = words[0]
    return statuses


def test_command(instance: Instance) -> str:
    if instance.test_cmd:
        return instance.test_cmd
    files = [f for f in touched_files(instance.test_patch) if f.endswith(".py")]
    return " ".join(["pytest", "--no-header", "-rA", "--tb=no", "-p", "no:cacheprovider", *files])


@dataclass
class Report:
    instance_id: str
    patch_is_None: bool = False
    patch_exists: bool = False
    patch_successfully_applied: bool = False
    resolved: bool = False
    tests_status: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    test_exit_code: int | None = None
    timed_out: bool = False
    error: str | None = None
    """Why it could not be graded (SWE-bench's error_ids): infrastructure, a timeout, a
    test patch that does not apply, or an exit code the log does not explain."""

    def as_json(self) -> dict[str, Any]:
        body = {k: v for k, v in self.__dict__.items() if k != "instance_id"}
        return {self.instance_id: body}


def _split(tests: list[str], statuses: dict[str, str]) -> dict[str, list[str]]:
    passed = [t for t in tests if statuses.get(t) in PASSING]
    return {"success": passed, "failure": [t for t in tests if t not in passed]}


def grade_in(
    sandbox: DockerSandbox,
    instance: Instance,
    patch: str,
    timeout_s: float,
    keep: Callable[[str, str], None],
) -> Report:
    """Grade ``patch`` in a sandbox at the instance's base; ``keep(name, text)`` saves a log."""
    report = Report(instance.instance_id, patch_exists=True)
    sandbox.write_file(PATCH_FILE, patch.encode())
    applied = sandbox.exec(APPLY, 120)
    keep("apply.log", applied.output)
    if applied.exit_code != 0:  # a patch that does not apply is unresolved, not an error
        return report
    report.patch_successfully_applied = True
    if instance.test_patch:
        sandbox.write_file(PATCH_FILE, instance.test_patch.encode())
        if sandbox.exec(f"git apply -v {PATCH_FILE}", 120).exit_code != 0:
            report.error = "the instance's test_patch does not apply on top of the prediction"
            return report
    sandbox.exec(f"rm -f {PATCH_FILE}", 30)
    run = sandbox.exec(f"{test_command(instance)} >{OUTPUT_FILE} 2>&1", timeout_s)
    output = sandbox.read_file(OUTPUT_FILE).decode("utf-8", errors="replace")
    keep("test_output.txt", output)
    report.test_exit_code = run.exit_code
    if run.timed_out:
        report.timed_out = True
        report.error = f"the tests ran past {timeout_s:.0f} s"
        return report
    statuses = parse_pytest_log(output)
    report.tests_status = {
        "FAIL_TO_PASS": _split(instance.fail_to_pass, statuses),
        "PASS_TO_PASS": _split(instance.pass_to_pass, statuses),
        "FAIL_TO_FAIL": {"success": [], "failure": []},
        "PASS_TO_FAIL": {"success": [], "failure": []},
    }
    if run.exit_code != 0 and not any(s in ("FAILED", "ERROR") for s in statuses.values()):
        report.error = f"the test command exited {run.exit_code} but the log shows no failure"
        return report
    report.resolved = all(not part["failure"] for part in report.tests_status.values())
    return report


def grade(
    instance: Instance,
    prediction: Prediction | None,
    *,
    client: Engine,
    default_image: str,
    timeout_s: float,
    log_dir: Path,
    limits: Limits | None = None,
) -> Report:
    """Grade one prediction; writes ``patch.diff``, ``test_output.txt`` and ``report.json``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    patch = prediction.model_patch if prediction else None
    if patch is None or not patch.strip():
        report = Report(instance.instance_id, patch_is_None=patch is None)
    else:
        (log_dir / "patch.diff").write_text(patch)

        def keep(name: str, text: str) -> None:
            (log_dir / name).write_text(text)

        try:
            with instance_sandbox(
                instance, client=client, default_image=default_image, limits=limits
            ) as sandbox:
                report = grade_in(sandbox, instance, patch, timeout_s, keep)
        except InfrastructureError as error:
            report = Report(instance.instance_id, patch_exists=True, error=str(error))
    (log_dir / "report.json").write_text(json.dumps(report.as_json(), indent=2) + "\n")
    return report


def summarise(
    instances: list[Instance], predictions: dict[str, Prediction], reports: list[Report]
) -> dict[str, Any]:
    """SWE-bench's run summary (schema version 2), plus ``timed_out_ids``."""
    by_id = {r.instance_id: r for r in reports}
    ids = [i.instance_id for i in instances]
    submitted = [i for i in ids if i in predictions]
    empty = [i for i in submitted if not (predictions[i].model_patch or "").strip()]
    errors = [i for i in submitted if i in by_id and by_id[i].error]
    resolved = [i for i in submitted if i in by_id and by_id[i].resolved and not by_id[i].error]
    completed = [i for i in submitted if i in by_id and i not in empty and i not in errors]
    unresolved = [i for i in completed if i not in resolved]
    return {
        "total_instances": len(ids),
        "submitted_instances": len(submitted),
        "completed_instances": len(completed),
        "resolved_instances": len(resolved),
        "unresolved_instances": len(unresolved),
        "empty_patch_instances": len(empty),
        "error_instances": len(errors),
        "completed_ids": sorted(completed),
        "incomplete_ids": sorted(i for i in ids if i not in submitted),
        "empty_patch_ids": sorted(empty),
        "submitted_ids": sorted(submitted),
        "resolved_ids": sorted(resolved),
        "unresolved_ids": sorted(unresolved),
        "error_ids": sorted(errors),
        "timed_out_ids": sorted(i for i in errors if by_id[i].timed_out),
        "schema_version": 2,
    }


def grade_all(
    instances: list[Instance],
    predictions: dict[str, Prediction],
    *,
    client: Engine,
    default_image: str,
    timeout_s: float,
    report_dir: Path,
    workers: int = 1,
    on_report: Callable[[Report], None] = lambda report: None,
) -> dict[str, Any]:
    """Grade every instance that has a prediction; writes and returns the summary."""

    def one(instance: Instance) -> Report:
        report = grade(
            instance,
            predictions.get(instance.instance_id),
            client=client,
            default_image=default_image,
            timeout_s=timeout_s,
            log_dir=report_dir / instance.instance_id,
        )
        on_report(report)
        return report

    wanted = [i for i in instances if i.instance_id in predictions]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade") as pool:
        reports = list(pool.map(one, wanted))
    summary = summarise(instances, predictions, reports)
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
