"""The Docker sandbox: one hardened, long-lived container per session.

Two workspace modes. ``bind`` mounts the user's repository read-write and runs commands as the
host user's uid:gid, so files stay theirs. ``copy`` copies the repository into the container (a
volume of its own), runs commands as root without capabilities, and gives the change back as a
diff; batch and parallel runs use it. Each command is its own ``docker exec`` (exact exit code),
its script arrives on stdin, ``timeout`` stops it inside the container, and a host watchdog and a
sweep of everything carrying its exec id make sure nothing it started outlives a timeout.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Literal

import docker
import docker.errors
from docker.models.containers import Container

from ponder.sandbox import scripts
from ponder.sandbox.archive import extract, file_chunks, footprint
from ponder.sandbox.base import (
    WORKDIR,
    ContainerGone,
    ExecResult,
    Halt,
    OutputCallback,
    SandboxError,
)
from ponder.sandbox.command_runs import KILLED, CommandRunner
from ponder.sandbox.disk_guard import DiskGuard, DiskLimits
from ponder.sandbox.docker_exec import export_folder, living_processes, run_exec, start_detached
from ponder.sandbox.docker_setup import (
    GIT_SEARCH_LIMIT,
    UNSEARCHED,
    Limits,
    connect,
    create,
    create_volume,
    git_metadata,
    image_archive,
    labels,
    remove_volume,
    run_options,
    workspace_archive,
)
from ponder.sandbox.environment import COMMAND_ENV
from ponder.sandbox.exec_stream import RawExec
from ponder.sandbox.output import OutputCapture

WATCHDOG_SLACK_S = 10
IMAGE_LIMIT = 16 * 1024**3
"""Most bytes of an image's workspace folder copied into a copy-mode sandbox."""
EXPORT_SLACK = 64 * 1024**2
"""Tar headers on top of a copy's content, when it comes back."""
FILE_OP_TIMEOUT_S = 60
Mode = Literal["bind", "copy"]


