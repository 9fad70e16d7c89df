"""The review console: the archive in a browser (a WSGI app on edge/httpserver.py).

Pages are rendered on the server from Jinja2 templates (templates/, one per
page, on base.html) with autoescaping; there is no script at all, and every
page and download gets the same security headers from `_secure` (one
mechanism, as warehouse's csp.py has it). What a reviewer may reach is decided
here, once per request: the session's account picks the store (an account's
reviewer can name any key in a URL and still reads only its own store), and
the role allows export and holds. Every search, copy viewed, download, export
and hold is an audit line: the account, the reviewer, the key, the filters
with a recipient as its user hashes, never as written.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
import structlog

from msgarchive import channels
from msgarchive.proofs import ProofChecker, ProofError
from msgarchive_server.domain import describe, renditions
from msgarchive_server.domain.accounts import Accounts
from msgarchive_server.domain.errors import CopyNotFound, DomainError, InvalidLookup, WrongAccount
from msgarchive_server.domain.manifests.heads import Signer
from msgarchive_server.domain.manifests.holds import Selection, apply_hold
from msgarchive_server.domain.manifests.prove import prove
from msgarchive_server.domain.reads import Copy, Reader, recipient_hash
from msgarchive_server.domain.search import (
    Search,
    SearchQuery,
    instant_ms,
    platform_names,
    recorded_filters,
)
from msgarchive_server.edge.access import is_local_address
from msgarchive_server.edge.console.inert import inert
from msgarchive_server.edge.console.jobs import Jobs
from msgarchive_server.edge.console.sessions import (
    COOKIE,
    Reviewer,
    Session,
    Sessions,
    cookie,
)
from msgarchive_server.stores import Store, StoreError, Unsupported, holding

log = structlog.get_logger("msgarchive.console")

# The console's own pages: their own stylesheet, no script, forms to
# themselves. Inline style is allowed for one reason: the email frame's srcdoc
# document inherits this policy, and an email's look is its inline CSS (the
# frame's own policy, inert.FRAME_POLICY, still loads nothing).
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# A download is never a page.
DOWNLOAD_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"
_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]
OPEN_ACCOUNT = "-"  # the one archive of a console without accounts
PAGE_SIZE = 50
MAX_FORM_BYTES = 16 * 1024
_STATUS = {
    200: "OK", 303: "See Other", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 413: "Content Too Large", 500: "Internal Server Error",
    503: "Service Unavailable",
}  # fmt: skip
# A head's key ends in its hour's folder: .../YYYY/MM/DD/HH/head[.N].json
_HOUR_FOLDER = re.compile(r"/(?P<day>\d{4}/\d{2}/\d{2})/(?P<hour>\d{2})/head[^/]*$")
_SEARCH_FIELDS = (
    "recipient", "campaign_id", "channel", "platform", "since", "until", "message_id", "held",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    manifest_key: bytes | None = None  # the sidecars' manifest public key (PEM)
    signer: Signer | None = None  # the reviewers' team key: productions and hold records
    idle_s: float = 900.0
    secure: bool = False  # served over TLS: the cookie is Secure
    refresh_s: float = 10.0  # how old a search's view of the store may get


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Response:
    status: int
    body: bytes | Iterable[bytes] = b""
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    download: str = ""  # a file name: sent as an attachment


class Archive:
    """One account's store as the console reads it: its reader, and one search
    kept open (DuckDB over the mirrored manifests), reopened when it is older
    than `refresh_s` so that new copies, manifests and holds show."""

    def __init__(
        self,
        account: str,
        store: Store,
        open_search: Callable[[], Search],
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = account
        self.store = store
        self.reader = Reader(store)
        self.open_search = open_search
        self.refresh_s = refresh_s
        self.clock = clock
        self._lock = threading.Lock()
        self._search: Search | None = None
        self._opened = 0.0

    @contextlib.contextmanager
    def search(self) -> Iterator[Search]:
        """The archive's search, for one caller at a time (a DuckDB connection)."""
        with self._lock:
            if self._search is not None and self.clock() - self._opened > self.refresh_s:
                self._search.close()
                self._search = None
            if self._search is None:
                search = self.open_search()
                search.prepare(SearchQuery())  # reads its sources: `manifests` is filled
                self._search, self._opened = search, self.clock()
            yield self._search

    def refresh(self) -> None:
        """Forget the open search (after a hold changed what it would say)."""
        with self._lock:
            if self._search is not None:
                self._search.close()
                self._search = None

    def close(self) -> None:
        self.refresh()
        self.store.close()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    session: Session | None
    local: bool
    cookie_id: str  # the session id the browser sent ("" for none)

    def arg(self, name: str) -> str:
        return self.query.get(name, "").strip()

    @property
    def reviewer(self) -> Reviewer:
        if self.session is None or self.session.reviewer is None:
            raise Refused(403, "sign in first")
        return self.session.reviewer


