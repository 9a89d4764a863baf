"""`ponder swebench eval` on SWE-bench 5 instances (their own eval scripts and log parsers):
its verdicts and files against SWE-bench's own harness code, imported as the harness imports it
(``swebench.harness.run_evaluation``, docker and modal included), over the same logs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from conftest import PONDER
from swe_formats import FORMATS, write_format_set

from ponder.sandbox.docker_setup import LABEL

pytestmark = pytest.mark.usefixtures("sandbox_image")

MODEL_FOLDER = "org__model"

REFERENCE = """
import json, sys
from swebench.harness.run_evaluation import get_eval_report, make_test_spec
from swebench.harness.reporting import make_run_report
instances = [json.loads(line) for line in open(sys.argv[1])]
predictions = {p["instance_id"]: p for p in map(json.loads, open(sys.argv[2]))}
reports = {}
for instance in instances:
    iid = instance["instance_id"]
    log = f"logs/run_evaluation/{sys.argv[3]}/org__model/{iid}/test_output.txt"
    try:
        open(log).close()
    except FileNotFoundError:
        continue
    spec = make_test_spec(dict(instance, image="unused"))
    reports[iid] = json.dumps(get_eval_report(spec, predictions[iid], log, True), indent=4)
make_run_report(predictions, instances, sys.argv[3], report_dir="reference")
print(json.dumps(reports))
"""


def test_verdicts_agree_with_swebench_for_three_log_formats(
    tmp_path: Path, user_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instances, preds = write_format_set(tmp_path)
    graded = subprocess.run(
        [PONDER, "swebench", "eval", "--instances", str(instances), "--predictions", str(preds),
         "--run-id", "r1", "--workers", "2", "--timeout", "20"],
        env=user_env, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert graded.returncode == 0, graded.stderr
    assert docker_client.containers.list(all=True, filters={"label": f"{LABEL}=1"}) == []
    summary = json.loads((tmp_path / f"{MODEL_FOLDER}.r1.json").read_text())
    ids = {kind: sorted(f"shop__{name}-{kind}" for name in FORMATS) for kind in
           ("fix", "wrong", "broken", "hang", "stale")}  # fmt: skip
    assert summary["resolved_ids"] == ids["fix"]
    assert summary["unresolved_ids"] == sorted(ids["wrong"] + ids["broken"])
    assert summary["error_ids"] == sorted(ids["hang"] + ids["stale"])
    assert "✓ shop__sympy-fix: resolved" in graded.stderr
    assert "shop__django-hang: error: the tests ran past 20 s" in graded.stderr
    assert "shop__pytest-stale: error: the patch does not apply" in graded.stderr

    logs = tmp_path / "logs" / "run_evaluation" / "r1" / MODEL_FOLDER
    broken = json.loads((logs / "shop__pytest-broken" / "report.json").read_text())
    assert broken["shop__pytest-broken"]["tests_status"]["PASS_TO_PASS"]["failure"] == [
        "tests/test_calc.py::test_sub"
    ]  # a collection error fails every test
    unparsed = json.loads((logs / "shop__django-broken" / "report.json").read_text())
    assert not unparsed["shop__django-broken"]["patch_successfully_applied"]  # no test ran
    assert (
        "Timeout error: 20 seconds exceeded."
        in (logs / "shop__pytest-hang" / "test_output.txt").read_text()
    )

    # SWE-bench's own code, imported whole, grades the same logs to the same bytes.
    reference = subprocess.run(
        [sys.executable, "-c", REFERENCE, str(instances), str(preds), "r1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    expected = json.loads(reference.stdout.splitlines()[-1])
    assert len(expected) == 12  # every run but the patches that do not apply
    for iid, text in expected.items():
        if iid.endswith("-hang"):  # the harness makes no report for a timeout
            assert not (logs / iid / "report.json").exists()
        else:
            assert (logs / iid / "report.json").read_text() == text, iid
    ours = (tmp_path / f"{MODEL_FOLDER}.r1.json").read_bytes()
    assert ours == (tmp_path / "reference" / f"{MODEL_FOLDER}.r1.json").read_bytes()

    # A second evaluation keeps the reports it has (errors have none: they are graded again).
    again = subprocess.run(
        [PONDER, "swebench", "eval", "--instances", str(instances), "--predictions", str(preds),
         "--run-id", "r1", "--filter", "shop__pytest-(fix|wrong)"],
        env=user_env, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert "✓ shop__pytest-fix: resolved (graded before)" in again.stderr
    assert "✗ shop__pytest-wrong: unresolved (graded before)" in again.stderr


def test_an_unknown_log_parser_is_one_clear_line(tmp_path: Path, user_env: dict[str, str]) -> None:
    instances, preds = write_format_set(tmp_path)
    records = [json.loads(line) for line in instances.read_text().splitlines()]
    records[0]["log_parser"] = "parse_log_nope"
    instances.write_text("".join(json.dumps(r) + "\n" for r in records))
    graded = subprocess.run(
        [PONDER, "swebench", "eval", "--instances", str(instances), "--predictions", str(preds)],
        env=user_env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert graded.returncode == 2
    assert graded.stderr.strip().endswith("no SWE-bench log parser 'parse_log_nope'")


def test_instances_from_parquet_and_the_hugging_face_cache(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    import pyarrow
    import pyarrow.parquet

    instances, preds = write_format_set(tmp_path)
    records = [json.loads(line) for line in instances.read_text().splitlines()]
    hub = tmp_path / "hub"
    snapshot = hub / "datasets--example--Shop" / "snapshots" / "abc123" / "data"
    snapshot.mkdir(parents=True)
    (hub / "datasets--example--Shop" / "refs").mkdir()
    (hub / "datasets--example--Shop" / "refs" / "main").write_text("abc123")
    half = len(records) // 2  # two shards, as the hub splits big datasets
    for number, part in enumerate([records[:half], records[half:]]):
        table = pyarrow.Table.from_pylist(part)
        pyarrow.parquet.write_table(table, snapshot / f"test-0000{number}-of-00002.parquet")
    env = dict(user_env, HF_HUB_CACHE=str(hub))

    def ponder_eval(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PONDER, "swebench", "eval", "--predictions", str(preds), *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    graded = ponder_eval("--instances", "example/shop", "--ids", "shop__sympy-fix")
    assert graded.returncode == 0, graded.stderr
    assert "✓ shop__sympy-fix: resolved" in graded.stderr  # from the second shard
    direct = ponder_eval(
        "--instances", str(snapshot / "test-00000-of-00002.parquet"), "--slice", "0:1"
    )
    assert "✓ shop__pytest-fix: resolved" in direct.stderr, direct.stderr
    missing = ponder_eval("--instances", "example/Nope")
    assert missing.returncode == 2
    assert "example/Nope is not in the Hugging Face cache" in missing.stderr
    assert "load_dataset('example/Nope', split='test')" in missing.stderr
    no_split = ponder_eval("--instances", "example/Shop", "--split", "dev")
    assert "has no 'dev' split" in no_split.stderr
