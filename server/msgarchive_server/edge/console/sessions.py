"""Who is signed in to the console: sessions, roles and CSRF tokens.

A session is a random 256-bit id in a cookie (`HttpOnly`, `SameSite=Strict`,
`Secure` under TLS, `Path=/`), kept in this process's memory only: restarting
the console signs everyone out. It ends after `idle_s` without a request, or
on sign-out. Every session (signed in or not yet) has its own CSRF token,
which every form carries and every POST must return; signing in replaces the
session (a new id and token), so an id known before sign-in is worth nothing
after it.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "msgarchive_console"

# What each role may do, in order: each includes the ones before it.
ROLES = ("view", "export", "hold")


@dataclass(frozen=True, slots=True)
class Reviewer:
    """Who signed in: their account, their name (the account's own id for an
    account's API key) and role."""

    account: str
    name: str
    role: str

    def may(self, action: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(action)


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    last_seen: float
    reviewer: Reviewer | None = None
    notice: str = ""  # shown once, on the next page (after a redirect)

    def csrf_matches(self, token: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), token.encode())


class Sessions:
    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def find(self, session_id: str) -> Session | None:
        """The live session with this id (its idle clock restarted), else None."""
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.last_seen > self.idle_s:
                del self._sessions[session_id]
                return None
            session.last_seen = now
            return session

    def new(self, reviewer: Reviewer | None = None) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), self.clock())
        session.reviewer = reviewer
        with self._lock:
            self._drop_idle()
            self._sessions[session.id] = session
        return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _drop_idle(self) -> None:
        now = self.clock()
        for stale in [s.id for s in self._sessions.values() if now - s.last_seen > self.idle_s]:
            del self._sessions[stale]


def cookie(session: Session | None, *, secure: bool) -> str:
    """The Set-Cookie value for `session` (a browser-session cookie: the idle
    limit is kept here, on every request), or the one that clears the cookie."""
    flags = "; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if secure else "")
    if session is None:
        return f"{COOKIE}=; Max-Age=0{flags}"
    return f"{COOKIE}={session.id}{flags}"
