"""Approvals: what each mode asks about, rules on every sub-command, and the four answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from k2text import completion, tool_call

from ponder.model.scripted import ScriptedBackend
from ponder.runtime.approvals import (
    ApprovalAnswer,
    ApprovalPolicy,
    ApprovalRequest,
    PolicyApprover,
    split_commands,
)
from ponder.runtime.events import ApprovalRequested, ApprovalResolved, Event
from ponder.runtime.loop import Agent
from ponder.sandbox.docker_sandbox import DockerSandbox


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
    """Answers approval requests from a list, as someone at the keyboard would."""

    def __init__(self, *answers: ApprovalAnswer) -> None:
        self.answers = list(answers)
        self.asked: list[ApprovalRequest] = []

    def __call__(self, request: ApprovalRequest) -> ApprovalAnswer:
        self.asked.append(request)
        return self.answers.pop(0)


def test_the_four_answers(sandbox: DockerSandbox, workspace: Path) -> None:
    step = completion(
        "Four commands.",
        tool_call("bash", 0, {"command": "touch once.txt"}),
        tool_call("bash", 1, {"command": "touch denied.txt"}),
        tool_call("bash", 2, {"command": "mkdir always"}),
        tool_call("bash", 3, {"command": "mkdir always/again"}),
        tool_call("bash", 4, {"command": "cp once.txt copy.txt"}),
    )
    person = Person(
        ApprovalAnswer("once"),
        ApprovalAnswer("deny"),
        ApprovalAnswer("always"),
        ApprovalAnswer("deny", "use a temp dir instead"),
    )
    events: list[Event] = []
    agent = Agent(
        ScriptedBackend([step, completion("Done.", content="ok")]),
        sandbox,
        events.append,
        policy=ApprovalPolicy(mode="ask"),
        approver=person,
    )
    agent.run("make files")
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


def test_headless_runs_deny_what_would_ask(sandbox: DockerSandbox, workspace: Path) -> None:
    events: list[Event] = []
    agent = Agent(
        ScriptedBackend(
            [
                completion("Push.", tool_call("bash", 0, {"command": "git push origin main"})),
                completion("Fine.", content="ok"),
            ]
        ),
        sandbox,
        events.append,
        policy=ApprovalPolicy(mode="auto"),
        approver=PolicyApprover(),
    )
    agent.run("push it")
    (resolved,) = [e for e in events if isinstance(e, ApprovalResolved)]
    assert (resolved.decision, resolved.by) == ("deny", "policy")
    result = next(m.content for m in agent.messages if m.role == "tool")
    assert "nobody to give it" in result
