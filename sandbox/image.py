"""Building the default sandbox image, with or without a registry.

Three ways, tried in this order:
1. a Debian base image already present locally: ``docker build`` on top of it;
2. no base image, but root and ``debootstrap``: build a Debian root filesystem from a Debian
   mirror and ``docker import`` it (this works where no image registry can be reached);
3. otherwise pull ``debian:bookworm-slim`` from the registry and build on it.

The tag carries a digest of the recipe, so changing the package list makes a new image.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from ponder.sandbox.base import SandboxError
from ponder.sandbox.leftovers import private_tempdir

SUITE = "bookworm"
PACKAGES = (
    "bash",
    "build-essential",
    "ca-certificates",
    "coreutils",
    "curl",
    "diffutils",
    "file",
    "findutils",
    "git",
    "grep",
    "less",
    "patch",
    "procps",
    "python3",
    "python3-pip",
    "python3-pytest",
    "python3-venv",
    "sed",
)
BASE_IMAGES = ("debian:bookworm-slim", "debian:bookworm", "debian:12-slim", "debian:12")
IMAGE_REPOSITORY = "ponder-sandbox"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_ENV = ("LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


def _recipe_digest() -> str:
    recipe = "\n".join((SUITE, *PACKAGES, *_ENV))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{_recipe_digest()}"

Log = Callable[[str], None]


def image_present(client: docker.DockerClient, tag: str) -> bool:
    """Whether the engine has ``tag``; :class:`SandboxError` when the engine fails to say."""
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.APIError as error:
        raise SandboxError(f"docker failed looking for {tag}: {error}") from None
    return True


def build_default_image(
    client: docker.DockerClient,
    *,
    tag: str = DEFAULT_IMAGE,
    mirror: str | None = None,
    force: bool = False,
    log: Log = print,
) -> str:
    """Make sure ``tag`` exists, building it if needed; returns how it was obtained."""
    if image_present(client, tag) and not force:
        return "present"
    base = next((name for name in BASE_IMAGES if image_present(client, name)), None)
    if base is not None:
        log(f"building {tag} on the local base image {base}")
        _build_on_base(client, base, tag, log)
        return f"built on {base}"
    if shutil.which("debootstrap") and os.geteuid() == 0:
        mirror = mirror or host_debian_mirror()
        log(f"building {tag} from a Debian {SUITE} root filesystem (debootstrap, {mirror})")
        _build_with_debootstrap(client, tag, mirror, log)
        return "debootstrap"
    log(f"no local Debian image; pulling {BASE_IMAGES[0]}")
    try:
        client.images.pull(BASE_IMAGES[0])
    except docker.errors.APIError as exc:
        raise SandboxError(
            f"cannot build the sandbox image: no local Debian base image, no registry "
            f"({exc.explanation or exc}), and debootstrap needs root. Install debootstrap and run "
            "`sudo ponder sandbox build`, or load a Debian image (`docker load`), or name an "
            "image you have with --image."
        ) from None
    _build_on_base(client, BASE_IMAGES[0], tag, log)
    return f"built on {BASE_IMAGES[0]}"


def _dockerfile(base: str) -> str:
    env = " ".join(_ENV)
    return (
        f"FROM {base}\n"
        "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
        f"--no-install-recommends {' '.join(PACKAGES)} && rm -rf /var/lib/apt/lists/*\n"
        f"ENV {env}\n"
    )


def _build_on_base(client: docker.DockerClient, base: str, tag: str, log: Log) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = _dockerfile(base).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    try:
        for chunk in client.api.build(
            fileobj=context, custom_context=True, tag=tag, rm=True, decode=True
        ):
            if "stream" in chunk and chunk["stream"].strip():
                log(chunk["stream"].rstrip())
            if "error" in chunk:
                raise SandboxError(f"building {tag} failed: {chunk['error'].strip()}")
    except docker.errors.APIError as exc:
        raise SandboxError(f"building {tag} failed: {exc.explanation or exc}") from None


def _build_with_debootstrap(client: docker.DockerClient, tag: str, mirror: str, log: Log) -> None:
    tmp = private_tempdir("ponder-rootfs-")
    try:
        root = tmp / "rootfs"
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(root),
            mirror,
        ]
        log("$ " + " ".join(command))
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
            raise SandboxError(
                f"debootstrap failed (exit {result.returncode}); is {mirror} reachable?\n{tail}"
            )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        log(f"importing the root filesystem as {tag}")
        _import_rootfs(client, root, tag)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _import_rootfs(client: docker.DockerClient, root: Path, tag: str) -> None:
    repository, _, version = tag.rpartition(":")
    changes = [f"ENV {item}" for item in _ENV]
    # The import endpoint wants a chunked body, so the tar stream is handed over piece by piece
    # straight from tar (no temporary archive of the whole root filesystem).
    with subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE) as tar:
        assert tar.stdout is not None
        pieces = iter(lambda: tar.stdout.read(1 << 20) if tar.stdout else b"", b"")
        try:
            client.api.import_image_from_stream(
                pieces, repository=repository, tag=version, changes=changes
            )
        except docker.errors.APIError as exc:
            tar.kill()
            raise SandboxError(f"docker import failed: {exc.explanation or exc}") from None
    if tar.returncode != 0 or not image_present(client, tag):
        raise SandboxError(f"docker import did not produce {tag} (tar exit {tar.returncode})")


def host_debian_mirror() -> str:
    """The Debian mirror this host's apt uses, so the image comes from the same place."""
    candidates = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]
    for source in candidates:
        try:
            text = source.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            for word in line.split():
                if word.startswith("http") and word.rstrip("/").endswith("/debian"):
                    return word.rstrip("/")
    return DEFAULT_MIRROR
