"""The environment every command sees, whatever the backend.

No pagers, prompts, editors, colour or progress bars: a command that would wait for a person
fails or finishes at once instead, since nobody is there to answer it. Nothing of the host's
environment is passed on unless the user allow-lists it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ponder.sandbox.scripts import STATE_DIR

COMMAND_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TERM": "dumb",
    "NO_COLOR": "1",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
    "MANPAGER": "cat",
    "SYSTEMD_PAGER": "",
    "LESS": "-R",
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


def allowed_host_variables(names: Iterable[str]) -> dict[str, str]:
    """The host variables the user allow-listed by name, those that are set."""
    return {name: os.environ[name] for name in names if name in os.environ}
