"""Console sessions: idle expiry, sign-out, CSRF tokens, roles, the cookie."""

from __future__ import annotations

from msgarchive_server.edge.console.sessions import Reviewer, Sessions, cookie


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_when_idle_and_each_request_restarts_its_clock() -> None:
    clock = Clock()
    sessions = Sessions(idle_s=60, clock=clock)
    session = sessions.new(Reviewer("acme", "jane", "view"))
    clock.now += 59
    assert sessions.find(session.id) is session
    clock.now += 59  # 118 s since it began, 59 since the last request
    assert sessions.find(session.id) is session
    clock.now += 61
    assert sessions.find(session.id) is None
    assert sessions.find(session.id) is None  # gone, not revived


def test_sign_out_ends_a_session_and_ids_and_tokens_are_unguessable() -> None:
    sessions = Sessions(idle_s=60)
    one, two = sessions.new(), sessions.new()
    assert len({one.id, two.id, one.csrf, two.csrf}) == 4
    assert len(one.id) >= 43  # 256 bits, URL-safe base64
    sessions.end(one.id)
    assert sessions.find(one.id) is None
    assert sessions.find(two.id) is two
    assert sessions.find("") is None


def test_a_csrf_token_must_match_exactly() -> None:
    session = Sessions(idle_s=60).new()
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches("")
    assert not session.csrf_matches(session.csrf[:-1])
    assert not session.csrf_matches(session.csrf + "x")


def test_each_role_includes_the_ones_before_it() -> None:
    view, export, hold = (Reviewer("a", "r", role) for role in ("view", "export", "hold"))
    assert view.may("view")
    assert not view.may("export")
    assert not view.may("hold")
    assert export.may("export")
    assert not export.may("hold")
    assert hold.may("view")
    assert hold.may("export")
    assert hold.may("hold")


def test_the_cookie_is_http_only_strict_and_secure_under_tls() -> None:
    session = Sessions(idle_s=60).new()
    plain, secure = cookie(session, secure=False), cookie(session, secure=True)
    assert plain.startswith(f"msgarchive_console={session.id};")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in plain
        assert flag in secure
    assert "Secure" not in plain.replace("SameSite", "")
    assert secure.endswith("; Secure")
    assert "Max-Age=0" in cookie(None, secure=False)
