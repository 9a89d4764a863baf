"""A step's tool calls: their events leave from the run's thread in call order, and a tool is
known everywhere from what it declares about itself.

The toy tools here are defined in this file only, as a new tool would be in one file of its own:
nothing in the frontends or the approvals names them.
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from k2text import completion, tool_call
from rich.console import Console
from textual.widgets import Static
from tui_script import FakeRun

from ponder.app.frontends.acp_updates import UpdateMapper
from ponder.app.frontends.line import LinePrinter
from ponder.app.frontends.tui.app import PonderApp
from ponder.app.frontends.tui.cards import ToolCard
from ponder.model.messages import ToolSchema
from ponder.model.scripted import ScriptedBackend
from ponder.runtime.approvals import ApprovalAnswer, ApprovalPolicy
from ponder.runtime.events import (
    ApprovalRequested,
    Event,
    PlanUpdated,
    ToolCallFinished,
    ToolCallStarted,
    ToolOutput,
    event_from_json,
    event_to_json,
)
from ponder.runtime.loop import Agent
from ponder.runtime.port import Unattended
from ponder.runtime.tool_events import ToolKind
from ponder.runtime.tools import default_tools
from ponder.runtime.tools.base import BaseTool, Preview, ToolContext, ToolOutcome
from ponder.runtime.tools.editor import Editor, StrReplaceTool, unified_diff
from ponder.sandbox.base import Sandbox
from ponder.sandbox.local_sandbox import LocalSandbox


class Nap(BaseTool):
    """A read that takes a while and reports as it goes, from whatever thread runs it."""

    schema = ToolSchema(
        name="nap",
        description="Wait a moment.",
        parameters={"type": "object", "properties": {"seconds": {"type": "number"}}},
    )
    parallel = True

    def summary(self, arguments: dict[str, Any]) -> str:
        return f"nap for {arguments['seconds']} s"

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        context.emit(ToolOutput(call_id=context.call_id, text="dozing\n"))
        time.sleep(arguments["seconds"])
        context.emit(ToolOutput(call_id=context.call_id, text="awake\n"))
        return ToolOutcome(f"slept {arguments['seconds']} s")


class Threads:
    """A port that notes which thread sent each event."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.threads: set[int] = set()

    def __call__(self, event: Event) -> None:
        self.threads.add(threading.get_ident())
        self.events.append(event)


def test_parallel_calls_send_their_events_in_call_order_from_the_run_thread(
    local_sandbox: LocalSandbox,
) -> None:
    rng = random.Random(7)
    for _ in range(25):
        naps = [round(rng.uniform(0, 0.03), 3) for _ in range(5)]
        calls = [tool_call("nap", n, {"seconds": s}) for n, s in enumerate(naps[:3])]
        calls.append(tool_call("update_plan", 3, {"plan": [{"step": "old", "status": "pending"}]}))
        calls += [tool_call("nap", 4, {"seconds": naps[3]}), tool_call("nap", 5, {"seconds": 0})]
        new_plan = {"plan": [{"step": "new", "status": "in_progress"}]}
        calls += [tool_call("update_plan", 6, new_plan), tool_call("nap", 7, {"seconds": naps[4]})]
        port = Threads()
        agent = Agent(
            ScriptedBackend([completion("Go.", *calls), completion("Done.", content="done")]),
            local_sandbox,
            tools=[*default_tools(), Nap()],
        )
        finished = agent.run("nap", Unattended(port))
        assert finished.reason == "answered"
        assert port.threads == {threading.get_ident()}  # one thread speaks for the run

        # Each call's events together, in the order the model made the calls.
        per_call = [
            e
            for e in port.events
            if isinstance(e, ToolCallStarted | ToolOutput | ToolCallFinished | PlanUpdated)
        ]
        ids = [f"functions.{c}" for c in ("nap:0", "nap:1", "nap:2", "update_plan:3")]
        ids += [f"functions.{c}" for c in ("nap:4", "nap:5", "update_plan:6", "nap:7")]
        shapes = []
        for call_id in ids:
            mine = [e for e in per_call if e.call_id == call_id]
            first = per_call.index(mine[0])
            assert per_call[first : first + len(mine)] == mine
            shapes.append([type(e).__name__ for e in mine])
        firsts = [per_call.index(next(e for e in per_call if e.call_id == i)) for i in ids]
        assert firsts == sorted(firsts)
        nap = ["ToolCallStarted", "ToolOutput", "ToolOutput", "ToolCallFinished"]
        plan = ["ToolCallStarted", "PlanUpdated", "ToolCallFinished"]
        assert shapes == [nap, nap, nap, plan, nap, nap, plan, nap]
        # The newest plan wins, in the task state and in what the frontends were told.
        assert agent.state.plan == [("new", "in_progress")]
        shown = [e for e in port.events if isinstance(e, PlanUpdated)]
        assert shown[-1].plan[0].step == "new"


class Stamp(BaseTool):
    """A toy edit: writes STAMP with a word. Declares everything a frontend needs."""

    schema = ToolSchema(
        name="stamp",
        description="Write a word into STAMP.",
        parameters={"type": "object", "properties": {"word": {"type": "string"}}},
    )
    kind: ToolKind = "edit"

    def summary(self, arguments: dict[str, Any]) -> str:
        return f"STAMP ← {arguments['word']}"

    def preview(self, arguments: dict[str, Any], sandbox: Sandbox) -> Preview:
        return Preview(unified_diff("STAMP", None, arguments["word"] + "\n"))

    def run(self, arguments: dict[str, Any], context: ToolContext) -> ToolOutcome:
        context.sandbox.write_file("STAMP", (arguments["word"] + "\n").encode())
        return ToolOutcome("stamped")


