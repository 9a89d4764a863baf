"""A batch spread over a Ray cluster (``pip install 'ponder[ray]'``): one task per instance.

Nodes that may run sandboxes offer a custom resource, ``ray start --resources '{"docker": N}'``
(N sandboxes at once there); each task asks for one unit, so tasks land only on nodes with a
Docker engine. A task runs its instance as the thread pool would (:meth:`BatchRunner.outcome`)
on its node's engine, with the logs in a temporary folder, and returns the result, the patch
and the log files; the driver writes them as results stream back, so predictions append as they
end and the batch resumes as a local one does. A task whose node dies is run again elsewhere
(``max_retries``). When the batch ends or is stopped, the tasks still pending are cancelled
with their workers killed, and each Docker node reaps what killed workers left (containers whose
owning process is gone), so no node keeps a container.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ponder.runtime.swe.instances import Instance
from ponder.runtime.swe.runner import BackendFor, BatchRunner, BatchSettings, InstanceResult
from ponder.runtime.swe.workspaces import InfrastructureError
from ponder.sandbox.docker_setup import Engine

DOCKER = "docker"
RETRIES = 3
_LOG_NAME = frozenset({"session.jsonl", "result.json"})


@dataclass(frozen=True)
class Job:
    """What every task needs (pickled once, shared through the object store)."""

    settings: BatchSettings
    backend_for: BackendFor
    engine: Callable[[], Engine]
    """This node's engine, ready (the image built, leftovers of dead processes reaped)."""


Outcome = tuple[InstanceResult, str | None, dict[str, bytes]]


def run_instance(job: Job, instance: Instance) -> Outcome:
    """One instance on this node: its result, patch and log files."""
    runner = BatchRunner([instance], job.settings, job.backend_for, client=job.engine())
    with tempfile.TemporaryDirectory(prefix="ponder-ray-") as folder:
        result, patch = runner.outcome(instance, Path(folder))
        files = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.name in _LOG_NAME}
    return result, patch, files


def reap(engine: Callable[[], Engine]) -> None:
    engine()


class RaySpread:
    """The :data:`~ponder.runtime.swe.runner.Spread` of a batch over a Ray cluster."""

    def __init__(
        self,
        runner: BatchRunner,
        address: str,
        engine: Callable[[], Engine],
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.runner = runner
        self.address = address
        self.engine = engine
        self.say = say
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Cancel the cluster's tasks (their workers killed) and stop waiting for them."""
        self._stopping.set()

    def __call__(self, todo: list[Instance]) -> Iterator[InstanceResult]:
        try:
            context = ray.init(
                address=self.address, log_to_driver=False, logging_level=logging.ERROR
            )
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise InfrastructureError(
                f"cannot join the Ray cluster at {self.address}: {error}"
            ) from None
        pending: dict[Any, Instance] = {}
        try:
            slots = int(ray.cluster_resources().get(DOCKER, 0))  # type: ignore[no-untyped-call]
            if slots < 1:
                raise InfrastructureError(
                    f"no node of the Ray cluster at {self.address} offers the {DOCKER!r} "
                    "resource; start the nodes that have a Docker engine with "
                    f"ray start --resources '{{\"{DOCKER}\": 4}}'"
                )
            if context.dashboard_url:
                self.say(f"Ray dashboard: http://{context.dashboard_url}")
            self.say(f"{len(todo)} instance(s) over {slots} sandbox slot(s) of the cluster")
            task = ray.remote(run_instance).options(
                num_cpus=0, resources={DOCKER: 1}, max_retries=RETRIES
            )
            job = ray.put(Job(self.runner.settings, self.runner.backend_for, self.engine))
            pending = {task.remote(job, instance): instance for instance in todo}
            while pending and not self._stopping.is_set():
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in done:
                    yield self._collect(ref, pending.pop(ref))
            for instance in pending.values():
                yield InstanceResult(instance.instance_id, "stopped", "cancelled", 0, 0.0, 0)
        finally:
            try:
                self._wind_up(list(pending))
            finally:
                ray.shutdown()

    def _collect(self, ref: Any, instance: Instance) -> InstanceResult:
        try:
            outcome: Outcome = ray.get(ref)
            result, patch, files = outcome
        except ray.exceptions.RayError as error:  # failed past its retries, or raised
            reason = str(error).strip().splitlines()[-1][:300] or type(error).__name__
            outcome = (InstanceResult(instance.instance_id, "error", reason, 0, 0.0, 0), None, {})
            result, patch, files = outcome
        log_dir = self.runner.settings.logs / instance.instance_id
        log_dir.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            if name in _LOG_NAME:
                (log_dir / name).write_bytes(data)
        self.runner.keep(result, patch)
        return result

    def _wind_up(self, pending: list[Any]) -> None:
        """Cancel what is pending, wait until its workers are gone, then reap on every node."""
        for ref in pending:
            ray.cancel(ref, force=True)
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=60)
        alive = ray.nodes()  # type: ignore[no-untyped-call]
        nodes = [n for n in alive if n["Alive"] and n["Resources"].get(DOCKER)]
        sweeps = [
            ray.remote(reap)
            .options(
                num_cpus=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            )
            .remote(self.engine)
            for n in nodes
        ]
        ray.wait(sweeps, num_returns=len(sweeps), timeout=120)
