"""A console over a real archive, for the console's HTTP and browser tests.

Two accounts on SeaweedFS (acme's bucket with Object Lock, so holds work),
copies of every channel archived by a real sidecar with signed manifests and
sealed, one email whose body is a corpus of hostile HTML naming a canary
server on loopback, and `msgarchive console` as a process of its own.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from msgarchive import ArchiveClient
from msgarchive.v1 import archive_service_pb2 as pb
from msgarchive_server.domain.accounts import key_digest
from tests import samples
from tests.accounts import KEYS, accounts_file, s3_stores
from tests.seaweed import SeaweedFS
from tests.sidecar import SidecarProcess, manifest_key_pair, on_s3

REVIEWERS = {  # name -> (account, role, key)
    "jane": ("acme", "hold", "rv_jane_key_0123456789"),
    "vera": ("acme", "view", "rv_vera_key_0123456789"),
    "gus": ("globex", "hold", "rv_gus_key_0123456789"),
}
CAMPAIGN = samples.context()["campaign_id"]
ARCHIVED_PHONE = "+1 (555) 555-5555"  # as the SMS sample was archived


class Canary:
    """An HTTP server on loopback that counts every request made to it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_HEAD = do_GET  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def hostile_body(canary: str) -> str:
    """Every trick of the unit corpus in one email, each naming the canary."""
    from tests.unit.test_console_inert import CANARY, HOSTILE

    parts = [body.replace(CANARY, canary).replace("//canary.test", canary.replace("http:", ""))
             for _, body in HOSTILE]  # fmt: skip
    ran = (  # would each call the canary, if anything of the copy ran
        f'<script>new Image().src = "{canary}/script-ran";</script>'
        f"<img src=x onerror=\"fetch('{canary}/onerror-ran')\">"
        f"<svg onload=\"fetch('{canary}/svg-onload-ran')\"></svg>"
    )
    return "<p>Visible text of a hostile email</p>" + ran + "\n".join(parts)


@dataclass
class ConsoleWorld:
    url: str
    console: SidecarProcess
    seaweed: SeaweedFS
    buckets: dict[str, str]
    keys: dict[str, str]  # acme's copies by name; "globex" is globex's copy
    manifest_public: Path
    team_public: Path
    canary: Canary
    root: Path
    extra: dict[str, str] = field(default_factory=dict)


def build(seaweed: SeaweedFS, root: Path) -> Iterator[ConsoleWorld]:
    buckets = {"acme": seaweed.new_bucket(object_lock=True), "globex": seaweed.new_bucket()}
    accounts = accounts_file(root / "accounts.toml", s3_stores(buckets))
    with accounts.open("a") as file:
        for name, (account, role, key) in REVIEWERS.items():
            file.write(
                f'[reviewers.{name}]\naccount = "{account}"\nrole = "{role}"\n'
                f'api_key_sha256 = ["{key_digest(key)}"]\n\n'
            )
    signing, manifest_public = manifest_key_pair(root)
    team = root / "team"
    team.mkdir()
    team_key, team_public = manifest_key_pair(team)
    canary = Canary()
    sidecar = on_s3(
        seaweed.endpoint, seaweed.env, f"--accounts={accounts}",
        f"--manifests-dir={root / 'journal'}", f"--manifest-signing-key={signing}",
    )  # fmt: skip
    keys: dict[str, str] = {}
    try:
        with ArchiveClient(sidecar.address) as client:
            for name, make in samples.REQUESTS.items():
                keys[name] = client.archive(_for(make(), "acme")).key
            hostile = _for(samples.email_request(customer_identity="666"), "acme")
            hostile.email.subject = "A hostile email"
            hostile.email.to = "hostile.target@example.com"
            hostile.email.html_body = hostile_body(canary.url)
            keys["hostile"] = client.archive(hostile).key
            altered = _for(samples.sms_request(customer_identity="777"), "acme")
            altered.sms.to = "+1 555 000 7777"  # a copy of its own, altered in the store later
            keys["to-alter"] = client.archive(altered).key
            theirs = _for(samples.sms_request(customer_identity="999"), "globex")
            theirs.sms.to = "+44 20 7946 0018"
            keys["globex"] = client.archive(theirs).key
    finally:
        assert sidecar.stop() == 0  # seals: every ack is in a signed manifest
    console = SidecarProcess(
        [
            "--listen=127.0.0.1:0", f"--accounts={accounts}",
            f"--s3-endpoint-url={seaweed.endpoint}", f"--manifest-key={manifest_public}",
            f"--signing-key={team_key}", f"--cache-dir={root / 'cache'}",
            f"--work-dir={root / 'work'}",
        ],
        env=seaweed.env,
        command="console",
    ).start()  # fmt: skip
    try:
        yield ConsoleWorld(
            f"http://127.0.0.1:{console.port}", console, seaweed, buckets, keys,
            manifest_public, team_public, canary, root,
        )  # fmt: skip
    finally:
        console.stop()
        canary.stop()


def _for(request: pb.ArchiveRequest, account: str) -> pb.ArchiveRequest:
    request.account_id = account
    return request


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str]

    @property
    def text(self) -> str:
        return self.body.decode()


class Browser:
    """A cookie-keeping HTTP client that follows no redirect (to see each answer)."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.cookie = ""

    def get(self, path: str, **query: str) -> Answer:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        return self._send("GET", path, None)

    def post(self, path: str, form: dict[str, str]) -> Answer:
        return self._send("POST", path, urllib.parse.urlencode(form).encode())

    def _send(self, method: str, path: str, body: bytes | None) -> Answer:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        cookies = response.headers.get_all("Set-Cookie") or []
        for cookie in cookies:
            pair = cookie.split(";", 1)[0]
            self.cookie = "" if pair.endswith("=") else pair
        named = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, named, data, cookies)

    def csrf(self, path: str = "/search") -> str:
        """The CSRF token in a page's forms."""
        text = self.get(path).text
        marker = 'name="csrf" value="'
        start = text.index(marker) + len(marker)
        return text[start : text.index('"', start)]

    def sign_in(self, key: str) -> Answer:
        token = self.csrf("/signin")
        return self.post("/signin", {"csrf": token, "api_key": key})


def reviewer_key(name: str) -> str:
    return REVIEWERS[name][2]


__all__ = ["KEYS", "Browser", "ConsoleWorld", "build", "reviewer_key"]
