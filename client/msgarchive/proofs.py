"""Checking a copy's inclusion proof with nothing but the sidecar's public key.

`msgarchive prove KEY` prints a proof: the copy's manifest entry (the leaf),
its place in the hour's Merkle tree (RFC 6962) with the audit path, and the
hour's signed head. Anyone can check it here, or with `msgarchive
check-proof`: the path leads from the leaf to the root the head states, and
the head's Ed25519 signature verifies under the public key. This file is
written apart from the sidecar's tree builder and shares no code with it, so
a bug in one is not repeated in the other.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from hashlib import sha256
from typing import Any


def _leaf(data: bytes) -> bytes:
    return sha256(bytes([0]) + data).digest()


def _interior(left: bytes, right: bytes) -> bytes:
    return sha256(bytes([1]) + left + right).digest()


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root that an audit path leads to from `leaf` (raw, not yet hashed) at
    0-based `index` in a tree of `size` leaves; None if the path cannot be one.

    The iterative form of RFC 9162, section 2.1.3.2.
    """
    if not 0 <= index < size:
        return None
    position, last = index, size - 1
    digest = _leaf(leaf)
    for sibling in path:
        if last == 0:
            return None  # more hashes than the tree has levels
        if position % 2 == 1 or position == last:
            digest = _interior(sibling, digest)
            if position % 2 == 0:  # a right edge: climb until a left child
                while position % 2 == 0 and position != 0:
                    position //= 2
                    last //= 2
        else:
            digest = _interior(digest, sibling)
        position //= 2
        last //= 2
    return digest if last == 0 else None


def included(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """True when the audit path proves `leaf` is leaf `index` of the tree with `root`."""
    found = root_from_path(leaf, index, size, path)
    return found is not None and found == root


def _canonical(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def check_proof(proof: dict[str, Any], public_key_pem: bytes) -> str:
    """Check an inclusion proof from `msgarchive prove`; raises ProofError saying
    what fails, else returns the key of the copy it proves.

    Needs the `cryptography` package (`pip install 'msgarchive[proofs]'`).
    """
    return ProofChecker(public_key_pem).check(proof)


class ProofChecker:
    """Checks many proofs under one public key: the key is loaded once, and a
    head's signature checked once however many proofs lead to it (the proofs
    of one hour's copies share its head)."""

    def __init__(self, public_key_pem: bytes) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        public_key = serialization.load_pem_public_key(public_key_pem)
        if not isinstance(public_key, Ed25519PublicKey):
            raise ProofError("the public key is not an Ed25519 key")
        self.public_key = public_key
        self._verified: set[tuple[bytes, bytes]] = set()  # (signed bytes, signature)

    def check(self, proof: dict[str, Any]) -> str:
        """The key of the copy `proof` proves; ProofError saying what fails."""
        from cryptography.exceptions import InvalidSignature

        try:
            head = dict(proof["head"])
            signature = base64.b64decode(head.pop("signature"), validate=True)
            leaf, index = str(proof["leaf"]).encode(), int(proof["index"])
            size = int(proof["size"])
            path = [bytes.fromhex(h) for h in proof["path"]]
            root = bytes.fromhex(head["merkle_root"])
        except (KeyError, TypeError, ValueError) as err:
            raise ProofError(f"the proof is malformed: {err}") from None
        signed = _canonical(head)
        if (signed, signature) not in self._verified:
            try:
                self.public_key.verify(signature, signed)
            except InvalidSignature:
                raise ProofError(
                    "the head's signature does not verify under the public key"
                ) from None
            self._verified.add((signed, signature))
        if head.get("count") != size:
            raise ProofError("the proof's tree size is not the head's count")
        if not included(leaf, index, size, path, root):
            raise ProofError("the audit path does not lead from the entry to the head's root")
        key: str = json.loads(leaf)["key"]
        return key


class ProofError(Exception):
    """An inclusion proof that does not hold; the message says which check failed."""
