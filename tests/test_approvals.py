"""Approvals: what each mode asks about, rules on every sub-command, and the four answers."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

import pytest
from k2text import completion, tool_call

from ponder.model.scripted import ScriptedBackend
from ponder.runtime.approvals import (
    ApprovalAnswer,
    ApprovalPolicy,
    split_commands,
)
from ponder.runtime.events import ApprovalRequested, ApprovalResolved, Event
from ponder.runtime.loop import Agent
from ponder.runtime.port import Unattended
from ponder.sandbox.base import Sandbox
from ponder.sandbox.local_sandbox import LocalSandbox


@pytest.fixture(name="sandbox")
def _local(local_sandbox: LocalSandbox) -> LocalSandbox:
    """The loop does not depend on Docker: these tests run on the local backend, in seconds."""
    return local_sandbox


def test_commands_are_split_into_their_parts() -> None:
    assert split_commands("cd src && make test | tee log; echo 'a && b'\ngit status") == [
        ["cd", "src"],
        ["make", "test"],
        ["tee", "log"],
        ["echo", "a && b"],
        ["git", "status"],
    ]
    # Commands inside other commands are judged too.
    nested = "echo $(git push) `git clean -fd`; bash -c 'git reset --hard' && eval git stash drop"
    assert split_commands(nested) == [
        ["echo", "$"],
        ["git", "push"],
        ["git", "clean", "-fd"],
        ["git", "reset", "--hard"],
        ["git", "stash", "drop"],
    ]


@pytest.mark.parametrize(
    ("mode", "command", "network", "expected"),
    [
        ("auto", "pytest -q && git diff", False, "allow"),
        ("auto", "pip install requests", False, "allow"),  # no network: cannot reach out
        ("auto", "pip install requests", True, "ask"),
        ("auto", "ls | curl -X POST example.com", True, "ask"),
        ("auto", "git reset --hard HEAD~1", False, "ask"),
        ("auto", "FOO=1 sudo git push origin main", False, "ask"),
        ("auto", "nohup env A=1 sh -c 'sleep 1; git push' &", False, "ask"),
        ("ask", "FOO=1", False, "allow"),  # only sets a variable
        ("auto", "git checkout -- src/app.py", False, "ask"),
        ("auto", "git checkout -b feature", False, "allow"),  # a branch: files stay
        ("auto", "git switch -c feature", False, "allow"),
        ("ask", "ls", False, "ask"),
        ("yolo", "git clean -fdx && git push --force", True, "allow"),
    ],
)
def test_what_each_mode_asks_about(mode: str, command: str, network: bool, expected: str) -> None:
    policy = ApprovalPolicy(mode=mode, network=network)  # type: ignore[arg-type]
    assert policy.check("bash", {"command": command}).action == expected


def test_rules_apply_to_every_sub_command() -> None:
    policy = ApprovalPolicy(mode="ask", allow=["pytest", "git status"], deny=["rm -rf"])
    assert policy.check("bash", {"command": "pytest -q && git status"}).action == "allow"
    assert policy.check("bash", {"command": "pytest -q && make"}).action == "ask"
    denied = policy.check("bash", {"command": "pytest -q; rm -rf /tmp/x"})
    assert denied.action == "deny"
    assert "rm -rf" in denied.reason
    # Deny rules hold in yolo mode too.
    yolo = ApprovalPolicy(mode="yolo", deny=["git push"])
    assert yolo.check("bash", {"command": "git add . && git push"}).action == "deny"


def test_file_tools_ask_only_in_ask_mode() -> None:
    edit = {"path": "a.py", "old_str": "a", "new_str": "b"}
    assert ApprovalPolicy(mode="ask").check("str_replace", edit).action == "ask"
    assert ApprovalPolicy(mode="auto").check("str_replace", edit).action == "allow"
    assert ApprovalPolicy(mode="ask").check("view", {"path": "a.py"}).action == "allow"


class Person:
    """A run's port with someone at the keyboard: answers come from a list, a moment later,
    from another thread (as a key press would)."""

    def __init__(self, events: list[Event], *answers: ApprovalAnswer) -> None:
        self.events = events
        self.answers = list(answers)
        self.asked: list[ApprovalRequested] = []

    def event(self, event: Event) -> None:
        self.events.append(event)

    def approve(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        self.asked.append(request)
        reply: Future[ApprovalAnswer] = Future()
        threading.Timer(0.05, reply.set_result, [self.answers.pop(0)]).start()
        return reply


def test_the_four_answers(sandbox: Sandbox, workspace: Path) -> None:
    step = completion(
        "Four commands.",
        tool_call("bash", 0, {"command": "touch once.txt"}),
        tool_call("bash", 1, {"command": "touch denied.txt"}),
        tool_call("bash", 2, {"command": "mkdir always"}),
        tool_call("bash", 3, {"command": "mkdir always/again"}),
        tool_call("bash", 4, {"command": "cp once.txt copy.txt"}),
    )
    events: list[Event] = []
    person = Person(
        events,
        ApprovalAnswer("once"),
        ApprovalAnswer("deny"),
        ApprovalAnswer("always"),
        ApprovalAnswer("deny", "use a temp dir instead"),
    )
    agent = Agent(
        ScriptedBackend([step, completion("Done.", content="ok")]),
        sandbox,
        policy=ApprovalPolicy(mode="ask"),
    )
    agent.run("make files", person)
    assert sorted(str(p.relative_to(workspace)) for p in workspace.rglob("*")) == [
        "always",
        "always/again",
        "once.txt",
    ]
    # "always" allowed `mkdir` from then on: the fourth command was not asked about.
    assert [(r.summary, r.prefix) for r in person.asked] == [
        ("touch once.txt", "touch"),
        ("touch denied.txt", "touch"),
        ("mkdir always", "mkdir"),
        ("cp once.txt copy.txt", "cp"),
    ]
    results = {m.tool_call_id: m.content for m in agent.messages if m.role == "tool"}
    assert results["functions.bash:1"] == "The user did not allow this action."
    assert results["functions.bash:4"] == (
        "The user did not allow this action. Their message: use a temp dir instead"
    )
    assert len([e for e in events if isinstance(e, ApprovalRequested)]) == 4
    assert [e.decision for e in events if isinstance(e, ApprovalResolved)] == [
        "once",
        "deny",
        "always",
        "deny",
    ]


def test_headless_runs_deny_what_would_ask(sandbox: Sandbox, workspace: Path) -> None:
    events: list[Event] = []
    agent = Agent(
        ScriptedBackend(
            [
                completion("Push.", tool_call("bash", 0, {"command": "git push origin main"})),
                completion("Fine.", content="ok"),
            ]
        ),
        sandbox,
        policy=ApprovalPolicy(mode="auto"),
    )
    agent.run("push it", Unattended(events.append))
    (resolved,) = [e for e in events if isinstance(e, ApprovalResolved)]
    assert (resolved.decision, resolved.by) == ("deny", "policy")
    result = next(m.content for m in agent.messages if m.role == "tool")
    assert "nobody to give it" in result
    assert "The user did not allow" not in result  # no user was asked


class Away:
    """A person who never answers."""

    def __init__(self) -> None:
        self.reply: Future[ApprovalAnswer] = Future()

    def event(self, event: Event) -> None:
        pass

    def approve(self, request: ApprovalRequested) -> Future[ApprovalAnswer]:
        return self.reply


def test_an_interrupt_stops_a_run_that_waits_for_an_approval(sandbox: Sandbox) -> None:
    agent = Agent(
        ScriptedBackend([completion("Push.", tool_call("bash", 0, {"command": "touch x"}))]),
        sandbox,
        policy=ApprovalPolicy(mode="ask"),
    )
    away = Away()
    threading.Timer(0.5, agent.interrupt).start()
    finished = agent.run("make x", away)
    assert finished.reason == "interrupted"
    assert away.reply.cancelled()  # the question is withdrawn; the frontend closes its card
