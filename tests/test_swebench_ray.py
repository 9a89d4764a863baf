"""`ponder swebench --ray` on a real two-node Ray cluster on this machine (ray.cluster_utils,
each node offering one `docker` slot), the sandboxes on the real engine: every instance runs,
a node that dies has its instance run again elsewhere, a killed driver resumes, and no node
keeps a container."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from conftest import PONDER
from swe_tasks import write_task_set

from ponder.sandbox.docker_setup import LABEL

ray_cluster_utils = pytest.importorskip("ray.cluster_utils")
pytestmark = pytest.mark.usefixtures("sandbox_image")
NODE = {"num_cpus": 1, "resources": {"docker": 1}, "object_store_memory": 10**8}


@pytest.fixture
def cluster() -> Iterator[object]:
    cluster = ray_cluster_utils.Cluster(initialize_head=True, head_node_args=NODE)
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def ponder_containers(client: docker.DockerClient) -> list[str]:
    return [c.name or "" for c in client.containers.list(all=True, filters={"label": f"{LABEL}=1"})]


def predicted(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["instance_id"] for line in path.read_text().splitlines()]


def wait_for(condition: object, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.3)
    assert condition(), "timed out"  # type: ignore[operator]


def test_a_batch_over_two_nodes_survives_a_dead_node_and_a_killed_driver(
    cluster: object, tmp_path: Path, user_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instances, scripts = write_task_set(tmp_path, ["slow"] * 4)
    address = cluster.address  # type: ignore[attr-defined]
    preds = tmp_path / "preds.jsonl"
    command = [PONDER, "swebench", "--instances", str(instances), "--out", str(preds),
               "--model", f"scripted:{scripts}", "--ray", address]  # fmt: skip

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            command, env=user_env, cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    # A node dies while both run: its instance runs again on the other.
    batch = start()
    wait_for(lambda: len(ponder_containers(docker_client)) == 2)
    worker = next(iter(cluster.worker_nodes))  # type: ignore[attr-defined]
    cluster.remove_node(worker)  # type: ignore[attr-defined]
    _, err = batch.communicate(timeout=300)
    assert batch.returncode == 0, err
    assert "4 instance(s) over 2 sandbox slot(s) of the cluster" in err
    assert sorted(predicted(preds)) == [f"calc__slow-{n}" for n in range(1, 5)]
    assert all("+    return a + b" in json.loads(line)["model_patch"]
               for line in preds.read_text().splitlines())  # fmt: skip
    assert (tmp_path / "preds.logs" / "calc__slow-3" / "session.jsonl").exists()
    assert ponder_containers(docker_client) == []

    # The driver is killed mid-batch; the next run does only what is left.
    cluster.add_node(**NODE)  # type: ignore[attr-defined]
    preds.unlink()
    batch = start()
    wait_for(lambda: len(predicted(preds)) >= 1)
    batch.send_signal(signal.SIGKILL)
    batch.wait()
    done = predicted(preds)
    resumed = subprocess.run(command, env=user_env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=300, check=False)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"{4 - len(done)} run, {len(done)} already done" in resumed.stderr
    assert sorted(predicted(preds)) == [f"calc__slow-{n}" for n in range(1, 5)]
    assert ponder_containers(docker_client) == []


def test_ctrl_c_cancels_the_cluster_s_tasks_and_leaves_no_container(
    cluster: object, tmp_path: Path, user_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    instances, scripts = write_task_set(tmp_path, ["endless"] * 3)
    batch = subprocess.Popen(
        [PONDER, "swebench", "--instances", str(instances), "--out", str(tmp_path / "p.jsonl"),
         "--model", f"scripted:{scripts}", "--ray", cluster.address],  # type: ignore[attr-defined]
        env=user_env, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_for(lambda: len(ponder_containers(docker_client)) == 2)
    batch.send_signal(signal.SIGINT)
    _, err = batch.communicate(timeout=180)
    assert batch.returncode == 130, err
    assert not (tmp_path / "p.jsonl").exists()  # endless: none finished
    assert ponder_containers(docker_client) == []


def test_a_cluster_without_docker_nodes_is_one_clear_line(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    cluster = ray_cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 10**8}
    )
    try:
        instances, scripts = write_task_set(tmp_path, ["fix"])
        ran = subprocess.run(
            [PONDER, "swebench", "--instances", str(instances), "--out", str(tmp_path / "p.jsonl"),
             "--model", f"scripted:{scripts}", "--ray", cluster.address],
            env=user_env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        cluster.shutdown()
    assert ran.returncode == 1
    assert "offers the 'docker' resource" in ran.stderr.strip().splitlines()[-1]
