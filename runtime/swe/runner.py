"""Running the agent over a batch of instances, several sandboxes at a time.

Each instance gets a fresh copy-mode sandbox, the problem statement and the ``submit`` tool;
the workspace diff (without build debris and the agent's own new tests) becomes its prediction.
A prediction is appended to the predictions file as soon as its instance ends, so a crashed or
stopped run resumes where it was: instances with a prediction are skipped unless ``redo``.
Infrastructure errors are reported apart and get no prediction, so the next run retries them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from ponder.model.backend import ChatBackend
from ponder.runtime.agent_settings import AgentSettings
from ponder.runtime.approvals import ApprovalPolicy
from ponder.runtime.copy_diff import copy_diff
from ponder.runtime.events import RunFinished
from ponder.runtime.heavy import run_heavy
from ponder.runtime.loop import Agent
from ponder.runtime.port import RunPort, Unattended
from ponder.runtime.sessions import SessionRecorder
from ponder.runtime.swe.instances import Instance, Prediction, load_predictions
from ponder.runtime.swe.patches import filter_patch
from ponder.runtime.swe.workspaces import WORKDIR, InfrastructureError, instance_sandbox
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import Engine, Limits

Status = Literal["submitted", "finished", "empty", "timed_out", "stopped", "error"]

INSTRUCTIONS = (
    "\n\n---\nThe repository is at /testbed, checked out at the commit this issue was reported "
    "against. Resolve the issue with the smallest change to the source code. Do not modify the "
    "existing tests; you may write new tests or scripts to check your fix (new test files and "
    "scripts are left out of the result). When the fix is complete, call the submit tool."
)


def task_prompt(instance: Instance) -> str:
    return instance.problem_statement.strip() + INSTRUCTIONS


@dataclass(frozen=True)
class InstanceResult:
    instance_id: str
    status: Status
    reason: str
    """How the agent's run ended (its finish reason), or the error."""
    steps: int
    seconds: float
    patch_lines: int


@dataclass
class BatchSettings:
    predictions: Path
    logs: Path
    model_name: str
    default_image: str
    workers: int = 1
    timeout_s: float | None = None
    """Wall clock per instance; the agent is stopped when it passes."""
    redo: bool = False
    heavy: int | None = None
    network: bool = False
    limits: Limits = field(default_factory=Limits)
    agent: AgentSettings = field(default_factory=AgentSettings)


@dataclass
class BatchSummary:
    total: int
    skipped: list[str] = field(default_factory=list)
    results: list[InstanceResult] = field(default_factory=list)

    def ids(self, *statuses: Status) -> list[str]:
        return sorted(r.instance_id for r in self.results if r.status in statuses)

    def as_json(self) -> dict[str, object]:
        return {
            "total_instances": self.total,
            "submitted_ids": self.ids("submitted", "finished"),
            "empty_patch_ids": self.ids("empty"),
            "timed_out_ids": self.ids("timed_out"),
            "stopped_ids": self.ids("stopped"),
            "error_ids": self.ids("error"),
            "results": [asdict(r) for r in self.results],
        }


