"""The TUI driven by Textual's pilot: what a person sees and what their keys do.

The agent is replaced by :class:`tui_script.FakeRun`, which emits the events a run would; the
agent itself is tested against a real sandbox elsewhere.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prompt_toolkit.history import FileHistory
from textual.app import App
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Log, Static
from tui_script import FakeRun, answer, command, edit, reasoning, started, usage

from ponder.app.frontends.tui.app import PonderApp
from ponder.app.frontends.tui.blocks import (
    AnswerBlock,
    DiffBlock,
    FoldedBlock,
    ReasoningBlock,
    TextBlock,
)
from ponder.app.frontends.tui.cards import ApprovalCard, ToolCard
from ponder.app.frontends.tui.links import OpenLink
from ponder.app.frontends.tui.plan import PlanPanel
from ponder.app.frontends.tui.prompt import PromptArea
from ponder.app.frontends.tui.status import StatusLine
from ponder.app.frontends.tui.transcript import Transcript
from ponder.app.slash_commands import INIT_TASK
from ponder.runtime.events import (
    ApprovalRequested,
    Event,
    FileEdited,
    PlanStep,
    PlanUpdated,
    ReasoningText,
    RunFinished,
    ToolCallStarted,
)

SIZE = (100, 40)


def make_app(run: FakeRun, **options: object) -> PonderApp:
    return PonderApp(run, model="scripted:test", interrupt=run.interrupt, **options)  # type: ignore[arg-type]


async def settle(pilot: Pilot[object], frames: int = 3) -> None:
    for _ in range(frames):
        await pilot.pause(0.05)


def status(app: PonderApp) -> str:
    return str(app.query_one(StatusLine).render())


async def test_reasoning_streams_live_then_folds_to_one_line() -> None:
    run = FakeRun([*started(), *reasoning(1, "First I read stats.py. ")])
    app = make_app(run, task="fix it")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        (block,) = app.query(ReasoningBlock)
        assert block.has_class("live")
        assert block.text == "First I read stats.py. "
        body = block.query_one(".reasoning-body")
        assert body.display
        # The model moves on to a tool: the reasoning folds to its summary line.
        app._events.put(command(1, 0, "3 passed\n", 0)[0])
        await settle(pilot)
        assert not block.has_class("live")
        assert not body.display
        title = str(block.query_one(".block-title", Static).render())
        assert title.startswith("▸ Thought for")
        assert "tokens" in title
        block.focus()
        await pilot.press("enter")  # Enter opens it again
        assert body.display
        run.release()


async def test_text_arriving_faster_than_frames_is_merged() -> None:
    pieces = [ReasoningText(step=1, text=f"t{i} ") for i in range(3000)]
    run = FakeRun([*started(), *reasoning(1, ""), *pieces])
    app = make_app(run, task="go")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 6)
        (block,) = app.query(ReasoningBlock)
        assert block.text == "".join(p.text for p in pieces)
        run.release()


async def test_a_tool_card_shows_output_then_how_it_ended() -> None:
    running = command(1, 0, "collecting tests\n", None)
    run = FakeRun([*started(), *reasoning(1, "Run the tests."), *running])
    app = make_app(run, task="test")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        (card,) = app.query(ToolCard)
        assert card.running
        assert "$ python3 -m pytest -q" in str(card.query_one(".block-title", Static).render())
        assert "running" in str(card.query_one(".tool-status", Static).render())
        assert "running bash" in status(app)
        app._events.put(command(1, 0, "", 1)[-1])
        await settle(pilot)
        assert not card.running
        assert card.has_class("failed")
        assert str(card.query_one(".tool-status", Static).render()) == "✗ exit 1 · 1.2s"
        card.focus()
        await pilot.press("c")
        assert app.clipboard == "bash $ python3 -m pytest -q\ncollecting tests\n\n✗ exit 1 · 1.2s"
        run.release()


async def test_an_edit_shows_as_a_diff() -> None:
    run = FakeRun([*started(), *reasoning(1, "Fix."), *edit(1, 0)])
    app = make_app(run, task="fix")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        (diff,) = app.query(DiffBlock)
        assert diff.border_title == "edited stats.py"
        shown = str(diff.query_one(Static).render())
        assert "+        return (ordered[middle - 1] + ordered[middle]) / 2" in shown
        run.release()


async def test_the_status_line_shows_speed_context_step_budget_and_sandbox() -> None:
    run = FakeRun([*started(), *reasoning(3, "Think."), usage(3)])
    app = make_app(run, task="go")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        line = status(app)
        for part in (
            "scripted:test",
            "prefill 410 t/s decode 14.2 t/s",
            "context 37% (48.9K/131.1K)",
            "step 3/300",
            "49.1K tokens left",
            "docker, bind mode, network off",
        ):
            assert part in line, line
        run.release()


async def test_the_status_line_names_the_model_each_run_uses() -> None:
    # After /model the next run says which model it runs on; the status line follows it.
    switched = [started()[0].model_copy(update={"model": "openai:kimi-k2-thinking"})]
    app = PonderApp(FakeRun(switched, hold=False), model="scripted:test", task="go")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert "openai:kimi-k2-thinking" in status(app)
        assert "scripted:test" not in status(app)


async def test_how_a_run_ended_stays_in_the_transcript() -> None:
    ended = RunFinished(reason="time_limit", answer="", steps=4)
    app = PonderApp(FakeRun([*started(), ended], hold=False), model="m", task="go")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        notes = [block.text for block in app.query(TextBlock)]
        assert "stopped: the time limit was reached · 4 steps" in notes


async def test_the_plan_panel_holds_the_running_tasks_plan_only() -> None:
    plan = PlanUpdated(call_id="c", plan=[PlanStep(step="fix it", status="in_progress")])
    run = FakeRun([plan])
    app = PonderApp(run, model="m", task="go")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        panel = app.query_one(PlanPanel)
        assert panel.display
        app._events.put(started()[0])  # the next task starts: the last one's plan goes
        await settle(pilot)
        assert not panel.display
        run.release()


async def test_a_narrow_status_line_keeps_state_step_and_context() -> None:
    run = FakeRun([*started(), *reasoning(3, "Think."), usage(3)])
    app = make_app(run, task="go")
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        line = status(app)
        assert line.startswith("thinking · step 3/300 · context 37% (48.9K/131.1K)"), line
        assert len(line) <= 58  # what fits inside the padding; the sandbox and model went first
        await pilot.resize_terminal(160, 40)
        await settle(pilot)
        assert "docker, bind mode, network off" in status(app)  # back once there is room
        run.release()


async def test_approvals_take_a_key_or_a_message() -> None:
    request = ApprovalRequested(
        call_id="functions.bash:0",
        name="bash",
        summary="git push origin main",
        reason="`git push` can destroy work in your repository",
        prefix="git push",
    )
    run = FakeRun([*started(), *reasoning(1, "Push.")], approval=request)
    app = make_app(run, task="push")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        card = app.query_one(ApprovalCard)
        assert app.focused is card
        await pilot.press("m")
        await pilot.press(*"not yet", "enter")
        await settle(pilot)
        assert run.answers[0].decision == "deny"
        assert run.answers[0].message == "not yet"
        assert card.has_class("answered")
        assert isinstance(app.focused, PromptArea)  # back to typing
        run.release()


async def test_a_call_waiting_for_approval_says_so_and_the_question_comes_first() -> None:
    request = ApprovalRequested(
        call_id="functions.bash:0", name="bash", summary="python3 -m pytest -q",
        reason="runs code", prefix="python3",
    )  # fmt: skip
    run = FakeRun([*started(), *command(1, 0, "", None)[:1], request], approval=request)
    app = make_app(run, task="test")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tool = app.query_one(ToolCard)
        assert "waiting for your approval" in str(tool.query_one(".tool-status", Static).render())
        assert "bash waits for your approval" in str(app.query_one(StatusLine).render())
        blocks = list(app.query_one("#transcript").children)
        assert blocks.index(app.query_one(ApprovalCard)) < blocks.index(tool)
        await pilot.press("y")
        run.release()


async def test_the_prompt_sends_keeps_history_and_completes(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    history = tmp_path / "history"
    run = FakeRun(answer(1, "done"), hold=False)
    app = make_app(
        run,
        history=history,
        files=lambda: ["src/", "src/stats.py", "README.md"],
        commands={"diff": lambda _: "no changes yet"},
    )
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.query_one(PromptArea)
        await pilot.press(*"fix", "ctrl+j", *"the bug", "enter")
        await settle(pilot)
        assert run.tasks == ["fix\nthe bug"]
        assert prompt.text == ""
        await pilot.press("up")
        assert prompt.text == "fix\nthe bug"
        prompt.clear()
        await pilot.press(*"look at @s", "tab")
        assert prompt.text == "look at @src/"
        await pilot.press("tab")
        assert prompt.text == "look at @src/stats.py "
        prompt.clear()
        await pilot.press(*"/di", "tab", "enter")
        await settle(pilot)
        notes = [str(b.render()) for b in app.query(TextBlock).filter(".note")]
        assert notes[-1] == "no changes yet"
        await pilot.press(*"/init", "enter")  # a command that is a task for the model
        await settle(pilot)
        assert run.tasks[-1] == INIT_TASK
    # Line mode (prompt-toolkit) reads the same history.
    assert list(FileHistory(str(history)).load_history_strings())[:3] == [
        "/init",
        "/diff",
        "fix\nthe bug",
    ]


async def test_slash_commands_help_theme_clear_and_unknown() -> None:
    cleared: list[str] = []
    run = FakeRun(answer(1, "done"), hold=False)
    app = make_app(run, commands={"clear": lambda _: cleared.append("x") or "fresh"})
    async with app.run_test(size=SIZE) as pilot:
        for text in ("/help", "/theme ponder-light", "/nope"):
            app.query_one(PromptArea).load_text(text)
            await pilot.press("enter")
        await settle(pilot)
        shown = [str(b.render()) for b in app.query(TextBlock)]
        assert shown[0].startswith("/help")
        assert "/clear" in shown[0]
        assert app.theme == "ponder-light"
        assert shown[-1] == "unknown command /nope; /help lists them"
        app.query_one(PromptArea).load_text("/clear")
        await pilot.press("enter")
        await settle(pilot)
        assert cleared == ["x"]
        assert [str(b.render()) for b in app.query(TextBlock)] == ["fresh"]


async def test_a_slow_command_s_result_replaces_its_placeholder_and_diff_is_coloured() -> None:
    diff = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    commands = {"model": lambda _: "model: scripted:other", "diff": lambda _: diff}
    app = PonderApp(
        FakeRun(answer(1, "done"), hold=False), model="scripted:test", commands=commands,
        slow_commands=frozenset({"model"}),
    )  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        for text in ("/model other", "/diff"):
            app.query_one(PromptArea).load_text(text)
            await pilot.press("enter")
            await settle(pilot)
        assert [str(b.render()) for b in app.query(TextBlock)] == ["model: scripted:other"]
        (block,) = app.query(DiffBlock)
        assert block.border_title == "everything this session changed"
        assert block.copy_text() == diff


async def test_messages_typed_while_it_works_are_queued_and_sent_after() -> None:
    run = FakeRun([*started(), *reasoning(1, "Working.")])
    app = make_app(run, task="first")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for text in ("also this", "and that"):
            app.query_one(PromptArea).load_text(text)
            await pilot.press("enter")
        await settle(pilot)
        queue = str(app.query_one("#queue", Static).render())
        assert "queued: also this" in queue
        assert "queued: and that" in queue
        # On the screen, above the prompt: docked at the bottom, the prompt and the status
        # line covered it (issue 24, a new user saw no sign that the message was kept).
        shown = app.query_one("#queue", Static).region
        assert shown.height >= 3
        assert shown.bottom <= app.query_one(PromptArea).region.y
        assert run.tasks == ["first"]
        run.release()
        await settle(pilot)
        assert run.tasks == ["first", "also this\n\nand that"]  # one message, as typed
        assert not app.query_one("#queue", Static).display


async def test_queued_messages_come_back_to_the_prompt_after_esc() -> None:
    run = FakeRun([*started(), *reasoning(1, "Working.")])
    app = make_app(run, task="first")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one(PromptArea).load_text("second thoughts")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert run.tasks == ["first"]
        assert app.query_one(PromptArea).text == "second thoughts"


async def test_first_contact_welcome_help_keys_argument_completion_and_remembered_theme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    from ponder.app.frontends.tui.themes import remember_theme, remembered_theme

    app = PonderApp(
        FakeRun(answer(1, "done"), hold=False), model="scripted:test",
        welcome=["ponder · scripted:test · docker"], on_theme=remember_theme,
    )  # fmt: skip
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        notes = [str(b.render()) for b in app.query(TextBlock)]
        assert notes == ["ponder · scripted:test · docker"]
        app.query_one(PromptArea).load_text("/help")
        await pilot.press("enter")
        await settle(pilot)
        shown = str(list(app.query(TextBlock))[-1].render())
        assert "keys:" in shown
        assert "Esc" in shown
        prompt = app.query_one(PromptArea)
        prompt.clear()
        await pilot.press(*"/theme ponder-l", "tab")
        assert prompt.text == "/theme ponder-light "
        await pilot.press("enter")
        await settle(pilot)
        assert app.theme == "ponder-light"
        prompt.clear()
        await pilot.press(*"/approvals au", "tab")
        assert prompt.text == "/approvals auto "
    assert remembered_theme() == "ponder-light"  # the next session opens with it


async def test_escape_interrupts_a_running_task() -> None:
    run = FakeRun([*started(), *reasoning(1, "Thinking a long time.")])
    app = make_app(run, task="go")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert run.interrupted.is_set()
        assert "interrupted" in status(app)


async def test_a_300_step_session_keeps_a_bounded_screen() -> None:
    events: list[Event] = list(started())
    for step in range(1, 301):
        events += reasoning(step, f"Step {step}: look again.\n")
        events += command(step, step, f"line {step}\n", 0)
    run = FakeRun(events)
    app = make_app(run, task="long")
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if len(app.query(ToolCard)) and "line 300" in app.query(ToolCard).last().copy_text():
                break
        transcript = app.query_one("#transcript")
        assert len(transcript.children) <= Transcript.MAX_BLOCKS
        assert "step 300/300" in status(app)
        # Still answering keys at once.
        await asyncio.wait_for(pilot.press("escape"), 5)
        run.release()


async def test_the_answer_shows_as_markdown() -> None:
    run = FakeRun([*started(), *reasoning(1, "Done."), *answer(2, "Fixed **median()**.")])
    app = make_app(run, task="go")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        (block,) = app.query(AnswerBlock)
        assert block.size.height > 0
        (paragraph,) = block.children
        assert str(paragraph.render()) == "Fixed median()."  # Markdown: the bold is a style
        assert "done" in status(app)


async def test_a_link_shows_its_target_and_only_http_opens_after_a_yes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (
        "See [https://good.example](https://evil.example).\n\n"
        "Not [x](file:///etc/passwd) nor [s](ssh://host/x)."
    )
    # No browser can be opened here: App.open_url is where Textual would start one.
    opened: list[str] = []
    monkeypatch.setattr(App, "open_url", lambda self, url, new_tab=True: opened.append(url))
    run = FakeRun([*started(), *reasoning(1, "Done."), *answer(2, text)])
    app = make_app(run, task="go")
    notes: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **options: notes.append(message))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        first, second = app.query_one(AnswerBlock).children

        async def click(paragraph: Widget, on: str) -> None:
            await pilot.click(paragraph, offset=(str(paragraph.render()).index(on), 0))
            await settle(pilot)

        assert str(first.render()) == "See https://good.example (https://evil.example)."
        assert str(second.render()) == "Not [x](file:///etc/passwd) nor s (ssh://host/x)."
        await click(second, "file:")  # Markdown itself makes no link of file:
        await click(second, "ssh:")
        assert not isinstance(app.screen, OpenLink)
        assert notes == ["not opened: ssh://host/x (only http and https links open)"]
        await click(first, "good.example")
        assert isinstance(app.screen, OpenLink)  # asked first
        assert (
            str(app.screen.query_one(".open-link-url", Static).render()) == "https://evil.example"
        )
        await pilot.press("n")
        assert not isinstance(app.screen, OpenLink)
        assert opened == []
        await click(first, "good.example")
        await pilot.press("y")
        assert opened == ["https://evil.example"]  # the real target
        run.release()


async def test_user_themes_load_and_a_broken_one_is_named(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#ff0000"\ndark = true\n')
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = [\n')
    run = FakeRun(answer(1, "done"), hold=False)
    app = make_app(run, user_themes=tmp_path, theme="mine")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == "mine"
        (problem,) = [str(b.render()) for b in app.query(TextBlock).filter(".error")]
        assert problem.startswith(f"theme skipped: {tmp_path / 'broken.toml'}")


@pytest.mark.parametrize("colour", ['"#2e5cbz"', "12", '"nope"'])
async def test_a_theme_with_a_bad_colour_is_a_note_and_the_default(
    tmp_path: Path, colour: str
) -> None:
    (tmp_path / "x.toml").write_text(f'name = "x"\nprimary = {colour}\n')
    app = make_app(FakeRun(answer(1, "done"), hold=False), user_themes=tmp_path, theme="x")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == "ponder-dark"
        (problem,) = [str(b.render()) for b in app.query(TextBlock).filter(".error")]
        assert problem.startswith(f"theme skipped: {tmp_path / 'x.toml'}: ")
        await pilot.press(*"/theme x", "enter")  # naming it later does not crash either
        await settle(pilot)
        assert app.theme == "ponder-dark"


async def test_the_transcript_is_reachable_and_folding_shows_its_state() -> None:
    run = FakeRun([*started(), *reasoning(1, "Weigh it."), *answer(1, "done")], hold=False)
    app = make_app(run, task="go")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("tab")  # the prompt is empty: on to the transcript
        assert app.focused in app.query_one("#transcript").children  # the newest block
        block = app.query_one(ReasoningBlock)
        block.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert str(block.query_one(".block-title", Static).render()).startswith("▾ ")
        await pilot.press("enter")
        await settle(pilot)
        assert str(block.query_one(".block-title", Static).render()).startswith("▸ ")


async def test_a_narrow_terminal_wraps_output_and_diffs_keep_their_marks() -> None:
    long_line = "AssertionError: expected the mean of [1, 2, 3] to be 2.0 but it was 2.5 (off)"
    events = [*started(), *command(1, 0, long_line + "\n", 1)]
    call = "functions.str_replace:9"
    diff = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-x = 1\n+" + "value = compute(" * 6 + ")\n"
    events += [
        ToolCallStarted(step=1, call_id=call, name="str_replace", arguments={"path": "x.py"},
                        raw_arguments="{}"),
        FileEdited(call_id=call, path="x.py", diff=diff),
    ]  # fmt: skip
    app = make_app(FakeRun(events), task="go")
    async with app.run_test(size=(60, 40)) as pilot:
        await settle(pilot)
        log = app.query_one(ToolCard).query_one(Log)
        assert len(log.lines) >= 2  # wrapped, not clipped
        assert "".join(log.lines).replace("\n", "") == long_line
        shown = str(app.query_one(DiffBlock).query_one(Static).render()).split("\n")
        added = [row for row in shown if "compute" in row]
        assert len(added) >= 2
        assert all(row.startswith("+") for row in added)  # each wrapped row keeps its +


async def test_a_resumed_session_shows_its_conversation_folded() -> None:
    earlier = ("resuming session 2026-x of 2026-11-30: fix it", ["› fix it", "  · bash ls"])
    app = PonderApp(FakeRun(answer(1, "done"), hold=False), model="m", earlier=earlier)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        block = app.query_one(FoldedBlock)
        assert "resuming session 2026-x" in str(block.query_one(".block-title", Static).render())
        assert not block.query_one(".folded-body", Static).display
        block.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert block.query_one(".folded-body", Static).display
        assert block.copy_text() == "› fix it\n  · bash ls"
