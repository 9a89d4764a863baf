"""Creating, labelling and reaping sandbox containers.

Every container carries labels naming its session, its owner (host, pid and the pid's start time,
so a reused pid is not mistaken for the owner) and its expiry. A container whose owner is gone or
whose time is up is a leftover: :func:`reap_leftovers` removes those, at start-up and from
``ponder sandbox cleanup``. PID 1 sleeps until the expiry, so a leftover nobody reaps goes away.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import Mount, Ulimit

from ponder.sandbox.base import SandboxError, SandboxUnavailable
from ponder.sandbox.leftovers import owner_alive, process_start_time
from ponder.sandbox.tree_walk import Entry, walk_entries

Engine = docker.DockerClient
"""A connection to a Docker engine (what :func:`connect` returns), for layers above this one."""
LABEL = "io.ponder.managed"
PID1_USER = "65534:65534"
"""PID 1 runs as nobody, so a command's ``kill -9 -1`` cannot take the container down."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one sandbox container."""

    memory: int = 4 * 1024**3
    """Memory in bytes, swap included (the container gets no extra swap)."""
    cpus: float = 2.0
    pids: int = 1024
    """Most processes and threads at once (a fork bomb stops here)."""
    file_size: int = 4 * 1024**3
    """Largest file a command may write, in bytes (a disk fill stops here)."""
    open_files: int = 4096
    tmp_size: int = 2 * 1024**3
    """Bytes /tmp (memory-backed) may hold."""


