"""Opening the sandbox a session runs in: Docker (the default image built when missing, leftovers
of earlier sessions reaped first) or, only when chosen, the local backend with a warning.

The Docker SDK (and the SSH library it loads) is imported only when a Docker sandbox is opened:
a run with the local backend starts without it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ponder.app.config import Config
from ponder.app.exit_codes import UsageError
from ponder.sandbox.base import Sandbox
from ponder.sandbox.environment import allowed_host_variables
from ponder.sandbox.local_sandbox import LocalSandbox

if TYPE_CHECKING:
    import docker

    from ponder.sandbox.docker_sandbox import DockerSandbox


def _progress(line: str) -> None:
    print(f"[sandbox image] {line}", file=sys.stderr, flush=True)


def prepared_engine(image: str) -> docker.DockerClient:
    """The Docker engine, with leftovers of dead runs reaped and ponder's image built if needed."""
    from ponder.sandbox.docker_setup import connect, reap_leftovers
    from ponder.sandbox.image import DEFAULT_IMAGE, build_default_image

    client = connect()
    reap_leftovers(client)
    if image == DEFAULT_IMAGE:
        build_default_image(client, tag=image, log=_progress)
    return client


def sandbox_image(config: Config) -> str:
    """The configured sandbox image; unset, ponder's own."""
    from ponder.sandbox.image import DEFAULT_IMAGE

    return config.session.image or DEFAULT_IMAGE


def copy_sandboxes(config: Config, workspace: Path) -> Callable[[int], DockerSandbox]:
    """Heavy mode's sandboxes: for attempt N, a copy-mode sandbox of ``workspace`` (to be
    entered), on the engine prepared once, with the session's image, network and environment."""
    if config.session.sandbox == "local":
        raise UsageError(
            "heavy mode runs each attempt in a copy of the workspace, which needs Docker; "
            "--sandbox local has no copies"
        )
    from ponder.sandbox.docker_sandbox import DockerSandbox

    client = prepared_engine(sandbox_image(config))
    environment = allowed_host_variables(config.session.pass_env)
    return lambda number: DockerSandbox(
        workspace,
        sandbox_image(config),
        mode="copy",
        client=client,
        network=config.session.network,
        environment=environment,
        disk=config.disk,
    )


@contextmanager
def sandbox_session(config: Config, workspace: Path) -> Iterator[Sandbox]:
    """A started sandbox on ``workspace``, removed when the block ends however it ends. Its
    ``notes`` (--sandbox local's warning) are the caller's to show (:func:`warn`), where the
    person will read them: after an interactive session's header, not before it."""
    environment = allowed_host_variables(config.session.pass_env)
    sandbox: DockerSandbox | LocalSandbox
    if config.session.sandbox == "local":
        sandbox = LocalSandbox(workspace, environment, disk=config.disk)
    else:
        from ponder.sandbox.docker_sandbox import DockerSandbox

        client = prepared_engine(sandbox_image(config))
        sandbox = DockerSandbox(
            workspace,
            sandbox_image(config),
            client=client,
            network=config.session.network,
            environment=environment,
            disk=config.disk,
        )
    with sandbox:
        yield sandbox


def warn(notes: Sequence[str]) -> None:
    """A sandbox's notes on stderr, for commands with no header of their own."""
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
