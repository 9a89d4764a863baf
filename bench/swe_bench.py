"""SWE batch runner benchmarks, on small generated task repositories and a real Docker engine.

1. Throughput: a batch of 8 instances (each a recorded 4-step trajectory that fixes a real bug
   and runs a check) at 1, 2 and 4 workers, in instances per minute, and the 4-to-1 ratio. The
   runner is driven directly so each count is what was asked (`ponder swebench` caps workers
   at the CPUs and the free memory).
2. Harness overhead per instance: ponder's sandbox for an instance (checkout at base_commit,
   a size-limited volume, copy in), the diff worked out on the host from the copy's files, and
   removal, against the same steps done with git and the docker CLI (clone, checkout, `docker
   run -d`, `docker cp`, `docker exec git diff`, `docker rm -f`; a diff the container's git
   makes, which ponder no longer trusts). Median of 10, interleaved.
3. Ray's overhead: the same 8 instances over a two-node Ray cluster on this machine (each node
   offering one `docker` slot) against the thread pool at 2 workers, in instances per minute.

Run: .venv/bin/python bench/swe_bench.py  (or bench/run for every benchmark)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from swe_tasks import write_task_set

from ponder.model.scripted import ScriptedBackend
from ponder.runtime.copy_diff import copy_diff
from ponder.runtime.swe.instances import Instance, load_instances
from ponder.runtime.swe.runner import BatchRunner, BatchSettings
from ponder.runtime.swe.workspaces import instance_sandbox
from ponder.sandbox.docker_setup import connect
from ponder.sandbox.image import DEFAULT_IMAGE, build_default_image

INSTANCES = 8
ROUNDS = 10


def throughput(root: Path) -> None:
    instances_file, scripts = write_task_set(root, ["fix"] * INSTANCES)
    instances = load_instances(instances_file)
    client = connect()

    @contextmanager
    def scripted(instance: Instance, number: int):  # type: ignore[no-untyped-def]
        yield ScriptedBackend.from_file(scripts / f"{instance.instance_id}.jsonl")

    print(f"1. Throughput: {INSTANCES} instances, scripted backend")
    rates = {}
    for workers in (1, 2, 4):
        out = root / f"run-{workers}"
        settings = BatchSettings(
            predictions=out / "preds.jsonl",
            logs=out / "logs",
            model_name="bench",
            default_image=DEFAULT_IMAGE,
            workers=workers,
        )
        started = time.perf_counter()
        summary = BatchRunner(instances, settings, scripted, client=client).run()
        elapsed = time.perf_counter() - started
        assert len(summary.ids("submitted")) == INSTANCES, summary.as_json()
        rates[workers] = INSTANCES / elapsed * 60
        print(f"   {workers} worker(s): {rates[workers]:6.1f} instances/min ({elapsed:5.1f} s)")
    print(f"   4 workers vs 1: {rates[4] / rates[1]:.2f}x")


def overhead(root: Path) -> None:
    instances_file, _ = write_task_set(root / "overhead", ["fix"])
    (instance,) = load_instances(instances_file)
    client = connect()
    repo = instance.local_repository()
    assert repo is not None

    def ours() -> None:
        with instance_sandbox(instance, client=client, default_image=DEFAULT_IMAGE) as sandbox:
            copy_diff(sandbox)

    def cli() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "repo"
            run("git", "clone", "--quiet", str(repo), str(target))
            run("git", "-C", str(target), "checkout", "--quiet", "--detach", instance.base_commit)
            name = run("docker", "run", "-d", "--network", "none", DEFAULT_IMAGE, "sleep", "600")
            try:
                run("docker", "cp", f"{target}/.", f"{name}:/testbed")
                run("docker", "exec", "-w", "/testbed", name, "git", "diff")
            finally:
                run("docker", "rm", "-f", name)

    mine: list[float] = []
    theirs: list[float] = []
    for _ in range(ROUNDS):
        mine.append(timed(ours))
        theirs.append(timed(cli))
    ponder_s, cli_s = statistics.median(mine), statistics.median(theirs)
    print(f"2. Harness overhead per instance, median of {ROUNDS}")
    print(
        f"   ponder {ponder_s * 1000:6.0f} ms   git + docker CLI {cli_s * 1000:6.0f} ms   "
        f"ratio {ponder_s / cli_s:.2f}"
    )


def over_ray(root: Path) -> None:
    from ray.cluster_utils import Cluster

    from ponder.runtime.swe.ray_batch import RaySpread

    instances_file, scripts = write_task_set(root / "ray", ["fix"] * INSTANCES)
    instances = load_instances(instances_file)

    @contextmanager
    def scripted(instance: Instance, number: int):  # type: ignore[no-untyped-def]
        yield ScriptedBackend.from_file(scripts / f"{instance.instance_id}.jsonl")

    def settings(name: str) -> BatchSettings:
        out = root / "ray" / name
        return BatchSettings(out / "preds.jsonl", out / "logs", "bench", DEFAULT_IMAGE, workers=2)

    node = {"num_cpus": 1, "resources": {"docker": 1}, "object_store_memory": 10**8}
    cluster = Cluster(initialize_head=True, head_node_args=node)
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    try:
        rates = {}
        for name in ("pool", "ray", "pool-again", "ray-again"):
            runner = BatchRunner(instances, settings(name), scripted, client=connect())
            started = time.perf_counter()
            if name.startswith("ray"):
                summary = runner.run(RaySpread(runner, cluster.address, connect))
            else:
                summary = runner.run()
            elapsed = time.perf_counter() - started
            assert len(summary.ids("submitted")) == INSTANCES, summary.as_json()
            rates[name] = INSTANCES / elapsed * 60
    finally:
        cluster.shutdown()
    pool = max(rates["pool"], rates["pool-again"])
    ray_rate = max(rates["ray"], rates["ray-again"])
    print(f"3. Ray (2 nodes x 1 slot) vs thread pool (2 workers), {INSTANCES} instances, best of 2")
    print(
        f"   pool {pool:6.1f} instances/min   Ray {ray_rate:6.1f} instances/min   "
        f"Ray/pool {ray_rate / pool:.2f}"
    )


def run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    build_default_image(connect(), log=lambda line: None)
    with tempfile.TemporaryDirectory() as tmp:
        throughput(Path(tmp))
        overhead(Path(tmp))
        over_ray(Path(tmp))


if __name__ == "__main__":
    main()
