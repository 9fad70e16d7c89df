"""The archived copy: one JSON object per message, compressed as an LZ4 frame.

Field names and order follow the contract (the README's "The archived copy"). Ids that are canonical
decimal integers become JSON numbers, as in the reference examples; optional
fields that are absent are left out, never written as null. The push payload
is spliced in as the sender's own JSON text, so its numbers are kept exactly
as written (no float round trip).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring

import lz4.frame

from msgarchive.channels import Addressed, CopyFields, JSONValue, RawJSON, user_id

FORMAT_VERSION = 1

# A canonical decimal integer: it survives a round trip through a JSON number.
_INTEGER = re.compile(r"0|[1-9][0-9]*")


def id_value(value: str) -> int | str:
    """An id as the copy holds it: a number when it is all digits, else a string."""
    return int(value) if _INTEGER.fullmatch(value) else value


def render(message: Addressed, *, message_id: str, sent_at_ms: int) -> bytes:
    """The UTF-8 JSON copy of a valid request."""
    request = message.request
    fields: CopyFields = [("version", FORMAT_VERSION), *message.channel.copy_fields(message)]
    fields += [
        ("sent_at", sent_at_ms),
        ("message_id", message_id),
        ("campaign_id", id_value(request.campaign_id)),
        ("campaign_name", request.campaign_name),
        ("user_id", id_value(user_id(request))),
    ]
    if request.journey_id:
        fields += [
            ("journey_id", id_value(request.journey_id)),
            ("journey_node_id", id_value(request.journey_node_id)),
            ("journey_name", request.journey_name),
        ]
    return _json_object(fields).encode()


# One encoder for every copy: json.dumps with any non-default argument builds a
# new JSONEncoder per call.
_encode: Callable[[object], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":")
).encode
# What that encoder writes for a string (C's, where there is one).
_encode_str: Callable[[str], str] = encode_basestring


def _json_value(value: JSONValue) -> str:
    """One field's JSON text. Strings and integers (nearly every field) are
    written directly, as the encoder writes them: its `encode` takes several
    times as long, for an integer a whole run of its generic machinery."""
    if type(value) is str:
        return _encode_str(value)
    if type(value) is int:  # not a bool (there are none): its repr is the JSON
        return int.__repr__(value)
    if type(value) is RawJSON:
        return value.text
    return _encode(value)


def _json_object(fields: CopyFields) -> str:
    return "{" + ",".join(f'"{name}":{_json_value(value)}' for name, value in fields) + "}"


def compress(body: bytes) -> bytes:
    """An LZ4 frame with its content size and content checksum, as `lz4 -d` reads it."""
    data: bytes = lz4.frame.compress(body, store_size=True, content_checksum=True)
    return data


def decompress(blob: bytes) -> bytes:
    """The JSON body of an LZ4-framed copy."""
    data: bytes = lz4.frame.decompress(blob)
    return data
