"""OTLP/HTTP export of the sidecar's spans, encoded by hand.

The SDK's exporter builds a protobuf object per span, per attribute and per
value before it serialises them: ~40 µs a span of the sidecar's, more than
the span itself. `encode()` writes the same `ExportTraceServiceRequest`
bytes directly (the unit tests parse both and compare them), ~10 µs a span.
It writes what the sidecar's spans hold: string, boolean, integer and float
attributes, a status, a parent, a trace state. A batch with anything else
(events, links, other values) is left to the SDK's encoder, whole.

`HTTPSpanExporter` is the SDK's OTLP/HTTP exporter (its endpoint, headers,
timeout, compression, certificates and retries, all from `OTEL_EXPORTER_*`)
with this encoder in front. It sends through the SDK exporter's HTTP client,
which is not public API: on an SDK without one where expected, every batch
goes through the SDK's own `export` (correct, and dearer). The unit tests
check that the installed SDK has it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import DEFAULT_TRACE_STATE, SpanContext, SpanKind, Status

from msgarchive_server.telemetry.spans import Span

_INT64 = range(-(1 << 63), 1 << 63)
_fixed32 = struct.Struct("<I").pack
_fixed64 = struct.Struct("<Q").pack
_double = struct.Struct("<d").pack
# Span flags (field 16): the spec's "has is_remote" bit, and "is remote" for
# a remote parent.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
_LOCAL_PARENT = b"\x85\x01" + _fixed32(_HAS_IS_REMOTE)
_REMOTE_PARENT = b"\x85\x01" + _fixed32(_HAS_IS_REMOTE | _IS_REMOTE)


class _Unsupported(Exception):
    """Something this encoder does not write: the SDK's encoder takes the batch."""


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [_varint(n) for n in range(1 << 14)]


def varint(n: int) -> bytes:
    """A non-negative integer as a protobuf varint."""
    return _SMALL[n] if n < 16384 else _varint(n)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def _any_value(value: object) -> bytes:
    """An `AnyValue`'s bytes, for what `_attributes` does not write itself
    (bools it always does)."""
    if isinstance(value, str):
        text = value.encode()
        return b"\x0a" + varint(len(text)) + text
    if isinstance(value, int):
        if value not in _INT64:
            raise _Unsupported
        return b"\x18" + varint(value & 0xFFFF_FFFF_FFFF_FFFF)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    raise _Unsupported


# Field 1 of a `KeyValue` (its key) and the tag of field 2 (its value), for
# each key seen: the sidecar's are few.
_KEYS: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    encoded = _delimited(b"\x0a", key.encode()) + b"\x12"
    if len(_KEYS) < 1024:
        _KEYS[key] = encoded
    return encoded


