"""The sandbox seam: what the runtime may ask of any sandbox backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

WORKDIR = "/workspace"
"""Where the workspace appears inside a Docker sandbox unless another place is chosen."""


class SandboxError(Exception):
    """The sandbox cannot do what was asked; the message says why and what to do."""


class SandboxUnavailable(SandboxError):
    """No sandbox can be started (no Docker engine, no permission, no image)."""


class ContainerGone(SandboxError):
    """The sandbox's container stopped or was removed underneath us."""


class FileAccessError(SandboxError):
    """A file operation was refused; ``kind`` says why (the runtime words it for the model)."""

    def __init__(self, kind: str, path: str, detail: str = "") -> None:
        self.kind = kind
        self.path = path
        super().__init__(detail or f"{kind}: {path}")


OUTSIDE_WORKSPACE = "outside_workspace"
NOT_FOUND = "not_found"
IS_DIRECTORY = "is_directory"
TOO_LARGE = "too_large"
NOT_A_DIRECTORY = "not_a_directory"


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int
    output: str
    """stdout and stderr in the order they were written, capped for the model (output.py)."""
    timed_out: bool
    elapsed: float
    """Seconds from start to end."""
    total_bytes: int
    """All bytes the command wrote, including any left out of ``output``."""
    truncated: bool = False
    log_path: str | None = None
    """Where inside the sandbox the full output was saved, when ``output`` is cut."""
    notice: str | None = None
    """Something else worth knowing: out of memory, file size limit, sandbox restarted."""
    interrupted: bool = False
    """Stopped because the caller asked (``cancel``), with everything it started."""


OutputCallback = Callable[[str], None]


class Halt(Protocol):
    """What tells a running command to stop: a ``threading.Event``, or :class:`AnyOf` them."""

    def is_set(self) -> bool: ...


class AnyOf:
    """Set as soon as any of its events is (the user's interrupt, or a guard's stop)."""

    def __init__(self, *events: threading.Event | None) -> None:
        self.events = [event for event in events if event is not None]

    def is_set(self) -> bool:
        return any(event.is_set() for event in self.events)


class Sandbox(Protocol):
    """One isolated place to run commands, with the workspace at :attr:`workdir`."""

    @property
    def description(self) -> str:
        """Where commands run, for a person: e.g. ``docker, bind mode, network off``."""
        ...

    @property
    def workdir(self) -> str:
        """The workspace's path inside the sandbox; relative tool paths start here."""
        ...

    notes: list[str]
    """What the person should know about it once started (``--sandbox local``: that nothing
    is isolated; a workspace too big to search for planted ``.git`` folders)."""

    def start(self) -> None: ...

    def stop(self) -> None:
        """Remove everything the sandbox made; safe to call twice."""
        ...

    def exec(
        self,
        command: str,
        timeout: float,
        on_output: OutputCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ExecResult:
        """Run a bash command; ``on_output`` receives text as it is produced; setting ``cancel``
        stops it (and what it started) within a moment."""
        ...

    def background_jobs(self) -> bool:
        """Whether processes that commands started still run (a background job, a daemon),
        told from outside the sandbox so that no process can hide; True when it cannot be
        told."""
        ...

    def read_file(self, path: str) -> bytes:
        """Read a file inside the workspace; raises :class:`FileAccessError`."""
        ...

    def write_file(self, path: str, data: bytes) -> None:
        """Replace or create a file inside the workspace atomically, keeping its mode."""
        ...

    def list_dir(self, path: str, depth: int) -> list[str]:
        """Entries under a workspace directory, ``depth`` levels deep, hidden ones left out."""
        ...
