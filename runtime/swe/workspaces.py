"""A copy-mode sandbox holding an instance's repository at ``/testbed``, at ``base_commit``.

Where the repository comes from, first that applies:
1. the instance's ``image_name``/``docker_image``: the repository is already in the image;
2. SWE-bench's published image for the instance, when this engine has it;
3. ponder's default image, with the repository checked out on the host from ``repo_path`` (a
   directory) or ``repo_bundle`` (a git bundle), else cloned from GitHub when reachable.
A missing image, a failing Docker engine or a checkout that fails is an
:class:`InfrastructureError`: the run reports it apart from tasks the agent did not solve.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from ponder.runtime.host_git import GitFailed, run_git
from ponder.runtime.swe.instances import Instance, swebench_image_name
from ponder.sandbox.base import SandboxError
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import Engine, Limits
from ponder.sandbox.image import image_present
from ponder.sandbox.leftovers import private_tempdir

WORKDIR = "/testbed"
IMAGE_ENVIRONMENT = {"BASH_ENV": "/root/.bashrc"}
"""SWE-bench images activate their conda environment from root's bashrc."""
CLONE_TIMEOUT_S = 600


class InfrastructureError(Exception):
    """The instance could not be set up or run for reasons that are not the agent's."""


def _has_image(client: Engine, image: str) -> bool:
    try:
        return image_present(client, image)
    except SandboxError as error:
        raise InfrastructureError(str(error)) from None


def image_for(instance: Instance, client: Engine, default: str) -> tuple[str, bool]:
    """The image to run the instance in, and whether the repository is inside it."""
    if instance.image:
        if not _has_image(client, instance.image):
            raise InfrastructureError(f"image {instance.image} is not on this Docker engine")
        return instance.image, True
    published = swebench_image_name(instance.instance_id)
    if _has_image(client, published):
        return published, True
    return default, False


def _git(*args: str, cwd: Path | None = None) -> None:
    try:
        run_git(*args, cwd=cwd, timeout=CLONE_TIMEOUT_S)
    except GitFailed as error:
        raise InfrastructureError(str(error)) from None


@contextmanager
def checkout(instance: Instance) -> Iterator[Path]:
    """The instance's repository at ``base_commit`` in a temporary directory."""
    source = instance.local_repository()
    if source is None and not instance.repo:
        raise InfrastructureError(
            f"{instance.instance_id}: no image_name, repo_path, repo_bundle or repo to get the "
            "repository from"
        )
    if source is not None and not source.exists():
        raise InfrastructureError(f"{instance.instance_id}: {source} does not exist")
    temporary = private_tempdir("ponder-swe-")
    try:
        target = temporary / "repo"
        origin = str(source) if source else f"https://github.com/{instance.repo}.git"
        _git("clone", "--quiet", "--", origin, str(target), cwd=temporary)
        if instance.base_commit:
            _git("checkout", "--quiet", "--detach", instance.base_commit, cwd=target)
        yield target
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


@contextmanager
def instance_sandbox(
    instance: Instance,
    *,
    client: Engine,
    default_image: str,
    limits: Limits | None = None,
    network: bool = False,
) -> Iterator[DockerSandbox]:
    """A started copy-mode sandbox with the repository at :data:`WORKDIR`; removed afterwards."""
    image, inside = image_for(instance, client, default_image)
    try:
        with (
            nullcontext(None) if inside else checkout(instance) as tree,
            DockerSandbox(
                tree,
                image,
                mode="copy",
                workdir=WORKDIR,
                client=client,
                network=network,
                limits=limits,
                environment=IMAGE_ENVIRONMENT if inside else None,
            ) as sandbox,
        ):
            yield sandbox
    except SandboxError as error:  # the image, the engine, or the sandbox itself failed
        raise InfrastructureError(str(error)) from None