class DockerSandbox(CommandRunner):
    """A container with the workspace at :attr:`workdir`; use it as a context manager."""

    def __init__(
        self,
        workspace: Path | None,
        image: str,
        *,
        mode: Mode = "bind",
        workdir: str = WORKDIR,
        client: docker.DockerClient | None = None,
        network: bool = False,
        limits: Limits | None = None,
        environment: dict[str, str] | None = None,
        lifetime_s: int = 24 * 3600,
        name: str | None = None,
        disk: DiskLimits | None = None,
    ) -> None:
        """``disk``: limits on how much a bind-mounted workspace may grow (none when unset)."""
        if mode == "bind" and workspace is None:
            raise SandboxError("bind mode needs a workspace directory")
        self.workspace = workspace.resolve() if workspace else None
        self.image = image
        self.mode = mode
        self._workdir = workdir
        self.network = network
        self.limits = limits or Limits()
        self.environment = {**(environment or {}), **COMMAND_ENV}
        self._client = client
        self._lifetime_s = lifetime_s
        self.session = uuid.uuid4().hex[:12]
        self.name = name or f"ponder-{self.session}"
        self._container: Container | None = None
        self._user = f"{os.getuid()}:{os.getgid()}" if mode == "bind" else "0:0"
        self._oom_kills = 0
        self._log_writers: list[threading.Thread] = []
        self._disk = disk
        self._disk_guard = None
        self.notes: list[str] = []
        """What the person should know about this sandbox (a protection it could not give)."""
        self._start: IO[bytes] | None = None
        """Copy mode: the workspace as it was copied in (a tar), until the sandbox stops."""
        self._volume: str | None = None
        self._volume_size = 0
        self._own_processes: set[int] = set()
        """Host process ids of the container's init, its sleep and the reaper."""
        self._reaper = 0

    @property
    def description(self) -> str:
        net = "network on" if self.network else "network off"
        return f"docker, {self.mode} mode, {net}"

    @property
    def workdir(self) -> str:
        return self._workdir

    def start(self) -> None:
        if self._container is not None:
            return
        if self.mode == "bind" and not (self.workspace and self.workspace.is_dir()):
            raise SandboxError(f"workspace {self.workspace} is not a directory")
        self._client = self._client or connect()
        protected: list[str] = []
        if self.mode == "bind":
            assert self.workspace is not None
            protected, complete = git_metadata(self.workspace)
            if not complete:
                self.notes = [UNSEARCHED.format(n=GIT_SEARCH_LIMIT)]
        options = run_options(
            name=self.name,
            workdir=self._workdir,
            bind=self.workspace if self.mode == "bind" else None,
            volume=self._copy_volume() if self.mode == "copy" else None,
            read_only=protected,
            network=self.network,
            limits=self.limits,
            environment=self.environment,
            container_labels=labels(self.session, self._lifetime_s, str(self.workspace or "")),
            lifetime_s=self._lifetime_s,
        )
        try:
            self._container = create(self._client, self.image, options)
        except docker.errors.DockerException as error:  # the engine failed underneath
            raise SandboxError(f"docker could not start the sandbox: {error}") from None
        self.name = self._container.name or self.name
        if self.mode == "bind" and self._disk is not None and self._disk_guard is None:
            assert self.workspace is not None
            self._disk_guard = DiskGuard(self.workspace, self._disk, on_trip=self._stop_jobs)
        atexit.register(self.stop)
        try:
            self._prepare()
        except docker.errors.DockerException as error:
            self.stop()
            raise SandboxError(f"docker failed preparing the sandbox: {error}") from None
        except BaseException:
            self.stop()
            raise

    def _prepare(self) -> None:
        setup = self._script(
            f"mkdir -p {scripts.STATE_DIR}/home {scripts.LOG_DIR}\n" + scripts.oom_count_script(),
            30,
        )
        if setup.exit_code != 0:
            raise SandboxError(f"the sandbox did not start: {setup.output.strip()}")
        self._oom_kills = int(setup.output.strip() or 0)
        self._own_processes = set(self._processes())  # init and its sleep: nothing else runs yet
        self._start_reaper()
        if self.mode == "copy":
            assert self._container is not None
            assert self._start is not None
            self._start.seek(0)
            self._container.put_archive(self._workdir, self._start)

    # --- copy mode

    def _copy_volume(self) -> str:
        """The volume that holds the copy: as big as the workspace plus the growth the disk
        limits allow, so that nothing in the container can fill the host's disk."""
        assert self._client is not None
        if self._start is None:
            if self.workspace is not None:
                self._start = workspace_archive(self.workspace)
            else:  # the image holds the repository (SWE-bench's images): copy it from there
                self._start = image_archive(self._client, self.image, self._workdir, IMAGE_LIMIT)
        size, files = footprint(self._start)
        disk = self._disk or DiskLimits()
        self._volume_size = size + disk.max_growth
        volume_labels = labels(self.session, self._lifetime_s, str(self.workspace or ""))
        self._volume = create_volume(
            self._client,
            f"{self.name}-workspace",
            self._volume_size,
            files + disk.max_new_files,
            volume_labels,
        )
        return self._volume

    def export(
        self,
        which: Literal["start", "now"],
        destination: Path,
        skip: Callable[[bytes], bool] = lambda path: False,
    ) -> None:
        """Copy mode: write the workspace as it started, or as it is now, into the empty host
        folder ``destination``; read as hostile (:func:`~ponder.sandbox.archive.extract`),
        and never more than twice what the volume can hold."""
        if self.mode != "copy" or self._start is None:
            raise SandboxError("export() is for copy mode; in bind mode the files are on the host")
        limit = 2 * self._volume_size + EXPORT_SLACK
        if which == "start":
            self._start.seek(0)
            extract(file_chunks(self._start), destination, limit, skip)
            return
        if self._container is None:
            raise SandboxError("the sandbox is not running")
        self._settle()
        export_folder(self._container, self._workdir, destination, limit, skip)

    def _start_reaper(self) -> None:
        assert self._client is not None
        assert self._container is not None
        argv = ["bash", "--noprofile", "--norc", "-c", scripts.reaper_script(self.limits.pids)]
        self._own_processes.discard(self._reaper)
        self._reaper = start_detached(self._client.api, str(self._container.id), argv, self._user)
        self._own_processes.add(self._reaper)

    def _processes(self) -> list[int]:
        assert self._client is not None
        assert self._container is not None
        return living_processes(self._client.api, str(self._container.id))

    def background_jobs(self) -> bool:
        if self._container is None or self._client is None:
            return False
        self._settle()
        try:
            return any(p not in self._own_processes for p in self._processes())
        except docker.errors.NotFound:
            return False  # the container is gone, and everything in it
        except (docker.errors.DockerException, ValueError):
            return True

    def _stop_jobs(self, reason: str) -> None:
        """The disk guard tripped: kill every process commands started, background jobs too
        (``kill -1`` spares the caller and PID 1, which runs as nobody)."""
        self._jobs_stopped = reason
        argv = ["bash", "--noprofile", "--norc", "-c", "kill -9 -1 2>/dev/null; exit 0"]
        with contextlib.suppress(SandboxError):
            self._run(argv, None, 30, lambda data: None, settle=False)

    def stop(self) -> None:
        if self._disk_guard is not None:
            self._disk_guard.close()
            self._disk_guard = None
        self._settle()
        container, self._container = self._container, None
        volume, self._volume = self._volume, None
        atexit.unregister(self.stop)
        if self._start is not None:
            self._start.close()
            self._start = None
        if container is not None:
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise SandboxError(f"could not remove sandbox {self.name}: {exc}") from None
        if volume is not None and self._client is not None:
            remove_volume(self._client, volume)

    def _run(
        self,
        argv: list[str],
        stdin: bytes | None,
        timeout: float,
        sink: Callable[[bytes], None],
        environment: dict[str, str] | None = None,
        settle: bool = True,
        cancel: Halt | None = None,
        token: str | None = None,
    ) -> RawExec:
        """Run ``argv`` as the sandbox's command user, output bytes to ``sink``."""
        if settle:
            self._settle()
        if self._container is None or self._client is None or self._container.id is None:
            raise SandboxError("the sandbox is not running")
        deadline = time.monotonic() + timeout + scripts.KILL_GRACE_S + WATCHDOG_SLACK_S
        return run_exec(
            self._client.api,
            self._container.id,
            argv,
            stdin=stdin,
            deadline=deadline,
            on_output=sink,
            environment=environment,
            user=self._user,
            cancel=cancel,
            token=token,
        )

    def _script(self, script: str, timeout: float) -> ExecResult:
        """Run a bash script of ours (not the model's), output captured."""
        capture = OutputCapture()
        started = time.monotonic()
        argv = ["bash", "--noprofile", "--norc", "-c", "exec 2>&1\n" + script]
        code = self._run(argv, None, timeout, capture.add).exit_code
        result = ExecResult(code, capture.text(), False, time.monotonic() - started, capture.total)
        capture.close()
        return result

    def exec(
        self,
        command: str,
        timeout: float,
        on_output: OutputCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        try:
            return self._exec(command, timeout, on_output, cancel, notice=None)
        except ContainerGone:
            if self.mode == "copy":
                raise SandboxError(
                    "the sandbox container stopped; its copy of the workspace is lost"
                ) from None
            self._container = None
            self.start()
            notice = "the sandbox had stopped and was started again (the workspace is intact)"
            return self._exec(command, timeout, on_output, cancel, notice=notice)

    def _run_runner(
        self, command: str, timeout: float, sink: Callable[[bytes], None], exec_id: str, halt: Halt
    ) -> RawExec:
        raw = self._run(
            ["bash", "--noprofile", "--norc", "-c", scripts.runner(timeout)],
            scripts.runner_input(scripts.command_script(command, self._workdir)),
            timeout,
            sink,
            environment={scripts.EXEC_ID_VARIABLE: exec_id},
            cancel=halt,
            token=scripts.end_token(),
        )
        if not raw.reaper_running:  # the model killed it (kill -9 -1, say)
            self._start_reaper()
        return raw

    def _keep_log(self, exec_id: str, data: bytes) -> str:
        """Stored in the background; the next use of the sandbox waits for it."""
        path = f"{scripts.LOG_DIR}/{exec_id}.log"

        def save() -> None:
            argv = ["bash", "--noprofile", "--norc", "-c", scripts.save_log_script(), "log", path]
            self._run(argv, data, FILE_OP_TIMEOUT_S, lambda _: None, settle=False)

        writer = threading.Thread(target=save, name="ponder-log", daemon=True)
        self._log_writers.append(writer)
        writer.start()
        return path

    def _settle(self) -> None:
        """Wait for logs still being written, so what comes next can read them."""
        while True:
            try:
                writer = self._log_writers.pop()  # atomic, so threads can settle at once
            except IndexError:
                return
            writer.join()

    def _sweep(self, exec_id: str) -> None:
        """Kill what a timed-out command left running, daemons that left its group included."""
        argv = ["bash", "--noprofile", "--norc", "-c", scripts.sweep_script(), "sweep", exec_id]
        self._run(argv, None, 30, lambda data: None)

    def _backend_notice(self, code: int, timed_out: bool) -> str | None:
        if code == KILLED and not timed_out:
            said = self._script(scripts.oom_count_script(), 30).output.strip()
            count = int(said) if said.isdigit() else 0
            if count > self._oom_kills:
                self._oom_kills = count
                limit = f"{self.limits.memory / 2**20:,.0f} MiB"
                return f"killed: out of memory (the sandbox's limit is {limit})"
        if code == 153:
            return f"stopped: the file size limit ({self.limits.file_size} bytes) was reached"
        return None

    def _run_file_script(self, argv: list[str], data: bytes | None, path: str) -> tuple[int, bytes]:
        received = bytearray()
        raw = self._run(argv, data, FILE_OP_TIMEOUT_S, received.extend)
        if raw.deadline_passed:
            raise SandboxError(f"reading or writing {path} in the sandbox timed out")
        return raw.exit_code, bytes(received)