def connect() -> docker.DockerClient:
    """A client for the Docker engine that DOCKER_HOST (or the default socket) names."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise SandboxUnavailable(_unreachable(where, str(exc))) from None
    except _ssh_errors() as exc:  # ssh:// hosts: an unknown host key, a refused login
        raise SandboxUnavailable(
            f"SSH to the Docker host {where} failed: {exc}. ponder signs in with "
            "~/.ssh/config, ~/.ssh/known_hosts, your keys and ssh-agent: connect once with ssh "
            f"to accept the host key, and check that `docker -H {where} version` works."
        ) from None
    return client


def _unreachable(where: str, text: str) -> str:
    if "Permission denied" in text:
        return (
            f"this user may not use the Docker engine at {where}. Add it to the docker group "
            "(`sudo usermod -aG docker $USER`, then log in again), or run without isolation "
            "with --sandbox local."
        )
    errno = re.search(r"\[Errno [^\]]+\] ([^'\"()]+)", text)  # under requests' and urllib3's words
    reason = errno.group(1).strip() if errno else text[:200]
    if where.startswith("unix://"):
        fix = (
            "Start it (`sudo systemctl start docker`, or `sudo dockerd &`), or run ./install.sh, "
            "which installs and starts one; --sandbox local runs without isolation."
        )
    else:
        fix = (
            f"Check that the host is up and `docker -H {where} version` works, or unset "
            "DOCKER_HOST to use this machine's engine."
        )
    return f"cannot reach a Docker engine at {where} ({reason}). {fix}"


def _ssh_errors() -> tuple[type[Exception], ...]:
    """paramiko's errors, which the docker SDK lets through on ``ssh://`` hosts (imported only
    when something went wrong, so a local engine never loads paramiko)."""
    try:
        import paramiko
    except ImportError:
        return ()
    return (paramiko.SSHException,)


def labels(session: str, lifetime_s: int, workspace: str) -> dict[str, str]:
    pid = os.getpid()
    return {
        LABEL: "1",
        "io.ponder.session": session,
        "io.ponder.owner_host": socket.gethostname(),
        "io.ponder.owner_pid": str(pid),
        "io.ponder.owner_start": process_start_time(pid),
        "io.ponder.expires_at": str(int(time.time()) + lifetime_s),
        "io.ponder.workspace": workspace,
    }


GIT_SEARCH_LIMIT = 50_000
"""Most directories searched for nested git repositories (a home directory holds many)."""
UNSEARCHED = (
    "not every folder of the workspace was searched for git repositories (more than {n:,}): "
    "a .git deeper down is writable by the sandbox; look at .git/config and hooks there "
    "before you use git"
)


def git_metadata(root: Path) -> tuple[list[str], bool]:
    """Every git directory in ``root``, relative to it, the top one first: each ``.git`` (a
    directory, or a file naming one), in every folder (ignored and package folders too: a
    repository in ``.venv/src`` runs its hooks like any other), and the directory a ``.git``
    link or file names when it is elsewhere in ``root`` (``gitdir: ../.gitdirs/proj.git``);
    symlinks are not followed on the way. The flag says whether the search was complete
    (:data:`GIT_SEARCH_LIMIT`)."""
    found: set[str] = set()
    searched = 0
    top = root.resolve()

    def descend(path: bytes, entry: Entry) -> bool:
        nonlocal searched
        if entry.name == ".git":
            found.add(os.fsdecode(path))
            return False
        searched += 1
        return searched < GIT_SEARCH_LIMIT

    for path, entry, is_directory in walk_entries(os.fsencode(root), descend):
        if entry.name != ".git" or is_directory:
            continue
        if entry.is_file(follow_symlinks=False):
            found.add(os.fsdecode(path))  # a file naming a git directory: its own name too
        named = _named_git_directory(top, top / os.fsdecode(path))
        if named is not None:
            found.add(named)
    return sorted(found, key=lambda path: (path.count("/"), path)), searched < GIT_SEARCH_LIMIT


def _named_git_directory(top: Path, dot_git: Path) -> str | None:
    """The directory in ``top`` that the link or file ``dot_git`` names (None: none there)."""
    try:
        if dot_git.is_symlink():
            target = dot_git.readlink()
        else:
            with dot_git.open("rb") as file:
                line = file.read(4096).split(b"\n", 1)[0].strip()
            if not line.startswith(b"gitdir:"):
                return None
            target = Path(os.fsdecode(line[len(b"gitdir:") :].strip()))
        resolved = (dot_git.parent / target).resolve()
    except (OSError, ValueError):
        return None
    if resolved == top or top not in resolved.parents or not resolved.is_dir():
        return None
    return str(resolved.relative_to(top))


def run_options(
    *,
    name: str,
    workdir: str,
    bind: Path | None,
    volume: str | None,
    read_only: list[str],
    network: bool,
    limits: Limits,
    environment: dict[str, str],
    container_labels: dict[str, str],
    lifetime_s: int,
) -> dict[str, Any]:
    """``containers.run`` arguments for a hardened, self-expiring sandbox.

    A bind-mounted workspace gets each of its git directories in ``read_only`` (``.git``, nested
    ones too, :func:`git_metadata`) mounted again, read-only: hooks, config and refs written
    there would run or count on the host.
    A copy lives in ``volume`` (:func:`create_volume`), whose size is its disk limit.
    """
    mounts = (
        [Mount(target=workdir, source=str(bind), type="bind")]
        + [
            Mount(target=f"{workdir}/{path}", source=str(bind / path), type="bind", read_only=True)
            for path in read_only
        ]
        if bind
        else [Mount(target=workdir, source=volume, type="volume")]
    )
    return {
        "command": ["sleep", str(lifetime_s)],
        "name": name,
        "detach": True,
        "auto_remove": True,
        "init": True,
        "user": PID1_USER,
        "working_dir": workdir,
        "mounts": mounts,
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,exec,nosuid,nodev,size={limits.tmp_size}"},
        "network_mode": "bridge" if network else "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": limits.pids,
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,
        "nano_cpus": int(min(limits.cpus, os.cpu_count() or 1) * 1e9),
        "ulimits": [
            Ulimit(name="fsize", soft=limits.file_size, hard=limits.file_size),
            Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
        ],
        "environment": environment,
        "labels": container_labels,
    }


def create_volume(
    client: docker.DockerClient, name: str, size: int, inodes: int, volume_labels: dict[str, str]
) -> str:
    """A memory-backed volume for a copy of a workspace: it cannot hold more than ``size``
    bytes and ``inodes`` files, whatever runs in the container (the kernel says no)."""
    try:
        client.volumes.create(
            name=name,
            driver="local",
            driver_opts={
                "type": "tmpfs",
                "device": "tmpfs",
                "o": f"size={size},nr_inodes={inodes},mode=0755",
            },
            labels=volume_labels,
        )
    except docker.errors.APIError as exc:
        raise SandboxError(
            f"docker could not make the sandbox's volume: {exc.explanation}"
        ) from None
    return name


def remove_volume(client: docker.DockerClient, name: str) -> None:
    try:
        client.api.remove_volume(name, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # still in use by a container being removed: reaped later
            raise SandboxError(f"could not remove the volume {name}: {exc.explanation}") from None


def image_archive(client: docker.DockerClient, image: str, path: str, limit: int) -> IO[bytes]:
    """A tar of ``path`` as the image holds it, read through a container that never starts."""
    helper = client.containers.create(image, command=["true"], labels={LABEL: "1"})
    archive = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    try:
        stream, _ = helper.get_archive(f"{path}/.")  # its content, named ./...
        written = 0
        for chunk in stream:
            written += len(chunk)
            if written > limit:
                raise SandboxError(f"{path} in {image} is over {limit // 1024**2} MiB")
            archive.write(chunk)
    except BaseException:
        archive.close()
        raise
    finally:
        helper.remove(force=True)
    archive.seek(0)
    return archive


def create(client: docker.DockerClient, image: str, options: dict[str, Any]) -> Container:
    """Start the container; a leftover holding the name is reaped, anything else renamed."""
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise SandboxUnavailable(
            f"sandbox image {image} is not here; build it with `ponder sandbox build` (or name "
            "an image you have with --image)"
        ) from None
    for attempt in range(3):
        try:
            container: Container = client.containers.run(image, **options)
            return container
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise SandboxError(
                    f"docker could not start the sandbox: {exc.explanation}"
                ) from None
            if not _remove_if_leftover(client, options["name"]):
                options = {**options, "name": f"{options['name']}-{attempt + 2}"}
    raise SandboxError(f"the container name {options['name']} stays taken")


def _remove_if_leftover(client: docker.DockerClient, name: str) -> bool:
    try:
        holder = client.containers.get(name)
    except docker.errors.NotFound:
        return True  # gone meanwhile
    if holder.labels.get(LABEL) == "1" and is_leftover(holder.labels):
        holder.remove(force=True, v=True)
        return True
    return False


def is_leftover(container_labels: dict[str, str], now: float | None = None) -> bool:
    """Expired, or owned by a process on this host that no longer runs."""
    now = time.time() if now is None else now
    if int(container_labels.get("io.ponder.expires_at", "0") or 0) < now:
        return True
    if container_labels.get("io.ponder.owner_host") != socket.gethostname():
        return False  # another machine's sandbox: only its expiry says it is left over
    pid = int(container_labels.get("io.ponder.owner_pid", "0") or 0)
    return not owner_alive(pid, container_labels.get("io.ponder.owner_start", ""))


def managed_containers(client: docker.DockerClient) -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of every container ponder made.

    Listed sparsely: a full listing inspects each container afterwards, which fails for one
    being removed at that moment.
    """
    found = []
    for container in client.containers.list(all=True, sparse=True, filters={"label": f"{LABEL}=1"}):
        names = container.attrs.get("Names") or [container.id or "?"]
        found.append((str(names[0]).lstrip("/"), dict(container.attrs.get("Labels") or {})))
    return found


def reap_leftovers(client: docker.DockerClient) -> list[str]:
    """Remove ponder's leftover containers and copy-mode volumes; returns their names."""
    removed = []
    for name, container_labels in managed_containers(client):
        if not is_leftover(container_labels):
            continue
        try:
            client.api.remove_container(name, force=True, v=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            if "already in progress" not in str(exc):
                raise
        removed.append(name)
    for volume in client.api.volumes(filters={"label": f"{LABEL}=1"}).get("Volumes") or []:
        if is_leftover(volume.get("Labels") or {}):
            with contextlib.suppress(SandboxError):  # in use: reaped once its container is gone
                remove_volume(client, volume["Name"])
                removed.append(volume["Name"])
    return removed


def workspace_archive(root: Path) -> IO[bytes]:
    """A tar of ``root``'s contents for ``put_archive``: links kept, every file owned by root
    (copy-mode commands run as root without capabilities, so they must own what they edit)."""

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    archive = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name, filter=as_root)
    archive.seek(0)
    return archive
