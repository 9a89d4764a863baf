"""`ponder swebench` and `ponder swebench eval` as a user runs them: real sandboxes, real git
repositories with a real bug, recorded trajectories for the model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest
from conftest import PONDER
from docker_hosts import ENGINE_SOCKET, ssh_docker_host, tcp_docker_host
from swe_tasks import TEST_PATCH, make_repository, write_task_set

from ponder.runtime.swe.instances import load_instances, select
from ponder.runtime.swe.patches import filter_patch
from ponder.sandbox.docker_setup import LABEL

pytestmark = pytest.mark.usefixtures("sandbox_image")


def ponder(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PONDER, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def containers_of(client: docker.DockerClient, pid: int) -> list[str]:
    """ponder's containers still there that the process ``pid`` made."""
    found = client.containers.list(
        all=True, sparse=True, filters={"label": [f"{LABEL}=1", f"io.ponder.owner_pid={pid}"]}
    )
    return [c.id or "" for c in found]


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_batch_runs_grades_and_resumes(
    tmp_path: Path, user_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instances, scripts = write_task_set(tmp_path, ["fix", "wrong", "endless", "hang"])
    preds = tmp_path / "preds.jsonl"
    common = ["--instances", str(instances), "--out", str(preds)]
    batch = subprocess.Popen(
        [PONDER, "swebench", *common, "--model", f"scripted:{scripts}", "--workers", "2",
         "--timeout", "15"],
        env=user_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _, err = batch.communicate(timeout=600)
    assert batch.returncode == 0, err
    assert containers_of(docker_client, batch.pid) == []

    predictions = {p["instance_id"]: p for p in lines(preds)}
    assert set(predictions) == {"calc__fix-1", "calc__wrong-2", "calc__endless-3", "calc__hang-4"}
    fix = str(predictions["calc__fix-1"]["model_patch"])
    assert "-    return a - b\n+    return a + b" in fix
    assert "test_mine.py" not in fix  # the agent's own test file stays out
    assert predictions["calc__endless-3"]["model_patch"] == ""
    summary = json.loads((tmp_path / "preds.summary.json").read_text())
    assert summary["timed_out_ids"] == ["calc__endless-3"]
    assert summary["error_ids"] == []
    session = tmp_path / "preds.logs" / "calc__fix-1" / "session.jsonl"
    assert '"type":"run_finished","reason":"submitted"' in session.read_text()

    graded = ponder(
        "swebench", "eval", "--instances", str(instances), "--predictions", str(preds),
        "--workers", "2", "--timeout", "20", env=user_env, cwd=tmp_path,
    )  # fmt: skip
    assert graded.returncode == 0, graded.stderr
    model = "ponder__trajectories"  # no path of this machine, no ":" (issue 24, 19)
    result = json.loads((tmp_path / f"{model}.preds.json").read_text())
    assert result["resolved_ids"] == ["calc__fix-1"]
    assert result["unresolved_ids"] == ["calc__wrong-2"]
    assert result["empty_patch_ids"] == ["calc__endless-3"]
    assert result["error_ids"] == ["calc__hang-4"]  # its tests ran past the timeout
    assert "calc__hang-4: error: the tests ran past 20 s" in graded.stderr
    logs = tmp_path / "logs" / "run_evaluation" / "preds" / model
    report = json.loads((logs / "calc__fix-1" / "report.json").read_text())["calc__fix-1"]
    assert report["resolved"]
    assert report["tests_status"]["FAIL_TO_PASS"]["success"] == ["tests/test_calc.py::test_add"]
    why = (logs / "calc__wrong-2" / "test_output.txt").read_text()
    assert "assert add(2, 3) == 5" in why  # the failure's traceback is kept (--tb=short)
    wrong = json.loads((logs / "calc__wrong-2" / "report.json").read_text())
    assert wrong["calc__wrong-2"]["tests_status"]["FAIL_TO_PASS"]["failure"] == [
        "tests/test_calc.py::test_add"
    ]

    # A second run skips what has a prediction; --redo runs it again.
    again = ponder(
        *["swebench", *common, "--model", f"scripted:{scripts}"], env=user_env, cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert "0 run, 4 already done" in again.stderr
    model = ["--model", f"scripted:{scripts}"]
    redo = ponder(
        "swebench", *common, *model, "--ids", "calc__wrong-2", "--redo", env=user_env, cwd=tmp_path
    )
    assert "1 run, 0 already done" in redo.stderr
    assert [p["instance_id"] for p in lines(preds)][-1] == "calc__wrong-2"
    whole = json.loads((tmp_path / "preds.summary.json").read_text())  # every run's results
    assert whole["total_instances"] == 4
    assert whole["timed_out_ids"] == ["calc__endless-3"]


def test_sigterm_keeps_what_finished_and_leaves_no_container(
    tmp_path: Path, user_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instances, scripts = write_task_set(tmp_path, ["fix", "endless", "endless", "fix"])
    preds = tmp_path / "preds.jsonl"
    batch = subprocess.Popen(
        [PONDER, "swebench", "--instances", str(instances), "--out", str(preds),
         "--model", f"scripted:{scripts}", "--workers", "2", "--timeout", "600"],
        env=user_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if preds.exists() and "calc__fix-1" in preds.read_text():
            break
        time.sleep(0.5)
    time.sleep(2)  # the endless instance is running its command now
    batch.send_signal(signal.SIGTERM)
    _, err = batch.communicate(timeout=120)
    assert batch.returncode == 130, err
    assert containers_of(docker_client, batch.pid) == []
    done = [p["instance_id"] for p in lines(preds)]
    assert "calc__fix-1" in done
    assert (
        "calc__endless-2" not in done
    )  # stopped instances get no prediction: the next run retries
    summary = json.loads((tmp_path / "preds.summary.json").read_text())
    assert "calc__endless-2" in summary["stopped_ids"]


def test_sigkill_then_cleanup_leaves_nothing_behind(
    tmp_path: Path, user_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instances, scripts = write_task_set(tmp_path, ["endless", "endless"])
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = user_env | {"TMPDIR": str(temporary)}
    batch = subprocess.Popen(
        [PONDER, "swebench", "--instances", str(instances), "--out", str(tmp_path / "p.jsonl"),
         "--model", f"scripted:{scripts}", "--workers", "2", "--timeout", "600"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(containers_of(docker_client, batch.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(containers_of(docker_client, batch.pid)) == 2
    batch.kill()
    batch.wait()
    assert len(list(temporary.glob(f"ponder-swe-{batch.pid}.*"))) == 2  # each instance's copy
    cleanup = ponder("sandbox", "cleanup", env=env, cwd=tmp_path)
    assert cleanup.returncode == 0, cleanup.stderr
    assert "removed 2 leftover temporary folder(s)" in cleanup.stdout
    assert containers_of(docker_client, batch.pid) == []
    assert list(temporary.iterdir()) == []


def test_an_instance_id_that_is_a_path_is_refused(tmp_path: Path, user_env: dict[str, str]) -> None:
    instances = tmp_path / "tasks.jsonl"
    instances.write_text(json.dumps({"instance_id": "../../X", "problem_statement": "p"}) + "\n")
    out = tmp_path / "run" / "preds.jsonl"
    out.parent.mkdir()
    ran = ponder(
        "swebench", "--instances", str(instances), "--out", str(out), "--model", "scripted:x",
        env=user_env, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 2
    assert "instance_id '../../X' cannot name a folder" in ran.stderr
    assert not (tmp_path / "X").exists()
    assert not list(tmp_path.glob("**/result.json"))
    # An id of the wrong type is named as such, not as missing.
    instances.write_text(json.dumps({"instance_id": 5, "problem_statement": "p"}) + "\n")
    ran = ponder(
        "swebench", "--instances", str(instances), "--out", str(out), "--model", "scripted:x",
        env=user_env, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 2
    assert "instance_id must be a string, not int" in ran.stderr


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b'{"instance_id": "a-1", "problem_statement": "p\xff"}\n', "is not UTF-8 text (byte"),
        (
            b'{"instance_id": "a-1", "problem_statement": "p", "image_name": 5}\n',
            "a-1: image_name must be a string, not int",
        ),
        (
            b'{"instance_id": "a-1", "problem_statement": "p", "repo_path": ["a"]}\n',
            "a-1: repo_path must be a string, not list",
        ),
        (b'{"instance_id": "a-1", "problem_statement": "p"}\n{oops\n', "line 2 is not JSON"),
    ],
    ids=["not-utf8", "image-number", "repo-path-list", "bad-line"],
)
def test_a_malformed_instances_file_is_one_clear_line(
    tmp_path: Path, user_env: dict[str, str], content: bytes, said: str
) -> None:
    instances = tmp_path / "tasks.jsonl"
    instances.write_bytes(content)
    ran = ponder(
        "swebench", "--instances", str(instances), "--out", str(tmp_path / "preds.jsonl"),
        "--model", "scripted:x", env=user_env, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr
    (line,) = ran.stderr.strip().splitlines()
    assert said in line


def test_filter_slice_and_shard_pick_instances_as_mini_swe_agent_does(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    records = [{"instance_id": f"{repo}__{repo}-{n}", "problem_statement": "p"}
               for repo in ("django", "sympy") for n in range(1, 6)]  # fmt: skip
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    every = load_instances(path)
    picked = select(every, pattern="django", span="1:5", shard="2/2")
    assert [i.instance_id for i in picked] == ["django__django-3", "django__django-5"]
    assert select(every, span=":2") == every[:2]
    shards = [select(every, shard=f"{k}/3") for k in (1, 2, 3)]
    assert sorted(i.instance_id for s in shards for i in s) == sorted(i.instance_id for i in every)
    for flag, value in (("--shard", "0/3"), ("--slice", "a:b"), ("--filter", "(")):
        ran = ponder(
            "swebench", "--instances", str(path), flag, value, "--model", "scripted:x",
            "--out", str(tmp_path / "preds.jsonl"), env=user_env, cwd=tmp_path,
        )  # fmt: skip
        assert ran.returncode == 2
        assert ran.stderr.strip().splitlines()[-1].startswith(f"ponder: {flag} ")


def test_an_instance_whose_image_holds_the_repository(
    tmp_path: Path,
    user_env: dict[str, str],
    docker_client: docker.DockerClient,
    sandbox_image: str,
) -> None:
    instances, scripts = write_task_set(tmp_path, ["fix"])
    (tmp_path / "Dockerfile").write_text(f"FROM {sandbox_image}\nCOPY calc-repo /testbed\n")
    tag = "ponder-test-calc:latest"
    docker_client.images.build(path=str(tmp_path), tag=tag, rm=True)
    try:
        record = lines(instances)[0]
        del record["repo_path"]
        record["image"] = tag  # SWE-bench 5's name for it
        missing = dict(record, instance_id="calc__missing-2", image="ponder-test-nope:1")
        instances.write_text(json.dumps(record) + "\n" + json.dumps(missing) + "\n")
        (scripts / "calc__missing-2.jsonl").write_text((scripts / "calc__fix-1.jsonl").read_text())
        preds = tmp_path / "preds.jsonl"
        batch = ponder(
            "swebench", "--instances", str(instances), "--out", str(preds),
            "--model", f"scripted:{scripts}", env=user_env, cwd=tmp_path,
        )  # fmt: skip
        assert batch.returncode == 1  # an infrastructure error
        assert "calc__missing-2: error (image ponder-test-nope:1 is not on this Docker engine" in (
            batch.stderr
        )
        assert [p["instance_id"] for p in lines(preds)] == ["calc__fix-1"]  # none for the error
        graded = ponder(
            "swebench", "eval", "--instances", str(instances), "--predictions", str(preds),
            env=user_env, cwd=tmp_path,
        )  # fmt: skip
        model = "ponder__trajectories"  # no path of this machine, no ":" (issue 24, 19)
        result = json.loads((tmp_path / f"{model}.preds.json").read_text())
        assert result["resolved_ids"] == ["calc__fix-1"], graded.stderr
        assert result["incomplete_ids"] == ["calc__missing-2"]
    finally:
        docker_client.images.remove(tag, force=True)


def test_predictions_load_with_swebench_itself(tmp_path: Path, user_env: dict[str, str]) -> None:
    instances, scripts = write_task_set(tmp_path, ["fix", "wrong"])
    preds = tmp_path / "preds.jsonl"
    batch = ponder(
        "swebench", "--instances", str(instances), "--out", str(preds),
        "--model", f"scripted:{scripts}", env=user_env, cwd=tmp_path,
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    check = (
        "import sys\n"
        "from swebench.harness.utils import get_predictions_from_file\n"
        "preds = get_predictions_from_file(sys.argv[1], 'unused', 'test')\n"
        "print(sorted((p['instance_id'], bool(p['model_patch']), p['model_name_or_path'])"
        " for p in preds))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check, str(preds)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert loaded.stdout.strip() == str(
        [("calc__fix-1", True, "ponder__trajectories"),
         ("calc__wrong-2", True, "ponder__trajectories")]
    )  # fmt: skip


def test_patches_leave_out_debris_and_new_tests() -> None:
    fix = "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1 +1 @@\n-a\n+b\n"
    new_test = (
        "diff --git a/test_mine.py b/test_mine.py\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/test_mine.py\n@@ -0,0 +1 @@\n+x\n"
    )
    pyc = "diff --git a/__pycache__/calc.pyc b/__pycache__/calc.pyc\nBinary files differ\n"
    repro = new_test.replace("test_mine.py", "repro.py")
    assert filter_patch(fix + new_test + pyc + repro) == fix
    assert filter_patch(TEST_PATCH) == TEST_PATCH  # changing an existing test is kept


@pytest.mark.parametrize("transport", ["tcp", "ssh"])
def test_sandboxes_on_a_docker_host_over_tcp_and_ssh(
    transport: str, tmp_path: Path, user_env: dict[str, str]
) -> None:
    if not Path(ENGINE_SOCKET).exists():
        pytest.skip("the engine is not on the default socket")
    instances, scripts = write_task_set(tmp_path, ["fix"])
    host = tcp_docker_host() if transport == "tcp" else ssh_docker_host(Path(user_env["HOME"]))
    with host as docker_host:
        env = {**user_env, "DOCKER_HOST": docker_host}
        one = ponder(
            "sandbox", "exec", "--json", "--", "read x; echo hi; exit 3", env=env, cwd=tmp_path
        )
        batch = ponder(
            "swebench", "--instances", str(instances), "--out", str(tmp_path / "preds.jsonl"),
            "--model", f"scripted:{scripts}", env=env, cwd=tmp_path,
        )  # fmt: skip
    assert one.returncode == 3, one.stderr
    assert json.loads(one.stdout)["output"] == "hi\n"  # stdin closed, output and exit code exact
    assert batch.returncode == 0, batch.stderr
    assert "calc__fix-1: submitted" in batch.stderr


def test_a_relative_instances_file_with_a_relative_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24, 6: `--instances instances.jsonl` named a bundle beside it that git, run in a
    temporary folder, could not find."""
    from ponder.runtime.swe.instances import load_instances
    from ponder.runtime.swe.workspaces import checkout

    repo, base = make_repository(tmp_path / "made")
    subprocess.run(["git", "bundle", "create", str(tmp_path / "calc.bundle"), "--all"],
                   cwd=repo, check=True, capture_output=True)  # fmt: skip
    record = {"instance_id": "calc-1", "problem_statement": "fix it", "base_commit": base,
              "repo_bundle": "calc.bundle"}  # fmt: skip
    (tmp_path / "instances.jsonl").write_text(json.dumps(record) + "\n")
    monkeypatch.chdir(tmp_path)
    (loaded,) = load_instances(Path("instances.jsonl"))
    with checkout(loaded) as checked_out:
        assert (checked_out / "calc.py").exists()


def test_the_readme_example_runs_and_resolves(tmp_path: Path, user_env: dict[str, str]) -> None:
    """Issue 24, 19: the README's SWE-bench example, on the instance set that ships with ponder,
    run as written from a copy of the repository's folder."""
    import re
    import shlex
    import shutil

    from conftest import REPO_ROOT

    shutil.copytree(REPO_ROOT / "examples", tmp_path / "examples")
    readme = (REPO_ROOT / "README.md").read_text()
    commands = re.findall(r"^ponder (swebench .*examples/swebench/.*)$", readme, re.M)
    assert len(commands) == 2
    for command in commands:
        ran = ponder(*shlex.split(command), env=user_env, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
    assert "✓ tinystats__tinystats-1: resolved" in ran.stdout + ran.stderr
