"""Opening the sandbox a session runs in: Docker (the default image built when missing, leftovers
of earlier sessions reaped first) or, only when chosen, the local backend with a warning."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from ponder.app.config import Config
from ponder.app.exit_codes import UsageError
from ponder.sandbox.base import Sandbox
from ponder.sandbox.docker_sandbox import DockerSandbox
from ponder.sandbox.docker_setup import connect, reap_leftovers
from ponder.sandbox.environment import allowed_host_variables
from ponder.sandbox.image import DEFAULT_IMAGE, build_default_image
from ponder.sandbox.local_sandbox import WARNING, LocalSandbox


def _progress(line: str) -> None:
    print(f"[sandbox image] {line}", file=sys.stderr, flush=True)


def prepared_engine(image: str) -> docker.DockerClient:
    """The Docker engine, with leftovers of dead runs reaped and ponder's image built if needed."""
    client = connect()
    reap_leftovers(client)
    if image == DEFAULT_IMAGE:
        build_default_image(client, tag=image, log=_progress)
    return client


def copy_sandboxes(config: Config, workspace: Path) -> Callable[[int], DockerSandbox]:
    """Heavy mode's sandboxes: for attempt N, a copy-mode sandbox of ``workspace`` (to be
    entered), on the engine prepared once, with the session's image, network and environment."""
    if config.sandbox == "local":
        raise UsageError(
            "heavy mode runs each attempt in a copy of the workspace, which needs Docker; "
            "--sandbox local has no copies"
        )
    client = prepared_engine(config.image)
    environment = allowed_host_variables(config.pass_env)
    return lambda number: DockerSandbox(
        workspace,
        config.image,
        mode="copy",
        client=client,
        network=config.network,
        environment=environment,
        disk=config.disk.limits(),
    )


@contextmanager
def sandbox_session(config: Config, workspace: Path) -> Iterator[Sandbox]:
    """A started sandbox on ``workspace``, removed when the block ends however it ends."""
    environment = allowed_host_variables(config.pass_env)
    sandbox: DockerSandbox | LocalSandbox
    if config.sandbox == "local":
        print(f"warning: {WARNING}", file=sys.stderr)
        sandbox = LocalSandbox(workspace, environment, disk=config.disk.limits())
    else:
        client = prepared_engine(config.image)
        sandbox = DockerSandbox(
            workspace,
            config.image,
            client=client,
            network=config.network,
            environment=environment,
            disk=config.disk.limits(),
        )
    with sandbox:
        for note in sandbox.notes:
            print(f"warning: {note}", file=sys.stderr)
        yield sandbox