def worker_limit(requested: int, limits: Limits) -> int:
    """At most one worker per CPU, and only as many as the free memory holds sandboxes of."""
    cpus = os.cpu_count() or 1
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as meminfo:
            available_kb = next(
                int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:")
            )
        by_memory = max(1, available_kb * 1024 // limits.memory)
    except (OSError, StopIteration, ValueError):
        by_memory = requested
    return max(1, min(requested, cpus, by_memory))


BackendFor = Callable[[Instance, int], AbstractContextManager[ChatBackend]]
"""The backend for an instance's trajectory (0 for heavy mode's aggregation step)."""


Spread = Callable[[list[Instance]], Iterable[InstanceResult]]
"""Runs instances elsewhere (each through :meth:`BatchRunner.outcome` and
:meth:`BatchRunner.keep`), yielding their results as they end."""


class BatchRunner:
    def __init__(
        self,
        instances: list[Instance],
        settings: BatchSettings,
        backend_for: BackendFor,
        *,
        client: Engine | None,
        on_start: Callable[[Instance], None] = lambda instance: None,
        on_result: Callable[[InstanceResult], None] = lambda result: None,
    ) -> None:
        """``client`` runs the sandboxes; None where they run elsewhere (``run(spread)``)."""
        self.instances = instances
        self.settings = settings
        self.backend_for = backend_for
        self.client = client
        self.on_start = on_start
        self.on_result = on_result
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._agents: dict[str, Agent] = {}

    def stop(self) -> None:
        """Start no more instances and interrupt the running ones (they get no prediction)."""
        self._stopping.set()
        with self._lock:
            for agent in self._agents.values():
                agent.interrupt()

    def run(self, spread: Spread | None = None) -> BatchSummary:
        """Run the instances without a prediction: in a thread pool of ``settings.workers``,
        or as ``spread`` runs them (over a cluster)."""
        settings = self.settings
        settings.predictions.parent.mkdir(parents=True, exist_ok=True)
        settings.logs.mkdir(parents=True, exist_ok=True)
        done = set() if settings.redo else set(load_predictions(settings.predictions))
        summary = BatchSummary(total=len(self.instances))
        todo = [i for i in self.instances if i.instance_id not in done]
        summary.skipped = [i.instance_id for i in self.instances if i.instance_id in done]
        if spread is not None:
            summary.results.extend(spread(todo))
        else:
            with ThreadPoolExecutor(settings.workers, thread_name_prefix="swe") as pool:
                summary.results.extend(pool.map(self._one, todo))
        self._write_summary(summary)
        return summary

    def _one(self, instance: Instance) -> InstanceResult:
        if self._stopping.is_set():
            return InstanceResult(instance.instance_id, "stopped", "not started", 0, 0.0, 0)
        self.on_start(instance)
        result, patch = self.outcome(instance, self.settings.logs / instance.instance_id)
        self.keep(result, patch)
        return result

    def outcome(self, instance: Instance, log_dir: Path) -> tuple[InstanceResult, str | None]:
        """Run one instance, its logs (the session, ``result.json``) into ``log_dir``; the
        result and the patch (None where the instance gets no prediction)."""
        started = time.monotonic()
        log_dir.mkdir(parents=True, exist_ok=True)
        patch: str | None
        try:
            finished, patch = self._attempt(instance, log_dir)
            result = self._judge(instance, finished, patch, time.monotonic() - started)
        except InfrastructureError as error:
            result = InstanceResult(
                instance.instance_id, "error", str(error), 0, time.monotonic() - started, 0
            )
            patch = None
        (log_dir / "result.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
        if result.status in ("stopped", "error"):
            patch = None
        return result, patch

    def keep(self, result: InstanceResult, patch: str | None) -> None:
        """Append the prediction (when there is one) and report the result."""
        if patch is not None:
            self._record(Prediction(result.instance_id, self.settings.model_name, patch))
        self.on_result(result)

    def _judge(
        self, instance: Instance, finished: RunFinished, patch: str, seconds: float
    ) -> InstanceResult:
        status: Status
        if finished.reason == "interrupted":
            status = "stopped"
        elif finished.reason == "time_limit":
            status = "timed_out"
        elif not patch.strip():
            status = "empty"
        else:
            status = "submitted" if finished.reason == "submitted" else "finished"
        reason = finished.error or finished.reason
        lines = patch.count("\n")
        return InstanceResult(instance.instance_id, status, reason, finished.steps, seconds, lines)

    def _attempt(self, instance: Instance, log_dir: Path) -> tuple[RunFinished, str]:
        settings = self.settings
        agent_settings = settings.agent
        if settings.timeout_s:
            budgets = replace(agent_settings.budgets, time_limit=settings.timeout_s)
            agent_settings = replace(agent_settings, budgets=budgets)
        recorder = SessionRecorder(
            log_dir,
            {"instance_id": instance.instance_id, "workspace": WORKDIR},
            session_id="session",
        )

        client = self.client
        if client is None:
            raise InfrastructureError("no Docker engine for this batch's sandboxes")

        def sandbox(number: int = 1) -> AbstractContextManager[DockerSandbox]:
            return instance_sandbox(
                instance,
                client=client,
                default_image=settings.default_image,
                limits=settings.limits,
                network=settings.network,
            )

        try:
            if settings.heavy:
                return self._heavy(instance, sandbox, recorder, agent_settings)
            with self.backend_for(instance, 1) as backend, sandbox() as box:
                agent = Agent(
                    backend,
                    box,
                    settings=agent_settings,
                    policy=ApprovalPolicy(network=settings.network, bind_mounted=False),
                )
                finished = self._watched(instance, agent, Unattended(recorder))
                return finished, filter_patch(copy_diff(box))
        finally:
            recorder.close()

    def _watched(self, instance: Instance, agent: Agent, port: RunPort) -> RunFinished:
        """Run the agent where :meth:`stop` can reach it (its wall clock is its own budget)."""
        with self._lock:
            self._agents[instance.instance_id] = agent
            if self._stopping.is_set():
                agent.interrupt()
        try:
            return agent.run(task_prompt(instance), port)
        finally:
            with self._lock:
                self._agents.pop(instance.instance_id, None)

    def _heavy(
        self,
        instance: Instance,
        sandbox: Callable[[int], AbstractContextManager[DockerSandbox]],
        recorder: SessionRecorder,
        agent_settings: AgentSettings,
    ) -> tuple[RunFinished, str]:
        assert self.settings.heavy is not None
        count = self.settings.heavy
        with ExitStack() as stack:
            backends = [
                stack.enter_context(self.backend_for(instance, n)) for n in range(count + 1)
            ]
            result = run_heavy(
                task_prompt(instance),
                count,
                backend_for=lambda n: backends[n],
                sandbox_for=sandbox,
                emit=recorder,
                settings=agent_settings,
            )
        return result.finished, filter_patch(result.diff)

    def _record(self, prediction: Prediction) -> None:
        with self._lock, self.settings.predictions.open("a", encoding="utf-8") as file:
            file.write(prediction.to_json() + "\n")
            file.flush()
            os.fsync(file.fileno())

    def _write_summary(self, summary: BatchSummary) -> None:
        """The summary of every run into this predictions file: this run's results replace
        earlier ones of the same instances (a resumed or ``--ids`` run keeps the others)."""
        path = self.settings.predictions.with_suffix(".summary.json")
        ran = {r.instance_id for r in summary.results}
        earlier = []
        try:
            for record in json.loads(path.read_text()).get("results", []):
                if record.get("instance_id") not in ran:
                    earlier.append(InstanceResult(**record))
        except (OSError, ValueError, TypeError, AttributeError):
            earlier = []  # none yet, or not one ponder can read: this run's view only
        results = sorted([*earlier, *summary.results], key=lambda r: r.instance_id)
        whole = BatchSummary(total=len(results), results=results)
        path.write_text(json.dumps(whole.as_json(), indent=2) + "\n")
