"""Grading predictions as ``swebench.harness.run_evaluation`` does, in ponder's sandboxes.

For each prediction with a patch, step for step as the harness's ``run_instance``: a sandbox
with the repository at ``/testbed`` (the instance's image, or ponder's with the repository
checked out); the patch applied by the harness's chain of commands; the eval script (the
instance's own, or one in the same shape for its ``test_cmd``) run with a timeout; the log
graded by SWE-bench's own ``get_eval_report`` (:mod:`ponder.runtime.swe.reference`). Files land
where the harness puts them, ``logs/run_evaluation/RUN_ID/MODEL/INSTANCE_ID/`` (``patch.diff``,
``eval.sh``, ``test_output.txt``, ``run_instance.log``, ``report.json``), and the run's summary
is the harness's ``make_run_report``. A prediction whose ``report.json`` exists is not graded
again, so a stopped evaluation resumes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ponder.runtime.swe import reference
from ponder.runtime.swe.instances import Instance, InstanceError, Prediction
from ponder.runtime.swe.workspaces import WORKDIR, InfrastructureError, instance_sandbox
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import Engine, Limits

GIT_APPLY = [
    "git apply --verbose",
    "git apply --verbose --3way",
    "git apply --verbose --reject",
    "patch --batch --forward --fuzz=5 -p1 -i",
]
"""The harness's ways to apply a patch, tried in order from a clean tree."""
PATCH_PATH, SCRIPT_PATH, OUTPUT_PATH = "/tmp/patch.diff", "/tmp/eval.sh", "/tmp/test_output.txt"
"""Where the harness puts them, but in /tmp: the sandbox's root file system is read-only."""
APPLY_PASS, APPLY_FAIL = ">>>>> Applied Patch", ">>>>> Patch Apply Failed"
LOG_ROOT = Path("logs") / "run_evaluation"

Verdict = Literal["resolved", "unresolved", "error", "empty"]


@dataclass(frozen=True)
class Graded:
    instance_id: str
    verdict: Verdict
    detail: str = ""
    """Why, for an error (the harness then writes no report.json)."""
    again: bool = False
    """The report was there from an earlier run and was not made again."""


def log_dir(root: Path, run_id: str, model: str, instance_id: str) -> Path:
    """``root/RUN_ID/MODEL/INSTANCE_ID``, the harness's layout (``/`` in a model's name is
    ``__``)."""
    return root / run_id / model_folder(model) / instance_id


def model_folder(model: str) -> str:
    folder = model.replace("/", "__")
    if folder in ("", ".", "..") or "\0" in folder:
        raise InstanceError(f"model_name_or_path {model!r} cannot name a folder")
    return folder