class Approver:
    """Someone at the keyboard who allows everything once, and remembers what they were shown."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.asked: list[ApprovalRequested] = []

    def event(self, event: Event) -> None:
        self.events.append(event)

    def approve(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        self.asked.append(request)
        answer: Future[ApprovalAnswer] = Future()
        answer.set_result(ApprovalAnswer("once"))
        return answer


async def test_a_new_tool_is_shown_and_approved_from_what_it_declares(
    local_sandbox: LocalSandbox, workspace: Path
) -> None:
    person = Approver()
    agent = Agent(
        ScriptedBackend(
            [
                completion("Stamp it.", tool_call("stamp", 0, {"word": "hello"})),
                completion("Done.", content="stamped"),
            ]
        ),
        local_sandbox,
        tools=[*default_tools(), Stamp()],
        policy=ApprovalPolicy(mode="ask"),
    )
    agent.run("stamp", person)
    assert (workspace / "STAMP").read_text() == "hello\n"

    # Approvals: asked because it is an edit, shown the diff it would make.
    [request] = person.asked
    assert request.kind == "edit"
    assert request.summary.startswith("--- /dev/null\n+++ b/STAMP")
    assert request.reason == "stamp changes a file"

    started = next(e for e in person.events if isinstance(e, ToolCallStarted))
    ended = next(e for e in person.events if isinstance(e, ToolCallFinished))
    # --json: the kind and the summary travel with the call.
    line = json.loads(event_to_json(started))
    assert (line["kind"], line["summary"]) == ("edit", "STAMP ← hello")

    # Line mode.
    console = Console(file=io.StringIO(), width=100, record=True)
    printer = LinePrinter(console)
    for event in (started, ended):
        printer(event)
    assert "▶ stamp STAMP ← hello" in console.export_text()

    # ACP: an edit, titled by its summary.
    update = UpdateMapper("/work")(started)
    assert update is not None
    assert (update.kind, update.title) == ("edit", "STAMP ← hello")  # type: ignore[union-attr]

    # The TUI: a card headed by the tool and its summary.
    app = PonderApp(FakeRun([started, ended], hold=False), model="m", task="stamp")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        header = str(app.query_one(ToolCard).query_one(".block-title", Static).render())
        assert "stamp STAMP ← hello" in header


def test_a_session_file_of_version_2_still_reads() -> None:
    # Before version 3, tool calls carried no kind or summary; the tools of that time get theirs.
    started = event_from_json(
        '{"type": "tool_call_started", "step": 1, "call_id": "functions.bash:0", "name": "bash",'
        ' "arguments": {"command": "pytest -q"}, "raw_arguments": "{}"}'
    )
    assert isinstance(started, ToolCallStarted)
    assert (started.kind, started.summary) == ("execute", "$ pytest -q")
    ended = event_from_json(
        '{"type": "tool_call_finished", "call_id": "c", "name": "mcp__time__now", "ok": true,'
        ' "result": "12:00", "elapsed": 0.1}'
    )
    assert isinstance(ended, ToolCallFinished)
    assert ended.kind == "host"


class ChangesTheFileWhileAsked(Approver):
    """Allows, but while the person reads the diff a background job rewrites the file."""

    def __init__(self, target: Path) -> None:
        super().__init__()
        self.target = target

    def approve(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        self.target.write_text("import os\nimport meanwhile\nDEBUG = False")
        return super().approve(request)


def test_an_edit_approval_shows_the_whole_edit_and_the_run_writes_only_onto_it(
    local_sandbox: LocalSandbox, workspace: Path
) -> None:
    (workspace / "cfg.py").write_text("import os\nDEBUG = False")  # no newline at the end
    tool = StrReplaceTool(Editor())
    sneaky = {"path": "cfg.py", "old_str": "DEBUG = False", "new_str": "DEBUG = False;evil()"}
    shown = tool.preview(sneaky, local_sandbox).text.splitlines()
    # The added line is a line of its own, not glued to the removed one.
    assert shown[-4:] == [
        "-DEBUG = False",
        "\\ No newline at end of file",
        "+DEBUG = False;evil()",
        "\\ No newline at end of file",
    ]
    # An edit that cannot be worked out shows its arguments as data: its text makes no lines.
    lure = {"path": "cfg.py", "old_str": "zz\n\n(nothing to review)\n", "new_str": "evil()"}
    failed = tool.preview(lure, local_sandbox).text
    assert "(nothing to review)" not in failed.splitlines()
    assert '"new_str": "evil()"' in failed

    # What the person approved is what is written: a file changed meanwhile is left alone.
    person = ChangesTheFileWhileAsked(workspace / "cfg.py")
    agent = Agent(
        ScriptedBackend(
            [
                completion("Edit.", tool_call("str_replace", 0, sneaky)),
                completion("Done.", content="done"),
            ]
        ),
        local_sandbox,
        policy=ApprovalPolicy(mode="ask"),
    )
    agent.run("edit", person)
    assert (workspace / "cfg.py").read_text() == "import os\nimport meanwhile\nDEBUG = False"
    result = next(e for e in person.events if isinstance(e, ToolCallFinished))
    assert not result.ok
    assert "changed after the user was shown this edit" in result.result
