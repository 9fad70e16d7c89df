"""Reading copies back: view (after the reference view API), get, and list.

Plain Python, no gRPC. Every copy returned has been checked: it decompresses,
parses as a JSON object, and its `message_id` matches its key; otherwise the
read fails with `CopyDamaged`, never a garbled answer.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from msgarchive import channels
from msgarchive.channels import Channel
from msgarchive.keys import (
    KeyParts,
    archive_key,
    key_prefix,
    parse_key,
    user_hash,
)
from msgarchive.rules import CAMPAIGN_ID_RULE, FieldViolation, is_campaign_id
from msgarchive_server.domain.errors import (
    CopyDamaged,
    CopyNotFound,
    InvalidLookup,
    StoreUnavailable,
    WrongAccount,
)
from msgarchive_server.domain.payloads import decompress
from msgarchive_server.stores import (
    ListPage,
    NoSuchObject,
    ObjectSummary,
    Store,
    StoredObject,
    StoreError,
)

# event name -> (channel, the platforms that agree with it, as the view API
# writes them: upper case), in the reference's order: the events of the
# channels without platforms, then those of the channels with them.
SUPPORTED_EVENTS: dict[str, tuple[Channel, frozenset[str]]] = {
    event: (channel, platforms)
    for channel in sorted(channels.CHANNELS, key=lambda c: bool(c.platforms))
    for event, platforms in channel.events.items()
}
MESSAGE_ID = re.compile(r"[0-9a-f]{64}")
YYYYMM = re.compile(r"[0-9]{4}(0[1-9]|1[0-2])")

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# NEWEST_FIRST sorts a whole prefix; beyond this many copies it is refused.
MAX_SORTED = 10_000
# A view reads at most this many of the recipient's copies, nearest first by
# the store's write time, and judges them by their own sent_at (write times
# are only a guide: S3 keeps whole seconds, and clocks differ).
MAX_CANDIDATES = 20
# ... of the asked platform (push); and it reads at most this many in all.
MAX_VIEW_READS = 200
# A batch dated late in a month may be sent early in the next: a view also
# looks in the previous month's folder when the send is this close to its start.
PREVIOUS_MONTH_WINDOW_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Copy:
    """A copy read back and checked."""

    key: str
    parts: KeyParts
    bucket: str
    stored: StoredObject
    json_text: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ViewQuery:
    user_id: str
    campaign_channel: str
    campaign_id: str
    sent_epoch_time: int
    event_name: str
    platform: str = ""
    delivery_type: str = ""
    campaign_type: str = ""
    event_id: str = ""


@dataclass(frozen=True, slots=True)
class ListQuery:
    channel: str  # push, email, sms, whatsapp
    yyyymm: str
    campaign_id: str = ""
    recipient: str = ""
    page_size: int = 0
    page_token: str = ""
    newest_first: bool = False
    stored_after_ms: int = 0
    stored_before_ms: int = 0


@dataclass(slots=True)
class ListResult:
    items: list[ObjectSummary] = field(default_factory=list)
    next_page_token: str = ""


def recipient_hash(channel: Channel, recipient: str, field_name: str) -> str:
    """The user hash of a recipient as a lookup names it, normalized per channel."""
    identity = channel.lookup_identity(recipient)
    if identity is None:
        raise InvalidLookup([FieldViolation(field_name, channel.lookup_rule)])
    return user_hash(identity)


class Reader:
    """Reads one store's copies (one account's, when accounts are configured).

    Every method raises a `DomainError`: `InvalidLookup`, `CopyNotFound`,
    `CopyDamaged`, `WrongAccount`, or `StoreUnavailable` when the store fails.
    """

    def __init__(self, store: Store, tolerance_seconds: float = 300.0) -> None:
        self.store = store
        self.tolerance_ms = int(tolerance_seconds * 1000)
        self.root = key_prefix(store.prefix)

    # --- get ---------------------------------------------------------------

    def get(self, key: str) -> Copy:
        """The copy at a full key. Raises WrongAccount for keys of another prefix."""
        if not key.startswith(self.root):
            raise WrongAccount("the key is outside this account's copies")
        parts = parse_key(key)
        if parts is None or parts.prefix != self.store.prefix:
            raise InvalidLookup(
                [FieldViolation("key", "is not a copy's key (sent_messages/.../<id>.json.lz4)")]
            )
        try:
            stored = self.store.get(key)
        except NoSuchObject:
            raise CopyNotFound from None
        except StoreError as err:
            raise StoreUnavailable(err.code) from None
        return self._checked(parts, stored)

    def get_by_parts(
        self, channel: str, yyyymm: str, campaign_id: str, recipient: str, message_id: str
    ) -> Copy:
        found: list[FieldViolation] = []
        if channel not in channels.NAMES:
            found.append(FieldViolation("parts.channel", "is required"))
        if not YYYYMM.fullmatch(yyyymm):
            found.append(FieldViolation("parts.yyyymm", "must be a month written yyyymm"))
        if not is_campaign_id(campaign_id):
            found.append(FieldViolation("parts.campaign_id", CAMPAIGN_ID_RULE))
        if not recipient.strip():
            found.append(FieldViolation("parts.recipient", "is required"))
        if not MESSAGE_ID.fullmatch(message_id):
            found.append(FieldViolation("parts.message_id", "must be 64 lowercase hex digits"))
        if found:
            raise InvalidLookup(found)
        hashed = recipient_hash(channels.named(channel), recipient, "parts.recipient")
        return self.get(
            archive_key(channel, yyyymm, campaign_id, hashed, message_id, self.store.prefix)
        )

    # --- view --------------------------------------------------------------

    def view(self, query: ViewQuery) -> Copy:
        """The recipient's copy whose sent_at is nearest the send time, within
        tolerance; for push, a copy of the asked platform only."""
        channel, hashed = _check_view(query)
        sent_ms = query.sent_epoch_time * 1000
        candidates: list[ObjectSummary] = []
        for yyyymm in self._months_around(query.sent_epoch_time):
            prefix = key_prefix(self.store.prefix, channel.name, yyyymm, query.campaign_id, hashed)
            candidates += self._list(prefix, limit=MAX_SORTED).items
        candidates.sort(key=lambda c: abs(c.stored_at_ms - sent_ms))
        # A push folder named by a customer identity holds the copies of all the
        # customer's devices: only the asked platform's are answers.
        platform = query.platform.strip().upper() if channel.platforms else ""
        best: tuple[int, Copy] | None = None
        examined = 0
        for summary in candidates[:MAX_VIEW_READS]:
            if examined == MAX_CANDIDATES:
                break
            copy = self.get(summary.key)
            if platform and str(copy.fields.get("platform", "")).upper() != platform:
                continue
            examined += 1
            sent_at = copy.fields.get("sent_at")
            if not isinstance(sent_at, int):
                raise CopyDamaged(summary.key, "sent_at is not a number")
            distance = abs(sent_at - sent_ms)
            if distance <= self.tolerance_ms and (best is None or distance < best[0]):
                best = (distance, copy)
        if best is None:
            raise CopyNotFound
        return best[1]

    def _months_around(self, epoch_seconds: int) -> list[str]:
        tolerance = self.tolerance_ms // 1000
        instants = (
            epoch_seconds - max(tolerance, PREVIOUS_MONTH_WINDOW_S),
            epoch_seconds,
            epoch_seconds + tolerance,
        )
        months = [_yyyymm(t) for t in instants]
        return sorted(set(months))

    # --- list --------------------------------------------------------------

    def list(self, query: ListQuery) -> ListResult:
        prefix = self._list_prefix(query)
        size = query.page_size or DEFAULT_PAGE_SIZE
        fingerprint = _fingerprint(prefix, query)
        cursor = _read_token(query.page_token, fingerprint) if query.page_token else None
        if query.newest_first:
            return self._list_newest(prefix, query, size, fingerprint, cursor)
        return self._list_by_key(prefix, query, size, fingerprint, cursor)

    def _list_prefix(self, query: ListQuery) -> str:
        found: list[FieldViolation] = []
        if query.channel not in channels.NAMES:
            found.append(FieldViolation("channel", "is required"))
        if not YYYYMM.fullmatch(query.yyyymm):
            found.append(FieldViolation("yyyymm", "must be a month written yyyymm"))
        if query.campaign_id and not is_campaign_id(query.campaign_id):
            found.append(FieldViolation("campaign_id", CAMPAIGN_ID_RULE))
        if query.recipient and not query.campaign_id:
            found.append(FieldViolation("recipient", "needs campaign_id"))
        if not 0 <= query.page_size <= MAX_PAGE_SIZE:
            found.append(FieldViolation("page_size", f"must be 0 to {MAX_PAGE_SIZE}"))
        if query.stored_before_ms and query.stored_after_ms >= query.stored_before_ms:
            found.append(FieldViolation("stored_before_ms", "must be after stored_after_ms"))
        if found:
            raise InvalidLookup(found)
        hashed = (
            recipient_hash(channels.named(query.channel), query.recipient, "recipient")
            if query.recipient
            else None
        )
        return key_prefix(
            self.store.prefix, query.channel, query.yyyymm, query.campaign_id or None, hashed
        )

    def _list_by_key(
        self, prefix: str, query: ListQuery, size: int, fingerprint: str, cursor: Any
    ) -> ListResult:
        result = ListResult()
        if cursor is not None and not (isinstance(cursor, str) and cursor.startswith(prefix)):
            raise _bad_token()
        after = str(cursor or "")
        while True:
            page = self._list(prefix, start_after=after, limit=MAX_PAGE_SIZE)
            for index, item in enumerate(page.items):
                if not _in_range(item, query):
                    continue
                result.items.append(item)
                if len(result.items) == size:
                    if page.truncated or index < len(page.items) - 1:
                        result.next_page_token = _make_token(fingerprint, item.key)
                    return result
            if not page.truncated or not page.items:
                return result
            after = page.items[-1].key

    def _list_newest(
        self, prefix: str, query: ListQuery, size: int, fingerprint: str, cursor: Any
    ) -> ListResult:
        everything: list[ObjectSummary] = []
        after = ""
        while True:
            page = self._list(prefix, start_after=after, limit=MAX_PAGE_SIZE)
            everything += [item for item in page.items if _in_range(item, query)]
            if len(everything) > MAX_SORTED:
                raise InvalidLookup(
                    [
                        FieldViolation(
                            "order",
                            f"NEWEST_FIRST sorts at most {MAX_SORTED} copies: "
                            "narrow the prefix or the time range, or list by key",
                        )
                    ]
                )
            if not page.truncated or not page.items:
                break
            after = page.items[-1].key
        everything.sort(key=lambda item: (-item.stored_at_ms, item.key))
        if cursor is not None:
            if not (
                isinstance(cursor, list)
                and len(cursor) == 2
                and type(cursor[0]) is int
                and isinstance(cursor[1], str)
            ):
                raise _bad_token()
            stored_at, key = cursor
            everything = [i for i in everything if (-i.stored_at_ms, i.key) > (-stored_at, key)]
        result = ListResult(items=everything[:size])
        if len(everything) > size:
            last = result.items[-1]
            result.next_page_token = _make_token(fingerprint, [last.stored_at_ms, last.key])
        return result

    # --- the store and checking ----------------------------------------------

    def _list(self, prefix: str, start_after: str = "", limit: int = 1000) -> ListPage:
        try:
            return self.store.list(prefix, start_after=start_after, limit=limit)
        except StoreError as err:
            raise StoreUnavailable(err.code) from None

    def _checked(self, parts: KeyParts, stored: StoredObject) -> Copy:
        key = parts.key
        try:
            text = decompress(stored.body).decode()
        except (RuntimeError, UnicodeDecodeError):
            raise CopyDamaged(key, "it does not decompress as LZ4 JSON text") from None
        try:
            fields = json.loads(text)
        except ValueError:
            raise CopyDamaged(key, "it is not valid JSON") from None
        if not isinstance(fields, dict):
            raise CopyDamaged(key, "it is not a JSON object")
        if fields.get("message_id") != parts.message_id:
            raise CopyDamaged(key, "its message_id does not match its key")
        return Copy(key, parts, self.store.bucket, stored, text, fields)


def _check_view(query: ViewQuery) -> tuple[Channel, str]:
    """The channel and recipient hash of a valid view query."""
    if query.event_name not in SUPPORTED_EVENTS:
        supported = ", ".join(f"'{e}'" for e in SUPPORTED_EVENTS)
        raise InvalidLookup(
            [FieldViolation("event_name", "is not a supported event")],
            "This event is unsupported to view message copy. "
            f"The supported events are [{supported}]",
        )
    found: list[FieldViolation] = []
    platform = query.platform.strip().upper()
    channel, platforms = SUPPORTED_EVENTS[query.event_name]
    if query.campaign_channel.strip().lower() != channel.name:
        found.append(
            FieldViolation(
                "campaign_channel",
                f"must be {channel.api_name} for the event {query.event_name!r}",
            )
        )
    if platform not in platforms:
        allowed = " or ".join(sorted(p for p in platforms if p)) or "empty"
        found.append(
            FieldViolation("platform", f"must be {allowed} for the event {query.event_name!r}")
        )
    if not query.user_id.strip():
        found.append(FieldViolation("user_id", "is required"))
    if not is_campaign_id(query.campaign_id):
        found.append(FieldViolation("campaign_id", CAMPAIGN_ID_RULE))
    if query.sent_epoch_time <= 0:
        found.append(FieldViolation("sent_epoch_time", "is required: epoch seconds, positive"))
    if found:
        raise InvalidLookup(found)
    return channel, recipient_hash(channel, query.user_id, "user_id")


def _yyyymm(epoch_seconds: int) -> str:
    return datetime.datetime.fromtimestamp(epoch_seconds, datetime.UTC).strftime("%Y%m")


def _in_range(item: ObjectSummary, query: ListQuery) -> bool:
    if query.stored_after_ms and item.stored_at_ms < query.stored_after_ms:
        return False
    return not (query.stored_before_ms and item.stored_at_ms >= query.stored_before_ms)


def _fingerprint(prefix: str, query: ListQuery) -> str:
    basis = f"{prefix}|{query.newest_first}|{query.stored_after_ms}|{query.stored_before_ms}"
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def _make_token(fingerprint: str, cursor: Any) -> str:
    raw = json.dumps({"q": fingerprint, "c": cursor}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, fingerprint: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        ok = isinstance(data, dict) and data.get("q") == fingerprint and data.get("c") is not None
    except ValueError:
        ok = False
    if not ok:
        raise _bad_token()
    return data["c"]


def _bad_token() -> InvalidLookup:
    """A page token this query did not hand out (another query's, or tampered with)."""
    return InvalidLookup([FieldViolation("page_token", "does not belong to this query")])


def sent_time(sent_at_ms: int) -> str:
    """RFC 3339 in UTC, milliseconds kept."""
    instant = datetime.datetime.fromtimestamp(sent_at_ms / 1000, datetime.UTC)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")