# Whole attributes (tag, key and value) already written, by tag, key and
# value: most of the sidecar's values repeat (a method, a status code, "ok",
# attempt 1). A key whose values keep changing (an id, a size) stops being
# kept once it has `_VALUES_A_KEY` of them; none longer than `_KEPT_BYTES` is
# kept. Strings and integers only: a bool or a float equal to an integer
# must not find the integer's bytes.
_VALUES: dict[tuple[bytes, str], dict[str | int, bytes] | None] = {}
_VALUES_A_KEY = 64
_KEPT_BYTES = 256


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a `KeyValue` in field `tag`.

    The common values are written here, without a call each (a span's
    attributes are most of its encoding); the rest go to `_any_value`."""
    if not attributes:
        return b""
    out = []
    small = _SMALL
    for key, value in attributes.items():
        kind = type(value)
        values = None
        if kind is str or kind is int:
            values = _VALUES.get((tag, key), _NEW)
            if values is not None:
                whole = values.get(value)
                if whole is not None:
                    out.append(whole)
                    continue
        if kind is str:
            text = value.encode()
            size = len(text)
            encoded = b"\x0a" + (small[size] if size < 16384 else _varint(size)) + text
        elif kind is bool:
            encoded = b"\x10\x01" if value else b"\x10\x00"
        elif kind is int and 0 <= value < 16384:
            encoded = b"\x18" + small[value]
        else:
            encoded = _any_value(value)
        size = len(encoded)
        body = (_KEYS.get(key) or _key(key)) + (small[size] if size < 16384 else _varint(size))
        size = len(body) + len(encoded)
        whole = tag + (small[size] if size < 16384 else _varint(size)) + body + encoded
        out.append(whole)
        if values is not None and len(whole) <= _KEPT_BYTES:
            _keep(tag, key, values, value, whole)
    return b"".join(out)


_NEW: dict[str | int, bytes] = {}  # a key not seen yet (never written to)


def _keep(tag: bytes, key: str, values: dict[str | int, bytes], value: Any, whole: bytes) -> None:
    """Keep `whole` as the bytes of `key`'s `value`, while the key's values are few."""
    if values is _NEW:
        if len(_VALUES) >= 1024:
            return
        values = _VALUES[tag, key] = {}
    if len(values) < _VALUES_A_KEY:
        values[value] = whole
    else:
        _VALUES[tag, key] = None  # too many: written each time from now on


def _span(span: ReadableSpan | Span) -> bytes:
    if isinstance(span, Span):  # the sidecar's own: read as it is, no ReadableSpan made
        return _fields(
            span.context,
            span.parent,
            span.name,
            span.kind,
            span.start,
            span.end,
            span.attributes,
            0,
            span.status,
        )
    if span.events or span.links:
        raise _Unsupported
    context = span.context
    assert context is not None
    return _fields(
        context,
        span.parent,
        span.name,
        span.kind,
        span.start_time,
        span.end_time,
        span.attributes,
        span.dropped_attributes,
        span.status,
    )


# A span's name (field 5), for each name seen: the sidecar's are few.
_NAMES: dict[str, bytes] = {}
# Its kind (field 6): OTLP's kinds start at 1 (INTERNAL), the API's at 0.
# By the member's id: an enum's own hash is a call of Python's, and its
# members live as long as the process.
_KINDS = {id(kind): b"\x30" + varint(kind.value + 1) for kind in SpanKind}
_UNSET = b"\x7a\x00"  # a status with neither code nor description (an unset one has none)


def _name(name: str) -> bytes:
    encoded = _delimited(b"\x2a", name.encode())
    if len(_NAMES) < 1024:
        _NAMES[name] = encoded
    return encoded


def _fields(
    context: SpanContext,
    parent: SpanContext | None,
    name: str,
    kind: SpanKind,
    start: int | None,
    end: int | None,
    attributes: Mapping[str, Any] | None,
    dropped: int,
    status: Status,
) -> bytes:
    """A `Span` message's bytes, its fields in number order, as field 2 of
    `ScopeSpans` (the tag and length in front)."""
    parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08"]
    parts.append(context.span_id.to_bytes(8, "big"))
    trace_state = context.trace_state
    if trace_state is not DEFAULT_TRACE_STATE and trace_state:
        state = ",".join(f"{key}={value}" for key, value in trace_state.items())
        parts.append(_delimited(b"\x1a", state.encode()))
    if parent is not None:
        parts += [b"\x22\x08", parent.span_id.to_bytes(8, "big")]
    parts += [_NAMES.get(name) or _name(name), _KINDS[id(kind)]]
    if start:
        parts += [b"\x39", _fixed64(start)]
    if end:
        parts += [b"\x41", _fixed64(end)]
    parts.append(_attributes(b"\x4a", attributes))
    if dropped:
        parts += [b"\x50", varint(dropped)]
    if status.is_unset:
        parts.append(_UNSET)
    else:
        code = status.status_code.value
        described = _delimited(b"\x12", status.description.encode()) if status.description else b""
        parts.append(_delimited(b"\x7a", described + (b"\x18" + varint(code) if code else b"")))
    remote = parent is not None and parent.is_remote
    parts.append(_REMOTE_PARENT if remote else _LOCAL_PARENT)
    body = b"".join(parts)
    size = len(body)
    return b"\x12" + (_SMALL[size] if size < 16384 else _varint(size)) + body


def encode(spans: Sequence[ReadableSpan | Span]) -> bytes | None:
    """An `ExportTraceServiceRequest` of `spans`, as the SDK's encoder would
    write it; None if a span holds something this encoder does not write."""
    # Resource -> scope -> spans, in the order first seen, equal resources as
    # one (as the SDK's encoder groups them). Spans of one provider share
    # their resource object, so it is compared once per batch.
    groups: list[tuple[Any, dict[Any, list[bytes]]]] = []
    seen: dict[int, dict[Any, list[bytes]]] = {}
    # Each (resource, scope) pair's list, by the objects' ids (alive while
    # their spans are): no scope hashed again for each span.
    lists: dict[tuple[int, int], list[bytes]] = {}
    try:
        for span in spans:
            scope: InstrumentationScope | None
            if isinstance(span, Span):
                resource, scope = span.tracer.resource, span.tracer.scope
            else:
                resource, scope = span.resource, span.instrumentation_scope or None
            pair = (id(resource), id(scope))
            encoded = lists.get(pair)
            if encoded is None:
                scopes = seen.get(id(resource))
                if scopes is None:
                    scopes = next((s for r, s in groups if r == resource), None)
                    if scopes is None:
                        scopes = {}
                        groups.append((resource, scopes))
                    seen[id(resource)] = scopes
                encoded = lists[pair] = scopes.setdefault(scope, [])
            encoded.append(_span(span))
        batches = []
        for resource, scopes in groups:
            body = _delimited(b"\x0a", _attributes(b"\x0a", resource.attributes))
            for scope, encoded in scopes.items():
                scoped = _delimited(b"\x0a", _scope(scope))
                scoped += b"".join(encoded)
                if scope is not None and scope.schema_url:
                    scoped += _delimited(b"\x1a", scope.schema_url.encode())
                body += _delimited(b"\x12", scoped)
            if resource.schema_url:
                body += _delimited(b"\x1a", resource.schema_url.encode())
            batches.append(_delimited(b"\x0a", body))
    except (_Unsupported, UnicodeEncodeError):
        return None
    return b"".join(batches)


def _scope(scope: Any) -> bytes:
    """An `InstrumentationScope`'s bytes (empty for none)."""
    if scope is None:
        return b""
    out = _delimited(b"\x0a", scope.name.encode()) if scope.name else b""
    if scope.version:
        out += _delimited(b"\x12", scope.version.encode())
    return out + _attributes(b"\x1a", scope.attributes)


class HTTPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter, encoding with `encode()`.

    It takes the sidecar's own spans as they are (`takes_spans`: a batch
    processor in front of it is handed them without a `ReadableSpan` made
    for each), and the SDK's."""

    takes_spans = True

    def __init__(self) -> None:
        super().__init__()
        # Private to the SDK: where either is not as expected, its own export.
        client = getattr(self, "_client", None)
        known = client is not None and hasattr(self, "_shutdown")
        self._send = getattr(client, "export", None) if known else None

    @property
    def fast(self) -> bool:
        """Whether batches go out encoded by `encode()` (the SDK has the client)."""
        return self._send is not None

    def export(self, spans: Sequence[ReadableSpan | Span]) -> SpanExportResult:
        send = self._send
        # Shut down, the SDK's export refuses at once: nothing to encode.
        body = encode(spans) if send is not None and not self._shutdown else None
        if send is None or body is None:
            readable = [span.readable() if isinstance(span, Span) else span for span in spans]
            return super().export(readable)
        sent = send(body)
        return SpanExportResult.SUCCESS if sent.success else SpanExportResult.FAILURE
