"""`msgarchive console` over HTTP: who sees what, the headers every answer
carries, forms that need their CSRF token, URLs edited to reach another
account, and audit lines that never carry a recipient.
(tests/e2e/test_console_browser.py drives the same console in Chromium.)"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import console as world_of
from tests.accounts import KEYS
from tests.console import ARCHIVED_PHONE, CAMPAIGN, Browser, ConsoleWorld, reviewer_key
from tests.seaweed import SeaweedFS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    yield from world_of.build(seaweed, tmp_path_factory.mktemp("console"))


def signed_in(world: ConsoleWorld, name: str) -> Browser:
    browser = Browser(world.url)
    answer = browser.sign_in(reviewer_key(name))
    assert answer.status == 303, answer.text
    return browser


def audit_lines(world: ConsoleWorld, event: str) -> list[dict[str, object]]:
    return [line for line in list(world.console.lines) if line.get("event") == event]


def test_every_answer_carries_the_security_headers(world: ConsoleWorld) -> None:
    browser = signed_in(world, "jane")
    answers = {
        "sign-in page": Browser(world.url).get("/signin"),
        "search": browser.get("/search"),
        "copy": browser.get("/copy", key=world.keys["email"]),
        "native download": browser.get("/copy/native", key=world.keys["email"]),
        "not found": browser.get("/no/such/page"),
        "stylesheet": browser.get("/static/console.css"),
    }
    for name, answer in answers.items():
        headers = answer.headers
        assert "script-src 'self'" in headers["content-security-policy"] or (
            "sandbox" in headers["content-security-policy"]
        ), name
        assert "frame-ancestors 'none'" in headers["content-security-policy"], name
        assert headers["referrer-policy"] == "no-referrer", name
        assert headers["x-content-type-options"] == "nosniff", name
        assert headers["cache-control"] == "no-store", name
    assert answers["not found"].status == 404
    download = answers["native download"]
    assert download.status == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in download.headers["content-security-policy"]


def test_signing_in_replaces_the_session_and_a_wrong_key_gets_none(world: ConsoleWorld) -> None:
    browser = Browser(world.url)
    assert browser.get("/search").status == 303  # not signed in: to the sign-in page
    page = browser.get("/signin")
    assert page.status == 200
    before = browser.cookie
    assert before
    cookie = page.cookies[0]
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in cookie
    assert "Secure" not in cookie.replace("SameSite", "")  # plain HTTP here
    wrong = browser.post("/signin", {"csrf": browser.csrf("/signin"), "api_key": "ma_wrong"})
    assert wrong.status == 403
    assert "not known" in wrong.text
    assert browser.get("/search").status == 303
    assert browser.sign_in(reviewer_key("jane")).status == 303
    assert browser.cookie != before  # a new session id after sign-in
    assert browser.get("/search").status == 200
    stale = Browser(world.url)
    stale.cookie = before
    assert stale.get("/search").status == 303  # the id from before sign-in is worth nothing


def test_an_accounts_own_api_key_signs_in_without_holds(world: ConsoleWorld) -> None:
    browser = Browser(world.url)
    assert browser.sign_in(KEYS["acme"]).status == 303
    page = browser.get("/search", campaign_id=CAMPAIGN).text
    assert "acme · export" in page
    assert 'action="/exports"' in page
    assert 'action="/holds"' not in page


def test_sign_out_ends_the_session(world: ConsoleWorld) -> None:
    browser = signed_in(world, "jane")
    kept = browser.cookie
    out = browser.post("/signout", {"csrf": browser.csrf()})
    assert out.status == 303
    assert out.headers["location"] == "/signin"
    again = Browser(world.url)
    again.cookie = kept
    assert again.get("/search").status == 303


def test_a_form_without_its_csrf_token_changes_nothing(world: ConsoleWorld) -> None:
    browser = signed_in(world, "jane")
    form = {"campaign_id": CAMPAIGN, "action": "on", "reason": "csrf test"}
    for token in ("", "forged", browser.csrf() + "x"):
        answer = browser.post("/holds", {**form, "csrf": token})
        assert answer.status == 403
        assert "did not come from this console" in answer.text
    assert not audit_lines(world, "console hold")
    assert browser.post("/signout", {"csrf": ""}).status == 403
    assert browser.get("/search").status == 200  # still signed in


def test_a_reviewer_never_reaches_another_accounts_copies(world: ConsoleWorld) -> None:
    acme = signed_in(world, "jane")
    theirs = world.keys["globex"]  # globex's store is a prefix of another bucket
    for path in ("/copy", "/copy/native", "/copy/eml", "/copy/proof"):
        answer = acme.get(path, key=theirs)
        assert answer.status == 404, path
        assert "There is no such copy" in answer.text
        assert b"+44" not in answer.body
    for edited in (
        "globex/" + world.keys["sms"],
        world.keys["sms"].replace("/Sms/", "/Sms/../Sms/"),
        world.keys["sms"] + "%00",
        "../" * 5 + "etc/passwd",
    ):
        assert acme.get("/copy", key=edited).status in (400, 404), edited
    # globex's reviewer reads globex's copy, and none of acme's.
    gus = signed_in(world, "gus")
    assert gus.get("/copy", key=theirs).status == 200
    assert gus.get("/copy", key=world.keys["sms"]).status == 404
    found = gus.get("/search", recipient=ARCHIVED_PHONE).text
    assert "0 copies found" in found
    # A job id of another account is not found either.
    assert gus.get("/exports/download", id="0123456789abcdef").status == 404


def test_roles_decide_export_and_holds(world: ConsoleWorld) -> None:
    vera = signed_in(world, "vera")  # view only
    page = vera.get("/search", campaign_id=CAMPAIGN).text
    assert 'action="/exports"' not in page
    assert 'action="/holds"' not in page
    token = vera.csrf()
    refused = vera.post("/exports", {"csrf": token, "campaign_id": CAMPAIGN})
    assert refused.status == 403
    assert "does not include exports" in refused.text
    refused = vera.post(
        "/holds", {"csrf": token, "campaign_id": CAMPAIGN, "action": "on", "reason": "r"}
    )
    assert refused.status == 403
    assert "does not include legal holds" in refused.text


def test_a_search_finds_a_person_however_the_number_is_written(world: ConsoleWorld) -> None:
    browser = signed_in(world, "vera")
    page = browser.get("/search", recipient="+1 555-555-5555").text
    assert "2 copies found" in page  # the SMS and the WhatsApp copy
    assert world.keys["sms"] in page.replace("%2F", "/")
    assert world.keys["whatsapp"] in page.replace("%2F", "/")
    bad = browser.get("/search", recipient="not anyone", channel="sms").text
    assert "recipient" in bad
    assert "copies found" not in bad
    assert "until" in browser.get("/search", until="soon").text


def test_a_copy_page_shows_each_channel_and_an_intact_copy_is_proven(world: ConsoleWorld) -> None:
    browser = signed_in(world, "vera")
    expected = {
        "email": ["20% off coupon inside!", "Shop &lt;news@shop.example&gt;", "cc@example.org"],
        "push": ["Flat 20% off", "Today only", "iOS notification"],
        "sms": ["Hi there!", "via twilio"],
        "whatsapp": ["Hi there!", "whatsapp"],
    }
    for channel, texts in expected.items():
        page = browser.get("/copy", key=world.keys[channel])
        assert page.status == 200, channel
        for text in texts:
            assert text in page.text, (channel, text)
        assert "✓</span> Proven" in page.text, channel
    eml = browser.get("/copy/eml", key=world.keys["email"])
    assert eml.headers["content-type"] == "message/rfc822"
    assert b"Subject: 20% off coupon inside!" in eml.body
    proof = json.loads(browser.get("/copy/proof", key=world.keys["sms"]).body)
    assert proof["format"] == "msgarchive.inclusion-proof.v1"
    assert json.loads(proof["leaf"])["key"] == world.keys["sms"]


def test_audit_lines_name_the_reviewer_and_never_a_recipient(world: ConsoleWorld) -> None:
    browser = signed_in(world, "vera")
    browser.get("/search", recipient="Jane.Doe@Example.com")
    browser.get("/copy", key=world.keys["email"])
    browser.get("/copy/native", key=world.keys["email"])
    deadline = time.monotonic() + 30
    while not audit_lines(world, "console download") and time.monotonic() < deadline:
        time.sleep(0.05)
    searched = [line for line in audit_lines(world, "console search")
                if line.get("reviewer") == "vera" and "recipient_user_hashes" in
                str(line.get("filters"))]  # fmt: skip
    assert searched
    assert searched[-1]["audit"] is True
    assert searched[-1]["account"] == "acme"
    viewed = audit_lines(world, "console copy viewed")
    assert any(line["key"] == world.keys["email"] for line in viewed)
    text = "\n".join(json.dumps(line) for line in world.console.lines).lower()
    for recipient in ("jane.doe@example.com", "555-555", "5555555555", "hostile.target"):
        assert recipient not in text
    # Request lines log the route, never the path's query.
    routes = {line["method"] for line in world.console.lines if line.get("event") ==
              "console request"}  # fmt: skip
    assert routes <= {f"{m} {r}" for m in ("GET", "POST", "HEAD") for r in (
        "/", "/signin", "/signout", "/search", "/copy", "/copy/native", "/copy/eml",
        "/copy/proof", "/exports", "/exports/download", "/holds", "/static/console.css",
        "(other)")}  # fmt: skip


def test_a_slow_client_holds_no_one_up(world: ConsoleWorld) -> None:
    host, port = "127.0.0.1", int(world.url.rsplit(":", 1)[1])
    stalled = [socket.create_connection((host, port), timeout=60) for _ in range(20)]
    try:
        for connection in stalled:
            connection.sendall(b"GET /search HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert Browser(world.url).get("/signin").status == 200
    finally:
        for connection in stalled:
            connection.close()


def test_without_accounts_the_console_serves_this_machine_only(tmp_path: Path) -> None:
    """Called as from another host (the app itself, with REMOTE_ADDR set)."""
    import argparse
    import io

    from msgarchive_server.process import console

    args = argparse.Namespace(
        tls_cert=None, tls_key=None, idle_minutes=15.0, cache_dir=str(tmp_path / "cache"),
        work_dir=str(tmp_path / "work"), s3_endpoint_url=None, accounts=None, tls_client_ca=None,
        store=str(tmp_path / "archive"), manifest_key=None, signing_key=None,
        listen="127.0.0.1:0",
    )  # fmt: skip
    server, app = console.build(args)
    try:
        answered: list[str] = []

        def call(remote: str) -> bytes:
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/search", "QUERY_STRING": "",
                       "REMOTE_ADDR": remote, "wsgi.input": io.BytesIO()}  # fmt: skip
            return b"".join(app(environ, lambda status, headers: answered.append(status)))

        assert b"served this machine only" not in call("127.0.0.1")
        assert answered[-1].startswith("200")
        assert b"serves this machine only" in call("10.1.2.3")
        assert answered[-1].startswith("403")
        assert re.search(rb"Search the archive", call("::1"))
    finally:
        server.stop(1)


def test_under_mtls_the_session_cookie_is_secure_and_a_client_needs_a_certificate(
    certificates: dict[str, Path], tmp_path: Path
) -> None:
    import http.client
    import ssl

    from tests.sidecar import SidecarProcess

    served = SidecarProcess(
        [
            "--listen=127.0.0.1:0", f"--store={tmp_path / 'archive'}",
            f"--tls-cert={certificates['server_cert']}", f"--tls-key={certificates['server_key']}",
            f"--tls-client-ca={certificates['ca']}",
            f"--cache-dir={tmp_path / 'cache'}", f"--work-dir={tmp_path / 'work'}",
        ],
        command="console",
    ).start()  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(certificates["ca"]))
        anonymous = http.client.HTTPSConnection("127.0.0.1", served.port, context=context)

        def without_a_certificate() -> None:
            anonymous.request("GET", "/search")
            anonymous.getresponse().read()

        with pytest.raises((ssl.SSLError, ConnectionError)):
            without_a_certificate()
        anonymous.close()
        context.load_cert_chain(certificates["client_cert"], certificates["client_key"])
        connection = http.client.HTTPSConnection("127.0.0.1", served.port, context=context)
        connection.request("GET", "/search")
        answer = connection.getresponse()
        answer.read()
        connection.close()
        assert answer.status == 200
        cookie = answer.headers["Set-Cookie"]
        assert cookie.endswith("; Secure")
        assert "HttpOnly" in cookie
    finally:
        served.stop()
