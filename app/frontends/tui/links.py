"""Links in the model's answer: each shows where it goes, and only http(s) opens, once the
person says yes.

Markdown lets a link's text say anything: ``[https://good.example](https://evil.example)`` reads
as one address and opens another, and its target may have any scheme (``ssh:``, an editor's
``vscode:``, a custom handler). So the answer's parser writes each link's target into its text
(unless the text is the target already), and a click opens the browser only for http and https,
after a question.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from ponder.sandbox.safe_text import safe_name

OPENABLE = frozenset({"http", "https"})


def shown_target(href: str) -> str:
    """A link's target as a person reads it. Textual undoes percent escapes before it opens a
    link, so the shown target is that same text, on one line."""
    return safe_name(unquote(href))


def _text(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _show_targets(state: StateCore) -> None:
    """Puts `` (TARGET)`` at the end of each link's text and after each image."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        tokens: list[Token] = []
        target: str | None = None
        text = ""
        for token in block.children:
            if token.type == "link_open":
                target, text = shown_target(str(token.attrs.get("href", ""))), ""
            elif token.type == "link_close" and target is not None:
                if text != target:
                    tokens.append(_text(f" ({target})"))
                target = None
            elif target is not None:
                text += token.content
            tokens.append(token)
            if token.type == "image":
                tokens.append(_text(f" ({shown_target(str(token.attrs.get('src', '')))})"))
        block.children = tokens


def answer_parser() -> MarkdownIt:
    """Textual's own Markdown flavour, with each link's target shown."""
    parser = MarkdownIt("gfm-like")
    parser.core.ruler.push("show_link_targets", _show_targets)
    return parser


def refusal(url: str) -> str | None:
    """Why ``url`` is not opened; None when it may be, once the person agrees."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not a valid address"
    if parts.scheme.lower() not in OPENABLE:
        return "only http and https links open"
    if not parts.hostname:
        return "it names no host"
    if safe_name(url) != url:
        return "it holds control characters"
    return None


def follow_link(app: App[object], url: str) -> None:
    """Open ``url`` in the browser if it is http(s) and the person agrees; otherwise say why
    not."""
    why = refusal(url)
    if why is not None:
        app.notify(f"not opened: {safe_name(url)} ({why})", severity="warning")
        return

    def answered(open_it: bool | None) -> None:
        if open_it:
            app.open_url(url)

    app.push_screen(OpenLink(url), answered)


class OpenLink(ModalScreen[bool]):
    """Asks before a link goes to the browser: y opens it, n or Esc does not."""

    BINDINGS = [
        ("y", "dismiss(True)", "Open"),
        ("n", "dismiss(False)", "Cancel"),
        ("escape", "dismiss(False)", "Cancel"),
    ]

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def compose(self) -> ComposeResult:
        with Vertical(classes="open-link") as question:
            question.border_title = "open this link in your browser?"
            yield Static(Content(self.url), classes="open-link-url")
            yield Static(
                Content.assemble(
                    ("[y]", "$warning bold"), " open   ", ("[n]", "$warning bold"), " cancel"
                ),
                classes="approval-keys",
            )