class Console:
    """The WSGI application."""

    def __init__(
        self,
        archives: dict[str, Archive],
        accounts: Accounts | None,
        settings: ConsoleSettings,
        work_root: Path,
        *,
        unix_socket: bool = False,
    ) -> None:
        self.archives = archives
        self.accounts = accounts
        self.settings = settings
        self.unix_socket = unix_socket
        self.sessions = Sessions(settings.idle_s)
        self.jobs = Jobs(work_root)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("msgarchive_server.edge.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.stylesheet = resources.files(__package__).joinpath("static/console.css").read_bytes()
        self._routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/"): lambda r: _redirect("/search"),
            ("GET", "/signin"): self.signin_page,
            ("POST", "/signin"): self.signin,
            ("POST", "/signout"): self.signout,
            ("GET", "/search"): self.search_page,
            ("GET", "/copy"): self.copy_page,
            ("GET", "/copy/native"): self.native,
            ("GET", "/copy/eml"): self.eml,
            ("GET", "/copy/proof"): self.proof,
            ("GET", "/exports"): self.exports_page,
            ("POST", "/exports"): self.export,
            ("GET", "/exports/download"): self.export_download,
            ("POST", "/holds"): self.hold,
        }

    # --- the request ---------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        structlog.contextvars.clear_contextvars()
        started = time.perf_counter()
        method, path = str(environ.get("REQUEST_METHOD", "")), str(environ.get("PATH_INFO", ""))
        route = path if any(path == p for _, p in self._routes) else "(other)"
        if path == "/static/console.css":
            route = path
        # The route, never the raw path or its query: a URL can carry an address.
        structlog.contextvars.bind_contextvars(method=f"{method} {route}")
        request: Request | None = None
        try:
            request = self._request(environ, method, path)
            response = self._answer(request)
        except Refused as refused:
            response = self._error(request, refused.status, refused.message)
        except Exception:
            log.exception("console crashed")
            response = self._error(request, 500, "Something went wrong; it has been logged.")
        headers = self._secure(response, request)
        log.info(
            "console request",
            http_status=response.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        structlog.contextvars.clear_contextvars()
        start_response(f"{response.status} {_STATUS.get(response.status, '')}", headers)
        if isinstance(response.body, bytes):
            return [response.body]
        return response.body

    def _request(self, environ: dict[str, Any], method: str, path: str) -> Request:
        local = self.unix_socket or is_local_address(str(environ.get("REMOTE_ADDR") or ""))
        query = _single(parse_qs(str(environ.get("QUERY_STRING", "")), max_num_fields=64))
        form: dict[str, str] = {}
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > MAX_FORM_BYTES:
                raise Refused(413, "the form is too large")
            raw = environ["wsgi.input"].read(length).decode("utf-8", "replace")
            form = _single(parse_qs(raw, max_num_fields=64))
        sent = _cookie(environ.get("HTTP_COOKIE", ""))
        request = Request(method, path, query, form, self.sessions.find(sent), local, sent)
        if self.accounts is None and not local:
            raise Refused(403, "without accounts the console serves this machine only")
        return request

    def _answer(self, request: Request) -> Response:
        if request.path == "/static/console.css" and request.method in ("GET", "HEAD"):
            return Response(200, self.stylesheet, "text/css; charset=utf-8")
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            if any(path == request.path for _, path in self._routes):
                raise Refused(405, f"{request.path} does not take {request.method}")
            raise Refused(404, "There is no such page.")
        if self.accounts is None and (request.session is None or request.session.reviewer is None):
            # Without accounts the machine's own user is the reviewer.
            request.session = self.sessions.new(Reviewer(OPEN_ACCOUNT, "local", "hold"))
        if request.method == "POST" and request.path != "/signin":
            self._check_csrf(request)
        if request.path not in ("/signin",) and (
            request.session is None or request.session.reviewer is None
        ):
            return _redirect("/signin")
        if request.session is not None and request.session.reviewer is not None:
            structlog.contextvars.bind_contextvars(
                account=request.session.reviewer.account, reviewer=request.session.reviewer.name
            )
        return handler(request)

    def _check_csrf(self, request: Request) -> None:
        session = request.session
        if session is None or not session.csrf_matches(request.form.get("csrf", "")):
            raise Refused(
                403,
                "This form has expired or did not come from this console: "
                "reload the page and try again.",
            )

    def _secure(self, response: Response, request: Request | None) -> list[tuple[str, str]]:
        """Every answer's headers: the security headers, one policy for pages and
        one for downloads, and the session cookie when the session is new."""
        headers = [*response.headers, *_HEADERS]
        headers.append(("Content-Type", response.content_type))
        if response.download:
            headers.append(("Content-Security-Policy", DOWNLOAD_POLICY))
            headers.append(("Content-Disposition", f'attachment; filename="{response.download}"'))
        else:
            headers.append(("Content-Security-Policy", PAGE_POLICY))
        if isinstance(response.body, bytes):
            headers.append(("Content-Length", str(len(response.body))))
        session = request.session if request is not None else None
        if session is not None and request is not None and session.id != request.cookie_id:
            headers.append(("Set-Cookie", cookie(session, secure=self.settings.secure)))
        return headers

    # --- pages ----------------------------------------------------------------------

    def render(
        self, request: Request | None, template: str, status_code: int = 200, **values: Any
    ) -> Response:
        session = request.session if request is not None else None
        notice = ""
        if session is not None:
            notice, session.notice = session.notice, ""
        page = self.templates.get_template(template).render(
            reviewer=session.reviewer if session is not None else None,
            csrf=session.csrf if session is not None else "",
            open_console=self.accounts is None,
            notice=notice,
            **values,
        )
        return Response(status_code, page.encode())

    def _error(self, request: Request | None, status: int, message: str) -> Response:
        return self.render(request, "error.html", status, code=status, message=message)

    def signin_page(self, request: Request) -> Response:
        if request.session is None:
            request.session = self.sessions.new()
        return self.render(request, "signin.html", failed=False)

    def signin(self, request: Request) -> Response:
        self._check_csrf(request)
        assert self.accounts is not None  # an open console signs in by itself
        signed = self.accounts.sign_in(request.form.get("api_key", "").strip())
        if signed is None:
            log.info("console sign-in refused", audit=True)
            return self.render(request, "signin.html", 403, failed=True)
        old = request.session
        if old is not None:
            self.sessions.end(old.id)
        request.session = self.sessions.new(Reviewer(signed.account_id, signed.name, signed.role))
        log.info("console sign-in", audit=True, account=signed.account_id, reviewer=signed.name)
        return _redirect("/search")

    def signout(self, request: Request) -> Response:
        if request.session is not None:
            self.sessions.end(request.session.id)
        log.info("console sign-out", audit=True)
        request.session = None
        response = _redirect("/signin" if self.accounts is not None else "/search")
        response.headers.append(("Set-Cookie", cookie(None, secure=self.settings.secure)))
        return response

    def search_page(self, request: Request) -> Response:
        reviewer = request.reviewer
        archive = self._archive(reviewer)
        values = {name: request.arg(name) for name in _SEARCH_FIELDS}
        problems: list[str] = []
        items: list[Any] = []
        counts: dict[str, int] = {}
        next_token = ""
        source = ""
        try:
            query = _query(values)
            with archive.search() as searcher:
                page = searcher.find(query, PAGE_SIZE, request.arg("after"))
                totals = searcher.count(query)
                source = searcher.source_used
            items, next_token = page.items, page.next_token
            for channel, _, n in totals:
                counts[channel] = counts.get(channel, 0) + n
            log.info(
                "console search", audit=True, filters=recorded_filters(query),
                count=sum(counts.values()), source=source,
            )  # fmt: skip
        except (InvalidLookup, ValueError) as err:
            problems.append(_problem(err))
        except StoreError as err:
            problems.append(f"The store did not answer: {err}")
        filters = {k: v for k, v in values.items() if v}
        return self.render(
            request, "search.html", values=values, items=items, counts=counts,
            total=sum(counts.values()), problems=problems, source=source,
            next_url=f"/search?{urlencode({**filters, 'after': next_token})}" if next_token else "",
            filters=filters, channels=list(channels.NAMES), platforms=platform_names(),
            can_export=reviewer.may("export") and self.settings.signer is not None,
            can_hold=reviewer.may("hold") and self.settings.signer is not None,
            hold_blocked=_hold_blocked(values),
        )  # fmt: skip

    def copy_page(self, request: Request) -> Response:
        archive, copy = self._copy(request)
        tab = request.arg("tab") or "html"
        channel = copy.parts.channel
        fields = copy.fields
        body = None
        if channel == channels.EMAIL.name:
            body = inert(str(fields.get("html_body", "")))
        log.info("console copy viewed", audit=True, key=copy.key)
        return self.render(
            request, "copy.html", copy=copy, channel=channel, tab=tab,
            details=describe.details(copy), content=describe.content(copy),
            sender=renditions.sender(channel, fields), body=body,
            headers=fields.get("headers") if isinstance(fields.get("headers"), dict) else {},
            archived_json=json.dumps(fields, indent=2, ensure_ascii=False),
            integrity=self._integrity(archive, copy), key_query=urlencode({"key": copy.key}),
        )  # fmt: skip

    def native(self, request: Request) -> Response:
        _, copy = self._copy(request)
        log.info("console download", audit=True, key=copy.key, what="native")
        return Response(
            200, copy.stored.body, "application/octet-stream", download=_file_name(copy.key)
        )

    def eml(self, request: Request) -> Response:
        _, copy = self._copy(request)
        if copy.parts.channel != channels.EMAIL.name:
            raise Refused(404, "Only an email has an EML.")
        log.info("console download", audit=True, key=copy.key, what="eml")
        name = _file_name(copy.key).removesuffix(".json.lz4") + ".eml"
        return Response(200, renditions.eml(copy.fields), "message/rfc822", download=name)

    def proof(self, request: Request) -> Response:
        archive, copy = self._copy(request)
        found = self._prove(archive, copy.key)
        if found is None:
            raise Refused(404, "No signed manifest lists this copy (yet): there is no proof.")
        log.info("console download", audit=True, key=copy.key, what="proof")
        name = _file_name(copy.key).removesuffix(".json.lz4") + ".proof.json"
        data = (json.dumps(found, indent=2) + "\n").encode()
        return Response(200, data, "application/json", download=name)

    def exports_page(self, request: Request) -> Response:
        reviewer = request.reviewer
        jobs = self.jobs.of(reviewer.account)
        return self.render(
            request, "exports.html", jobs=jobs, running=any(j.state == "running" for j in jobs),
            can_export=reviewer.may("export"),
        )  # fmt: skip

    def export(self, request: Request) -> Response:
        reviewer = request.reviewer
        if not reviewer.may("export"):
            raise Refused(403, "Your role does not include exports.")
        if self.settings.signer is None:
            raise Refused(403, "This console has no --signing-key: it cannot sign productions.")
        archive = self._archive(reviewer)
        values = {name: request.form.get(name, "").strip() for name in _SEARCH_FIELDS}
        try:
            query = _query(values)
            filters = recorded_filters(query)
        except (InvalidLookup, ValueError) as err:
            raise Refused(400, _problem(err)) from None
        job = self.jobs.start(
            account=reviewer.account, reviewer=reviewer.name, store=archive.store,
            open_search=archive.open_search, query=query, filters=filters,
            signer=self.settings.signer, manifest_key=self.settings.manifest_key,
        )  # fmt: skip
        log.info("console export", audit=True, job=job.id, filters=filters)
        assert request.session is not None
        request.session.notice = "The export has started; it is listed below."
        return _redirect("/exports")

    def export_download(self, request: Request) -> Response:
        reviewer = request.reviewer
        job = self.jobs.get(reviewer.account, request.arg("id"))
        if job is None or job.state != "done" or job.path is None:
            raise Refused(404, "There is no such finished export.")
        log.info("console download", audit=True, job=job.id, what="production")
        return Response(
            200, _file_chunks(job.path), "application/zip", download=job.path.name,
            headers=[("Content-Length", str(job.path.stat().st_size))],
        )  # fmt: skip

    def hold(self, request: Request) -> Response:
        reviewer = request.reviewer
        if not reviewer.may("hold"):
            raise Refused(403, "Your role does not include legal holds.")
        if self.settings.signer is None:
            raise Refused(403, "This console has no --signing-key: it cannot sign hold records.")
        archive = self._archive(reviewer)
        values = {name: request.form.get(name, "").strip() for name in _SEARCH_FIELDS}
        action, reason = request.form.get("action", ""), request.form.get("reason", "").strip()
        if action not in ("on", "off"):
            raise Refused(400, "action must be on or off")
        if not reason:
            raise Refused(400, "A hold needs a reason.")
        blocked = _hold_blocked(values)
        if blocked:
            raise Refused(400, blocked)
        user_hash = ""
        try:
            if values["recipient"]:
                channel = channels.named(values["channel"])
                user_hash = recipient_hash(channel, values["recipient"], "recipient")
            store = holding(archive.store, "hold")
            selection = Selection(values["campaign_id"], values["channel"], "", user_hash)
            record, copies = apply_hold(
                store, self.settings.signer, selection, on=action == "on",
                reason=f"{reason} (console reviewer {reviewer.name})",
            )  # fmt: skip
        except (InvalidLookup, ValueError) as err:
            raise Refused(400, _problem(err)) from None
        except Unsupported as err:
            raise Refused(400, str(err)) from None
        except StoreError as err:
            raise Refused(503, f"The store refused: {err}") from None
        archive.refresh()
        log.info(
            "console hold", audit=True, action=action, record=record, count=len(copies),
            filters={"campaign_id": selection.campaign_id, "channel": selection.channel,
                     "user_hash": user_hash},
        )  # fmt: skip
        assert request.session is not None
        placed = "placed on" if action == "on" else "lifted from"
        request.session.notice = f"Legal hold {placed} {len(copies)} copies; recorded as {record}."
        filters = {k: v for k, v in values.items() if v}
        return _redirect(f"/search?{urlencode(filters)}")

    # --- what pages share ------------------------------------------------------------

    def _archive(self, reviewer: Reviewer) -> Archive:
        archive = self.archives.get(reviewer.account)
        if archive is None:
            raise Refused(403, "Your account has no archive on this console.")
        return archive

    def _copy(self, request: Request) -> tuple[Archive, Copy]:
        archive = self._archive(request.reviewer)
        key = request.arg("key")
        try:
            return archive, archive.reader.get(key)
        except (CopyNotFound, WrongAccount):
            # Another account's key is "not found" too: nothing says it exists.
            raise Refused(404, "There is no such copy in this archive.") from None
        except InvalidLookup as err:
            raise Refused(400, _problem(err)) from None
        except DomainError as err:
            raise Refused(503, err.message) from None

    def _prove(self, archive: Archive, key: str) -> dict[str, Any] | None:
        with archive.search() as searcher:
            mirrored = dict(searcher.manifests)

        def read(name: str) -> bytes:
            path = mirrored.get(name)
            return path.read_bytes() if path is not None else archive.store.get(name).body

        return prove(archive.store, key, list(mirrored), read)

    def _integrity(self, archive: Archive, copy: Copy) -> dict[str, Any]:
        """What the integrity panel says of a copy: each check, and whether it held."""
        stored_sha256 = hashlib.sha256(copy.stored.body).hexdigest()
        panel: dict[str, Any] = {
            "sha256": stored_sha256,
            "version_id": copy.stored.version_id,
            "retention_mode": copy.stored.retention_mode,
            "retain_until": _instant(copy.stored.retain_until_ms),
            "legal_hold": copy.stored.legal_hold,
            "hour": "",
            "ok": False,
        }
        found = self._prove(archive, copy.key)
        if found is None:
            panel["why"] = (
                "No signed manifest lists this copy: its hour may not be sealed yet, or this "
                "store has no manifests."
            )
            panel["ok"] = None
            return panel
        hour = _HOUR_FOLDER.search(found["head_key"])
        panel["hour"] = f"{hour['day'].replace('/', '-')} {hour['hour']}:00 UTC" if hour else "?"
        if self.settings.manifest_key is None:
            panel["why"] = "The console has no --manifest-key: the proof cannot be checked."
            panel["ok"] = None
            return panel
        try:
            ProofChecker(self.settings.manifest_key).check(found)
        except ProofError as err:
            panel["why"] = f"The inclusion proof does not hold: {err}."
            return panel
        leaf = json.loads(found["leaf"])
        if leaf.get("sha256") != stored_sha256:
            panel["why"] = (
                "The stored bytes are not those the signed manifest lists: their SHA-256 is "
                f"{stored_sha256}, the manifest's {leaf.get('sha256')}."
            )
            return panel
        if leaf.get("version_id") and leaf.get("version_id") != copy.stored.version_id:
            panel["why"] = (
                f"The store's current version ({copy.stored.version_id}) is not the one the "
                f"manifest lists ({leaf.get('version_id')})."
            )
            return panel
        panel["ok"] = True
        panel["why"] = (
            "Proven: the stored bytes are those the signed manifest lists, and the inclusion "
            "proof leads to a head whose signature verifies under the manifest key."
        )
        return panel


def _query(values: dict[str, str]) -> SearchQuery:
    held = {"": None, "yes": True, "no": False}.get(values["held"])
    if values["held"] not in ("", "yes", "no"):
        raise ValueError("held must be yes, no or empty")
    return SearchQuery(
        recipient=values["recipient"],
        channel=values["channel"],
        campaign_id=values["campaign_id"],
        platform=values["platform"],
        sent_after_ms=instant_ms(values["since"], "since"),
        sent_before_ms=instant_ms(values["until"], "until"),
        message_id=values["message_id"],
        held=held,
    )


def _hold_blocked(values: dict[str, str]) -> str:
    """Why a hold cannot be placed on this search ("" when it can)."""
    if not values["campaign_id"]:
        return "A hold is placed on a campaign: search by campaign id first."
    if values["recipient"] and not values["channel"]:
        return "A hold names a recipient as one channel's key does: choose the channel too."
    return ""


def _problem(err: Exception) -> str:
    if isinstance(err, InvalidLookup):
        named = "; ".join(f"{v.field}: {v.description}" for v in err.violations)
        return named or err.message
    return str(err)


def _redirect(location: str) -> Response:
    return Response(303, b"", headers=[("Location", location)])


def _single(parsed: dict[str, list[str]]) -> dict[str, str]:
    return {name: values[0] for name, values in parsed.items()}


def _cookie(header: object) -> str:
    for part in str(header).split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return ""


def _file_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _file_chunks(path: Path, size: int = 256 * 1024) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(size):
            yield chunk


def _instant(ms: int) -> str:
    if not ms:
        return ""
    instant = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return instant.isoformat(timespec="seconds").replace("+00:00", "Z")
