"""Text put into Markdown (a session's export, an editor's tool call) without breaking out."""

from __future__ import annotations


def fenced(text: str, language: str = "") -> str:
    """``text`` in a code fence longer than any run of backticks in it: a command's output that
    holds a fence of its own cannot close ours and have the rest read as Markdown."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text.rstrip()}\n{fence}\n"
