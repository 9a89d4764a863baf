"""Runs with nobody watching: one-liners (``ponder -p``) and CI (``ponder exec``).

``ponder -p PROMPT`` prints only the final answer on stdout, so it fits a pipeline; ``-v`` shows
the activity on stderr. Input piped into it is read and given to the model with the prompt; a
terminal or a closed stdin is never read. ``ponder exec`` is for CI: with ``--json`` every event
goes to stdout as one JSON line (docs/events.md), and stdin is read only when the prompt is
``-``. Both answer approvals by policy (``--approve-unattended``, deny by default) and exit with
the codes in :mod:`ponder.app.exit_codes`.
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from ponder.app.config import Config
from ponder.app.exit_codes import UsageError, exit_code
from ponder.app.frontends.choose import ctrl_c_interrupts, unattended_decision
from ponder.app.frontends.line import LinePrinter
from ponder.app.frontends.output_schema import RETRIES, parse_answer, retry_task, with_schema
from ponder.app.sandboxes import warn
from ponder.app.session import open_session
from ponder.app.wording.changes import changes_summary
from ponder.app.wording.events import STOPPED, counted, describe_usage
from ponder.runtime.events import AnswerRejected, Event, RunFinished, event_to_json
from ponder.runtime.port import Unattended
from ponder.runtime.usage import runs_together
from ponder.sandbox.safe_text import safe_text

STDIN_HINT_AFTER_S = 3.0
"""How long a silent pipe is waited on before saying so on stderr."""
MAX_STDIN_CHARS = 200_000
"""Piped input beyond this keeps its beginning and end (the model's context is finite)."""


def read_piped_input(hint_after: float = STDIN_HINT_AFTER_S) -> str | None:
    """What a pipe or file on stdin holds; None for a terminal or a closed stdin."""
    try:
        fd = sys.stdin.fileno()
        os.fstat(fd)
    except (AttributeError, ValueError, OSError):  # no stdin at all, or a closed one
        return None
    if os.isatty(fd):
        return None
    ready, _, _ = select.select([fd], [], [], hint_after)
    if not ready:
        print(
            "ponder: waiting for input on stdin (give it </dev/null if there is none)",
            file=sys.stderr,
            flush=True,
        )
    data = sys.stdin.buffer.read()
    return data.decode("utf-8", errors="replace") if data else None


def with_piped_input(prompt: str, piped: str | None) -> str:
    """The task: the prompt, then the piped input (cut in the middle when very long)."""
    if piped is None:
        return prompt
    if len(piped) > MAX_STDIN_CHARS:
        half = MAX_STDIN_CHARS // 2
        left_out = len(piped) - 2 * half
        piped = f"{piped[:half]}\n[... {left_out} characters left out ...]\n{piped[-half:]}"
    if not prompt:
        return piped
    return f"{prompt}\n\nThe input piped to this task:\n<stdin>\n{piped.rstrip()}\n</stdin>"


class JsonLines:
    """Writes each event as one JSON line on stdout; if the reader goes away, stops the run.

    A reader can leave while nothing is written (``| head -1`` during a long command), so a
    thread waits on stdout for the error a pipe reports once its reader is gone.
    """

    def __init__(self, on_closed: Callable[[], None]) -> None:
        self._on_closed = on_closed
        self._closed = False
        threading.Thread(target=self._watch, daemon=True, name="stdout-watch").start()

    def _watch(self) -> None:
        try:
            poller = select.poll()
            poller.register(sys.stdout.fileno(), 0)  # only errors and hang-ups wake it
        except (AttributeError, ValueError, OSError):
            return
        if poller.poll():
            self._on_closed()

    def __call__(self, event: Event) -> None:
        if self._closed:
            return
        try:
            sys.stdout.write(event_to_json(event) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # Python's advice: point stdout at devnull so the exit does not raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self._closed = True
            self._on_closed()


def run_unattended(
    config: Config,
    workspace: Path,
    task: str,
    *,
    json_events: bool = False,
    verbose: bool = False,
    last_message: Path | None = None,
    resume: str | None = None,
    summary: bool = False,
    output_schema: dict[str, Any] | None = None,
) -> int:
    """Run one task to its end; the answer goes to stdout unless events do. ``summary``: a
    last line on stderr with the session id and the usage; ``output_schema``: the answer must
    be JSON matching it, and is written as JSON."""
    if not task.strip():
        raise UsageError("no task: give a prompt (or pipe one in)")
    mismatch = None
    with open_session(config, workspace, resume=resume) as session:
        warn(session.sandbox_notes)
        if session.resumed is not None:  # (an interactive session shows it in its history)
            print(f"ponder: {session.resumed}", file=sys.stderr)
        display: Callable[[Event], None]
        if json_events:
            display = JsonLines(session.interrupt)
        elif verbose:
            display = LinePrinter(
                Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty()),
                interactive=False,
            )
        else:
            display = _quiet
        port = Unattended(display, unattended_decision(config))
        started = session.checkpoint_now()
        with ctrl_c_interrupts(session.interrupt):
            if output_schema is not None:
                task = with_schema(task, output_schema)
            runs = [session.run(task, port)]
            for retry in range(RETRIES + 1 if output_schema is not None else 0):
                if runs[-1].reason not in ("answered", "submitted"):
                    mismatch = None  # it ended for another reason, which is the one to tell
                    break
                value, mismatch = parse_answer(runs[-1].answer, output_schema or {})
                if mismatch is None:
                    answer = json.dumps(value, ensure_ascii=False)
                    runs[-1] = runs[-1].model_copy(update={"answer": answer})
                    break
                session.tell(AnswerRejected(problem=mismatch, retrying=retry < RETRIES), port)
                if retry == RETRIES:  # the answer was sent back RETRIES times: no more
                    break
                runs.append(session.run(retry_task(mismatch), port))
        finished = runs_together(runs)
        changes = session.changes_since(started)
    if mismatch is not None:
        finished = finished.model_copy(
            update={
                "reason": "error",
                "error": f"the answer does not match --output-schema ({mismatch})",
            }
        )
    if last_message is not None:
        last_message.write_text(finished.answer + ("\n" if finished.answer else ""))
    answered = finished.reason in ("answered", "submitted", "token_budget")
    if not json_events and answered and finished.answer:
        print(safe_text(finished.answer), flush=True)  # cut short: exit 1 says so
    if not verbose:  # why it failed, on stderr: in a CI log too, where --json fills stdout
        _explain(finished)
    if summary and session.checkpoints_off is not None:
        print(f"ponder: checkpoints are off: {session.checkpoints_off}", file=sys.stderr)
    if changes and (summary or any(c.warning for c in changes)):
        print(f"ponder: {changes_summary(changes)}", file=sys.stderr)
    if summary:
        print(f"ponder: {describe_usage(session.id, finished)}", file=sys.stderr)
    return exit_code(finished)


def _quiet(event: Event) -> None:
    pass


def _explain(finished: RunFinished) -> None:
    """Why the run ended, on stderr, when it did not end with an answer."""
    if finished.reason == "error":
        print(f"ponder: error: {finished.error}", file=sys.stderr)
    elif finished.reason == "interrupted":
        print("ponder: interrupted", file=sys.stderr)
    elif finished.reason == "max_steps":
        steps = counted(finished.steps, "step")
        print(f"ponder: stopped after {steps} (--max-steps)", file=sys.stderr)
    elif finished.reason in STOPPED:
        print(f"ponder: stopped: {STOPPED[finished.reason]}", file=sys.stderr)
