"""What ``ponder`` exits with, for scripts and CI to branch on."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ponder.runtime.events import RunFinished


class UsageError(Exception):
    """The command line or configuration asks for something that cannot be done (exits 2)."""


EXIT_OK = 0
"""The task finished: the model answered or submitted."""
EXIT_FAILED = 1
"""The task did not finish: an error, or a budget or the loop guard stopped it."""
EXIT_USAGE = 2
"""The command line or the configuration is wrong (no model, no Docker, a bad flag)."""
EXIT_RETRYABLE = 75
"""The backend was unreachable or rate-limiting; the same command may work later (EX_TEMPFAIL)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C."""


def exit_code(finished: RunFinished | None) -> int:
    """The exit code for how the last task ended (None: no task was run)."""
    if finished is None or finished.reason in ("answered", "submitted"):
        return EXIT_OK
    if finished.reason == "interrupted":
        return EXIT_INTERRUPTED
    if finished.retryable:
        return EXIT_RETRYABLE
    return EXIT_FAILED