def check_run_id(run_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", run_id):
        raise InstanceError(f"run id {run_id!r}: letters, digits and ._+- only")
    return run_id


class _Log:
    """``run_instance.log``, in the harness's wording where its readers look for it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a", encoding="utf-8") as file:
            file.write(f"{stamp} - INFO - {message}\n")


def _put(sandbox: DockerSandbox, path: str, data: str) -> None:
    """Write a file outside the workspace (the sandbox's file tools write only inside it)."""
    sandbox.write_file(".ponder-put", data.encode())
    if sandbox.exec(f"mv -f .ponder-put {path}", 60).exit_code != 0:
        raise InfrastructureError(f"cannot write {path} in the sandbox")


def _take(sandbox: DockerSandbox, path: str) -> bytes:
    """Read a file from outside the workspace, byte for byte."""
    if sandbox.exec(f"mv -f {path} .ponder-take", 60).exit_code != 0:
        return b""
    data = sandbox.read_file(".ponder-take")
    sandbox.exec("rm -f .ponder-take", 60)
    return data


def _apply(sandbox: DockerSandbox, patch: str, log: _Log) -> bool:
    _put(sandbox, PATCH_PATH, patch)
    output = ""
    for attempt, command in enumerate(GIT_APPLY):
        if attempt:  # a failed attempt (--reject above all) leaves a partial state behind
            sandbox.exec("git checkout -- . ; git clean -fd", 120)
        run = sandbox.exec(f"{command} {PATCH_PATH}", 120)
        output = run.output
        if run.exit_code == 0:
            log(f"{APPLY_PASS}:\n{output}")
            return True
        log(f"Failed to apply patch to container: {command}")
    if sandbox.exec(f"git apply --check --reverse {PATCH_PATH}", 120).exit_code == 0:
        log(f"{APPLY_PASS}: verified already applied")
        return True
    log(f"{APPLY_FAIL}:\n{output}")
    return False


def grade_in(
    sandbox: DockerSandbox,
    spec: Any,
    prediction: Prediction,
    timeout_s: float,
    folder: Path,
) -> Graded:
    """Grade in a sandbox at the instance's base, writing the harness's files to ``folder``."""
    log = _Log(folder / "run_instance.log")
    iid = prediction.instance_id
    if not _apply(sandbox, prediction.model_patch or "", log):
        return Graded(iid, "error", "the patch does not apply")
    (folder / "eval.sh").write_text(spec.eval_script)
    _put(sandbox, SCRIPT_PATH, spec.eval_script)
    run = sandbox.exec(f"/bin/bash {SCRIPT_PATH} >{OUTPUT_PATH} 2>&1", timeout_s)
    output = _take(sandbox, OUTPUT_PATH).decode("utf-8", errors="replace")
    if run.timed_out:
        output += f"\n\nTimeout error: {timeout_s:g} seconds exceeded."
    (folder / "test_output.txt").write_text(output)
    if run.timed_out:
        log(f"Test timed out after {timeout_s:g} seconds.")
        return Graded(iid, "error", f"the tests ran past {timeout_s:g} s")
    report = reference.eval_report(spec, _as_json(prediction), folder / "test_output.txt")
    (folder / "report.json").write_text(json.dumps(report, indent=4))
    log(f"Result for {iid}: resolved: {report[iid]['resolved']}")
    return Graded(iid, "resolved" if report[iid]["resolved"] else "unresolved")


def _as_json(prediction: Prediction) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(prediction.to_json())
    return result


def grade(
    instance: Instance,
    prediction: Prediction,
    *,
    client: Engine,
    default_image: str,
    timeout_s: float,
    logs: Path,
    run_id: str,
    limits: Limits | None = None,
) -> Graded:
    """Grade one prediction into ``logs/RUN_ID/MODEL/INSTANCE_ID``."""
    iid = instance.instance_id
    if prediction.model_patch in ("", None):  # the harness's test; whitespace is a patch
        return Graded(iid, "empty")
    folder = log_dir(logs, run_id, prediction.model_name_or_path, iid)
    report = folder / "report.json"
    if report.exists():
        try:
            resolved = json.loads(report.read_text())[iid]["resolved"]
        except (ValueError, KeyError, TypeError):
            return Graded(iid, "error", f"{report} is not a report", again=True)
        return Graded(iid, "resolved" if resolved else "unresolved", again=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "patch.diff").write_text(prediction.model_patch or "")
    try:
        with instance_sandbox(
            instance, client=client, default_image=default_image, limits=limits
        ) as sandbox:
            spec = reference.test_spec(instance, sandbox.image, WORKDIR)
            return grade_in(sandbox, spec, prediction, timeout_s, folder)
    except InfrastructureError as error:
        _Log(folder / "run_instance.log")(f"Error in evaluating model for {iid}: {error}")
        return Graded(iid, "error", str(error))


def grade_all(
    instances: list[Instance],
    predictions: dict[str, Prediction],
    *,
    client: Engine,
    default_image: str,
    timeout_s: float,
    run_id: str,
    report_dir: Path,
    workers: int = 1,
    on_graded: Callable[[Graded], None] = lambda graded: None,
) -> tuple[Path, dict[str, Any]]:
    """Grade every instance that has a prediction; the harness's summary file and contents.
    Logs go to :data:`LOG_ROOT` under the working directory, where ``make_run_report`` reads
    them."""
    wanted = [i for i in instances if i.instance_id in predictions]

    def one(instance: Instance) -> Graded:
        graded = grade(
            instance,
            predictions[instance.instance_id],
            client=client,
            default_image=default_image,
            timeout_s=timeout_s,
            logs=LOG_ROOT,
            run_id=run_id,
        )
        on_graded(graded)
        return graded

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade") as pool:
        list(pool.map(one, wanted))
    submitted = {iid: _as_json(p) for iid, p in predictions.items()}
    dataset = [{"instance_id": i.instance_id} for i in instances]
    return reference.run_report(submitted, dataset, run_id, report_dir)
