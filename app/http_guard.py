"""Who may use ``ponder serve``: clients on this machine, not the web pages its browser opens.

A server on 127.0.0.1 is in reach of every page a browser here visits: a POST with
``Content-Type: text/plain`` goes out without asking the server first (no CORS preflight), and
DNS rebinding gives a page's own host name this machine's address, so that the page may read
the answers (and ``/metrics``) as well. So every request must name the server itself in
``Host`` (a rebound name does not), a request that carries an ``Origin`` (a browser's) must
come from the server itself, and no CORS header is ever sent. A server that listens beyond
loopback requires a key (``Authorization: Bearer KEY``, or Anthropic's ``x-api-key``).
"""

from __future__ import annotations

import hmac
import ipaddress
import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ponder.app.openai_api import api_error

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
OPEN_PATHS = frozenset({"/health"})
"""Paths that need no key (they say only that the server is up, and what it holds)."""


_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
"""What a Host header may be: a name or an address, and a port."""


def loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (an address, or ``localhost``; a name that merely
    starts with ``127.`` is not)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: refuses a foreign ``Host`` or ``Origin`` (403) and, when ``key`` is
    set, a request without it (401)."""

    def __init__(self, app: ASGIApp, host: str, key: str | None) -> None:
        self.app = app
        self.names = LOOPBACK | {host} if host not in ("0.0.0.0", "::") else None
        """The names the server answers to; None: any (it listens on every address, with a
        key, and whoever reaches it names it as they reach it)."""
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(headers, scope["path"])
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        await api_error(status, message)(scope, receive, send)

    def _refusal(self, headers: Headers, path: str) -> tuple[int, str] | None:
        host = _hostname(headers.get("host", ""))
        if host is None or (self.names is not None and host not in self.names):
            names = ", ".join(sorted(self.names or ["its own address"]))
            return 403, f"this server answers to {names}, not {headers.get('host', '')!r}"
        if "origin" in headers:  # a browser's request: the server has no pages of its own
            return 403, "requests from web pages are refused (an Origin header was sent)"
        if self.key is not None and path not in OPEN_PATHS:
            given = headers.get("x-api-key")
            if given is None:
                scheme, _, given = headers.get("authorization", "").partition(" ")
                given = given if scheme.lower() == "bearer" else ""
            if not hmac.compare_digest(given.strip().encode(), self.key.encode()):
                return 401, "a valid API key is required (Authorization: Bearer KEY)"
        return None


def _hostname(host: str) -> str | None:
    """``[::1]:8642`` -> ``::1``; ``localhost:8642`` -> ``localhost``; None for anything that
    is not a name or an address with an optional port."""
    found = _HOST.fullmatch(host)
    if found is None:
        return None
    return found.group(1).strip("[]")
