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

_INT64 = range(-(1 << 63), 1 << 63)
_fixed32 = struct.Struct("<I").pack
_fixed64 = struct.Struct("<Q").pack
_double = struct.Struct("<d").pack
# Span flags: the spec's "has is_remote" bit, and "is remote" for a remote parent.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200


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
    """An `AnyValue`'s bytes."""
    if value is True:
        return b"\x10\x01"
    if value is False:
        return b"\x10\x00"
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


# Field 1 of a `KeyValue` (its key) for each key seen: the sidecar's are few.
_KEYS: dict[str, bytes] = {}


def _key(key: str) -> bytes:
    encoded = _delimited(b"\x0a", key.encode())
    if len(_KEYS) < 1024:
        _KEYS[key] = encoded
    return encoded


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a `KeyValue` in field `tag`."""
    if not attributes:
        return b""
    out = []
    for key, value in attributes.items():
        encoded = _any_value(value)
        body = (_KEYS.get(key) or _key(key)) + b"\x12" + varint(len(encoded)) + encoded
        out.append(tag + varint(len(body)) + body)
    return b"".join(out)


def _span(span: ReadableSpan) -> bytes:
    if span.events or span.links:
        raise _Unsupported
    context = span.context
    parent = span.parent
    assert context is not None
    parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big")]
    parts += [b"\x12\x08", context.span_id.to_bytes(8, "big")]
    if context.trace_state:
        state = ",".join(f"{key}={value}" for key, value in context.trace_state.items())
        parts.append(_delimited(b"\x1a", state.encode()))
    if parent is not None:
        parts += [b"\x22\x08", parent.span_id.to_bytes(8, "big")]
    parts.append(_delimited(b"\x2a", span.name.encode()))
    parts += [b"\x30", varint(span.kind.value + 1)]  # OTLP's kinds start at 1 (INTERNAL)
    if span.start_time:
        parts += [b"\x39", _fixed64(span.start_time)]
    if span.end_time:
        parts += [b"\x41", _fixed64(span.end_time)]
    parts.append(_attributes(b"\x4a", span.attributes))
    if span.dropped_attributes:
        parts += [b"\x50", varint(span.dropped_attributes)]
    status = span.status
    code = status.status_code.value
    described = _delimited(b"\x12", status.description.encode()) if status.description else b""
    parts.append(_delimited(b"\x7a", described + (b"\x18" + varint(code) if code else b"")))
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
    parts += [b"\x85\x01", _fixed32(flags)]
    return b"".join(parts)


def encode(spans: Sequence[ReadableSpan]) -> bytes | None:
    """An `ExportTraceServiceRequest` of `spans`, as the SDK's encoder would
    write it; None if a span holds something this encoder does not write."""
    # Resource -> scope -> spans, in the order first seen, equal resources as
    # one (as the SDK's encoder groups them). Spans of one provider share
    # their resource object, so it is compared once per batch.
    groups: list[tuple[Any, dict[Any, list[bytes]]]] = []
    seen: dict[int, dict[Any, list[bytes]]] = {}
    try:
        for span in spans:
            resource = span.resource
            scopes = seen.get(id(resource))
            if scopes is None:
                scopes = next((s for r, s in groups if r == resource), None)
                if scopes is None:
                    scopes = {}
                    groups.append((resource, scopes))
                seen[id(resource)] = scopes
            scopes.setdefault(span.instrumentation_scope or None, []).append(_span(span))
        batches = []
        for resource, scopes in groups:
            body = _delimited(b"\x0a", _attributes(b"\x0a", resource.attributes))
            for scope, encoded in scopes.items():
                scoped = _delimited(b"\x0a", _scope(scope))
                scoped += b"".join(_delimited(b"\x12", one) for one in encoded)
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
    """The SDK's OTLP/HTTP span exporter, encoding with `encode()`."""

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

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        send = self._send
        body = encode(spans) if send is not None else None
        if send is None or body is None or self._shutdown:
            return super().export(spans)
        sent = send(body)
        return SpanExportResult.SUCCESS if sent.success else SpanExportResult.FAILURE
