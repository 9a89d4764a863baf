"""The Docker sandbox: one hardened, long-lived container per session.

The workspace is bind-mounted at ``/workspace`` and commands run as the host user's uid:gid, so
files the model writes stay the user's. Each command is its own ``docker exec``; its script arrives
on stdin (no argv size limit), runs under ``timeout`` inside the container, with stdin closed, and
its working directory carries over to the next command.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from ponder.sandbox.base import (
    IS_DIRECTORY,
    NOT_A_DIRECTORY,
    NOT_FOUND,
    OUTSIDE_WORKSPACE,
    TOO_LARGE,
    WORKDIR,
    ExecResult,
    FileAccessError,
    OutputCallback,
    SandboxError,
    SandboxUnavailable,
)
from ponder.sandbox.docker_exec import run_exec
from ponder.sandbox.output import OutputCapture, StreamDecoder

LABEL = "io.ponder.managed"
STATE_DIR = "/tmp/.ponder"
KILL_GRACE_S = 5
WATCHDOG_SLACK_S = 10
MAX_FILE_BYTES = 10 * 1024 * 1024

# Forced on every command: no pagers, prompts, colour or progress bars (research-sandbox §3.2).
COMMAND_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "dumb",
    "NO_COLOR": "1",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "MANPAGER": "cat",
    "EDITOR": "true",
    "VISUAL": "true",
    "GIT_EDITOR": "true",
    "GIT_TERMINAL_PROMPT": "0",
    "DEBIAN_FRONTEND": "noninteractive",
    "PIP_NO_INPUT": "1",
    "PIP_PROGRESS_BAR": "off",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "TQDM_DISABLE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
    "HOME": f"{STATE_DIR}/home",
    "PONDER_SANDBOX": "1",
}

# Reads the command script from stdin into a file, then runs it with stdin closed and stdout and
# stderr merged (so a person sees them in the order they were written).
_RUNNER = (
    'f=$(mktemp /tmp/.ponder-cmd.XXXXXX) && cat >"$f" && '
    'exec timeout -k {grace} {timeout} bash --noprofile --norc "$f" </dev/null 2>&1'
)

# Prepended to every command: restore the working directory the last command ended in.
_PRELUDE = f"""rm -f -- "$0"
cd "$(cat {STATE_DIR}/cwd 2>/dev/null || echo {WORKDIR})" 2>/dev/null || cd {WORKDIR}
trap 'pwd >{STATE_DIR}/cwd' EXIT
"""

# Resolves $1 inside the container (symlinks included) and refuses anything outside the workspace.
_RESOLVE = f"""p=$(realpath -m -- "$1") || exit 92
case "$p" in {WORKDIR}|{WORKDIR}/*) ;; *) exit 91 ;; esac
"""
_READ = (
    _RESOLVE
    + f"""[ -e "$p" ] || exit 92
[ -d "$p" ] && exit 93
[ "$(stat -c %s -- "$p")" -le {MAX_FILE_BYTES} ] || exit 94
exec cat -- "$p"
"""
)
_WRITE = (
    _RESOLVE
    + """[ -d "$p" ] && exit 93
mkdir -p -- "$(dirname -- "$p")" || exit 95
t=$(mktemp "$(dirname -- "$p")/.ponder-write.XXXXXX") || exit 95
cat >"$t" || { rm -f -- "$t"; exit 95; }
[ -e "$p" ] && chmod --reference="$p" -- "$t"
[ -e "$p" ] || chmod 644 -- "$t"
mv -f -- "$t" "$p" || { rm -f -- "$t"; exit 95; }
"""
)
_LIST = (
    _RESOLVE
    + """[ -e "$p" ] || exit 92
[ -d "$p" ] || exit 96
cd -- "$p" && exec find . -mindepth 1 -maxdepth "$2" -not -path '*/.*' -printf '%P\\n'
"""
)
_FILE_ERRORS = {
    91: OUTSIDE_WORKSPACE,
    92: NOT_FOUND,
    93: IS_DIRECTORY,
    94: TOO_LARGE,
    96: NOT_A_DIRECTORY,
}


def connect() -> docker.DockerClient:
    """A client for the Docker engine that DOCKER_HOST (or the default socket) names."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise SandboxUnavailable(
            f"cannot reach a Docker engine at {where} ({_short(exc)}). Start it "
            "(`sudo systemctl start docker`, or `sudo dockerd &`), or run ./install.sh, "
            "which installs and starts one."
        ) from None
    return client


