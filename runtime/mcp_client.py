"""MCP servers as the session knows them: how each is reached (:class:`McpServerSpec`), where it
starts and what it inherits, and the names its tools go by. The connections themselves are
:mod:`ponder.runtime.mcp_hub`'s (the ``mcp`` SDK and asyncio load only for sessions with servers).

A server is a program on the host, and the workspace is the sandbox's to write: so a server
never starts there unless its definition names that ``cwd``. It starts in an empty folder of
ponder's own (:func:`server_folder`), and the ``PATH`` it inherits leaves out the workspace's
folders (:func:`server_env`); otherwise ``python -m NAME`` would import a ``NAME/`` the model
wrote, ``node server.js`` run its ``server.js``, and npm or uv read its ``.npmrc`` or
``uv.toml``.
"""

from __future__ import annotations

import os
import stat
import warnings
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import platformdirs

if TYPE_CHECKING:  # the SDK takes most of a second to import: only sessions with servers pay
    from mcp_types import Tool as McpToolInfo

MCP_PREFIX = "mcp__"
"""The model sees an MCP tool as ``mcp__<server>__<tool>``."""
SERVER_FOLDER = "mcp-cwd"


@dataclass(frozen=True)
class McpServerSpec:
    """How to reach one server: a ``command`` (stdio) or a ``url`` (streamable HTTP)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    """Where it starts (the definition's choice); unset: :func:`server_folder`."""
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    enabled_tools: frozenset[str] | None = None
    """Only these tools, when given."""
    disabled_tools: frozenset[str] = frozenset()
    startup_timeout: float = 10.0
    tool_timeout: float = 60.0
    workspace: str | None = None
    """The folder the sandbox can write, which the server starts outside of (unset: the
    process's working directory, which is where ponder runs)."""

    def offers(self, tool: str) -> bool:
        allowed = self.enabled_tools is None or tool in self.enabled_tools
        return allowed and tool not in self.disabled_tools


@dataclass
class ServerState:
    spec: McpServerSpec
    state: Literal["starting", "ready", "failed"] = "starting"
    tools: list[McpToolInfo] = field(default_factory=list)
    error: str | None = None
    restarts: int = 0


def inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def in_workspace(path: str | Path, workspace: str | Path) -> bool:
    """Whether ``path`` lies in the workspace, by its name or where its links lead (a link the
    sandbox can change, or one of the user's own into the workspace); relative to the
    process's working directory."""
    try:
        plain = _lexical(Path(path).expanduser())
        root = _lexical(Path(workspace))
        return any(
            inside(candidate, folder)
            for candidate in (plain, plain.resolve())
            for folder in (root, root.resolve())
        )
    except ValueError:  # a NUL in it: no such path, nothing runs from it
        return False


def _lexical(path: Path) -> Path:
    """The absolute path by its name alone: ``..`` taken away, links not followed."""
    return Path(os.path.normpath(path.absolute()))


def server_folder(workspace: str | Path) -> Path:
    """Where a server without ``cwd`` starts: an empty folder of ponder's own, mode 700, in the
    user's data directory (or, when that lies in the workspace, the runtime directory). Neither
    it nor any folder above it is the workspace's, so nothing the sandbox wrote is on the
    server's import path, under a relative path it names, or in configuration it looks for from
    its folder upward. Raises :class:`OSError` when there is no such folder."""
    for base in (platformdirs.user_data_path, platformdirs.user_runtime_path):
        with warnings.catch_warnings(), suppress(OSError):  # a runtime dir may be missing
            warnings.simplefilter(
                "ignore"
            )  # platformdirs warns of the runtime dir it falls back to
            folder = _private_folder(base("ponder") / SERVER_FOLDER, workspace)
            if folder is not None:
                return folder
    raise OSError(
        "no folder of ponder's own outside the workspace to start it in "
        "(name a cwd for it in the config)"
    )


def _private_folder(folder: Path, workspace: str | Path) -> Path | None:
    def apart(path: Path) -> bool:
        return not in_workspace(path, workspace) and not in_workspace(workspace, path)

    if not apart(folder):
        return None  # checked before making it, so as not to write into the workspace
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    real = folder.resolve(strict=True)
    info = real.lstat()
    if not apart(real) or not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return None
    if stat.S_IMODE(info.st_mode) != 0o700:
        real.chmod(0o700)
    return real


def server_env(spec: McpServerSpec) -> dict[str, str] | None:
    """What the server's environment adds to the SDK's inherited few (``HOME``, ``PATH``, …):
    the definition's ``env``, and, unless it names its own ``PATH``, the inherited ``PATH``
    without its relative folders and those in the workspace, where a command found would be
    one the sandbox wrote."""
    inherited = os.environ.get("PATH")
    if "PATH" in spec.env or inherited is None:
        return spec.env or None
    workspace = spec.workspace or Path.cwd()
    folders = inherited.split(os.pathsep)
    kept = [f for f in folders if Path(f).is_absolute() and not in_workspace(f, workspace)]
    if kept == folders:
        return spec.env or None
    return {**spec.env, "PATH": os.pathsep.join(kept)}


def tool_name(server: str, tool: str) -> str:
    return f"{MCP_PREFIX}{server}__{tool}"
