"""Signed notes and checkpoints, in the formats transparency logs share.

A **signed note** (c2sp.org/signed-note, the Go checksum database's
`golang.org/x/mod/sumdb/note`) is UTF-8 text ending in a newline, a blank
line, then signature lines `— <key name> base64(key ID || signature)`. The
key ID is the first four bytes of SHA-256(key name || 0x0A || type || public
key): type 0x01 for an Ed25519 signature over the text, 0x04 for a witness's
timestamped Ed25519 cosignature (c2sp.org/tlog-cosignature), which signs
`cosignature/v1\\ntime <T>\\n` followed by the text and carries T (8 bytes,
big-endian) before its signature. A **verifier key** ("vkey") is
`<name>+<key ID, 8 hex digits>+base64(type || public key)`.

A **checkpoint** (c2sp.org/tlog-checkpoint) is a signed note whose text is
the log's origin, its size in decimal and its root hash in base64, a line each.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
_DASH = "\u2014 "


class NoteError(ValueError):
    """A note, checkpoint or key that is malformed; the message says how."""


def key_id(name: str, kind: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public_key).digest()[:4]


def vkey(name: str, kind: int, public_key: bytes) -> str:
    """The verifier key of `public_key` (raw Ed25519, 32 bytes) under `name`."""
    encoded = base64.b64encode(bytes([kind]) + public_key).decode()
    return f"{name}+{key_id(name, kind, public_key).hex()}+{encoded}"


@dataclass(frozen=True, slots=True)
class Verifier:
    name: str
    kind: int
    public_key: bytes  # raw Ed25519, 32 bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.kind, self.public_key)


def parse_vkey(text: str) -> Verifier:
    """A verifier key as `vkey` writes it; NoteError naming what is wrong."""
    name, plus, rest = text.strip().partition("+")
    hint, plus2, encoded = rest.partition("+")
    if not (plus and plus2 and name):
        raise NoteError(f"{text!r} is not a verifier key (name+keyid+base64)")
    try:
        data = base64.b64decode(encoded, validate=True)
        expected = bytes.fromhex(hint)
    except (binascii.Error, ValueError):
        raise NoteError(f"{text!r}: its key ID or key is not hex and base64") from None
    if len(data) != 33 or data[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError(f"{text!r}: not an Ed25519 key (type 0x01 or 0x04)")
    verifier = Verifier(name, data[0], data[1:])
    if verifier.key_id != expected:
        raise NoteError(f"{text!r}: the key ID does not match the name and key")
    return verifier


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes  # after the key ID (a cosignature's starts with its timestamp)

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True, slots=True)
class Note:
    text: str  # ends in a newline
    signatures: tuple[Signature, ...]

    def __str__(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def sign(text: str, name: str, public_key: bytes, sign_bytes: Callable[[bytes], bytes]) -> Note:
    """`text` signed as a note by an Ed25519 key (`sign_bytes` signs with it)."""
    _check_text(text)
    signature = Signature(name, key_id(name, ED25519, public_key), sign_bytes(text.encode()))
    return Note(text, (signature,))


def parse(data: str) -> Note:
    """A signed note; NoteError if it is not one."""
    if any(ord(c) < 0x20 and c != "\n" for c in data):
        raise NoteError("a note may hold no control characters but newlines")
    text, blank, lines = data.rpartition("\n\n")
    if not blank or not lines.endswith("\n"):
        raise NoteError("a note is text, a blank line, then signature lines")
    text += "\n"
    signatures = []
    for line in lines[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise NoteError(f"not a signature line: {line[:60]!r}")
        name, space, encoded = line[len(_DASH) :].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise NoteError(f"a signature of {name!r} is not base64") from None
        if not space or not name or len(raw) < 5:
            raise NoteError(f"not a signature line: {line[:60]!r}")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def verified(note: Note, verifier: Verifier) -> Signature | None:
    """The signature of `verifier`'s key on `note` if there is one and it
    verifies; None if the note has none of that key (name and key ID); NoteError
    if it has one that does not verify."""
    key = Ed25519PublicKey.from_public_bytes(verifier.public_key)
    for signature in note.signatures:
        if signature.name != verifier.name or signature.key_id != verifier.key_id:
            continue  # another key's: ignored, as the format says
        if verifier.kind == COSIGNATURE_V1:
            if len(signature.signature) != 8 + 64:
                raise NoteError(f"the cosignature of {verifier.name} is not 72 bytes")
            (timestamp,) = struct.unpack(">Q", signature.signature[:8])
            message, raw = cosigned_message(note.text, timestamp), signature.signature[8:]
        else:
            message, raw = note.text.encode(), signature.signature
        try:
            key.verify(raw, message)
        except InvalidSignature:
            raise NoteError(f"the signature of {verifier.name} does not verify") from None
        return signature
    return None


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosignature_time(signature: Signature) -> int:
    """The POSIX time a cosignature states."""
    (timestamp,) = struct.unpack(">Q", signature.signature[:8])
    return int(timestamp)


# --- checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def checkpoint_of(note: Note) -> Checkpoint:
    """The checkpoint a note's text states; NoteError if it is not one."""
    lines = note.text.split("\n")
    if len(lines) < 4 or not lines[0]:
        raise NoteError("a checkpoint's text is its origin, size and root hash, a line each")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (size.startswith("0") and size != "0"):
        raise NoteError(f"a checkpoint's size is a decimal number, not {size!r}")
    try:
        digest = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise NoteError("a checkpoint's root hash is not base64") from None
    if len(digest) != 32:
        raise NoteError("a checkpoint's root hash is not 32 bytes")
    return Checkpoint(origin, int(size), digest)


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text ends in a newline and has no blank line or control")