def _short(exc: Exception) -> str:
    text = str(exc)
    return text.split(": ", 1)[-1][:200] if "Connection" in text else text[:200]


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one sandbox container."""

    memory: str = "4g"
    """Memory, swap included (the container gets no extra swap)."""
    cpus: float = 2.0
    pids: int = 1024
    """Most processes and threads at once (a fork bomb stops here)."""


class DockerSandbox:
    """A container with ``workspace`` mounted at :data:`WORKDIR`; use as a context manager."""

    def __init__(
        self,
        workspace: Path,
        image: str,
        *,
        client: docker.DockerClient | None = None,
        network: bool = False,
        limits: Limits | None = None,
        lifetime_s: int = 24 * 3600,
    ) -> None:
        self.workspace = workspace.resolve()
        self.image = image
        self.network = network
        self._client = client
        self.limits = limits or Limits()
        self._lifetime_s = lifetime_s
        self.session = uuid.uuid4().hex[:12]
        self.name = f"ponder-{self.session}"
        self._container: Container | None = None

    @property
    def description(self) -> str:
        net = "network on" if self.network else "network off"
        return f"docker {self.name}, {net}"

    def __enter__(self) -> DockerSandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._container is not None:
            return
        if not self.workspace.is_dir():
            raise SandboxError(f"workspace {self.workspace} is not a directory")
        client = self._client or connect()
        self._client = client
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(
                f"sandbox image {self.image} is not built; run `ponder sandbox build`"
            ) from None
        self._container = client.containers.run(self.image, **self._run_options())
        setup = self._run_script(f"mkdir -p {STATE_DIR}/home", timeout=30)
        if setup.exit_code != 0:
            self.stop()
            raise SandboxError(f"the sandbox did not start: {setup.output.strip()}")

    def _run_options(self) -> dict[str, Any]:
        expires = int(time.time()) + self._lifetime_s
        return {
            # PID 1 expires by itself, so a container leaked by a crash goes away on its own.
            "command": ["sleep", str(self._lifetime_s)],
            "name": self.name,
            "detach": True,
            "auto_remove": True,
            "init": True,
            "user": f"{os.getuid()}:{os.getgid()}",
            "working_dir": WORKDIR,
            "volumes": {str(self.workspace): {"bind": WORKDIR, "mode": "rw"}},
            "read_only": True,
            "tmpfs": {"/tmp": "rw,exec,nosuid,nodev,size=2g"},
            "network_mode": "bridge" if self.network else "none",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "pids_limit": self.limits.pids,
            "mem_limit": self.limits.memory,
            "memswap_limit": self.limits.memory,
            "nano_cpus": int(min(self.limits.cpus, os.cpu_count() or 1) * 1e9),
            "environment": COMMAND_ENV,
            "labels": {
                LABEL: "1",
                "io.ponder.session": self.session,
                "io.ponder.owner_pid": str(os.getpid()),
                "io.ponder.owner_host": socket.gethostname(),
                "io.ponder.expires_at": str(expires),
                "io.ponder.workspace": str(self.workspace),
            },
        }

    def stop(self) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise SandboxError(f"could not remove sandbox {self.name}: {exc}") from None

    @property
    def _container_id(self) -> str:
        if self._container is None or self._container.id is None:
            raise SandboxError("the sandbox is not running")
        return self._container.id

    def _api_exec(
        self, argv: list[str], stdin: bytes | None, timeout: float, sink: Callable[[bytes], None]
    ) -> tuple[int, bool]:
        """Run ``argv``; returns (exit code, whether the host watchdog gave up on it)."""
        assert self._client is not None
        deadline = time.monotonic() + timeout + KILL_GRACE_S + WATCHDOG_SLACK_S
        raw = run_exec(
            self._client.api,
            self._container_id,
            argv,
            stdin=stdin,
            deadline=deadline,
            on_output=sink,
        )
        return raw.exit_code, raw.deadline_passed

    def _run_script(
        self, script: str, timeout: float, on_output: OutputCallback | None = None
    ) -> ExecResult:
        runner = _RUNNER.format(grace=KILL_GRACE_S, timeout=f"{timeout:g}")
        capture = OutputCapture()
        decoder = StreamDecoder()

        def sink(data: bytes) -> None:
            capture.add(data)
            if on_output is not None and (text := decoder.decode(data)):
                on_output(text)

        started = time.monotonic()
        argv = ["bash", "--noprofile", "--norc", "-c", runner]
        code, abandoned = self._api_exec(argv, script.encode(), timeout, sink)
        elapsed = time.monotonic() - started
        timed_out = abandoned or (code in (124, 137) and elapsed >= timeout - 0.5)
        return ExecResult(
            exit_code=code,
            output=capture.text(),
            timed_out=timed_out,
            elapsed=elapsed,
            total_bytes=capture.total,
        )

    def exec(
        self, command: str, timeout: float, on_output: OutputCallback | None = None
    ) -> ExecResult:
        return self._run_script(_PRELUDE + command + "\n", timeout, on_output)

    def _file_op(self, script: str, path: str, data: bytes | None, *extra: str) -> bytes:
        received = bytearray()
        argv = ["bash", "--noprofile", "--norc", "-c", script, "ponder-file", self._absolute(path)]
        argv.extend(extra)
        code, abandoned = self._api_exec(argv, data, 60, received.extend)
        if abandoned:
            raise SandboxError(f"reading or writing {path} in the sandbox timed out")
        if code in _FILE_ERRORS:
            raise FileAccessError(_FILE_ERRORS[code], path)
        if code != 0:
            raise SandboxError(f"file operation on {path} failed (exit {code})")
        return bytes(received)

    @staticmethod
    def _absolute(path: str) -> str:
        return path if path.startswith("/") else f"{WORKDIR}/{path}"

    def read_file(self, path: str) -> bytes:
        return self._file_op(_READ, path, None)

    def write_file(self, path: str, data: bytes) -> None:
        self._file_op(_WRITE, path, data)

    def list_dir(self, path: str, depth: int) -> list[str]:
        listing = self._file_op(_LIST, path, None, str(depth))
        return sorted(listing.decode("utf-8", errors="replace").splitlines())
