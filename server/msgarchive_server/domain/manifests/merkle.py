"""RFC 6962 Merkle tree hashing (Certificate Transparency), for a manifest's entries.

A leaf is hashed as SHA-256(0x00 || leaf), an interior node as
SHA-256(0x01 || left || right), and a tree of n > 1 leaves splits at the
largest power of two below n (RFC 6962, section 2.1). An inclusion proof is
the audit path of section 2.1.1: enough sibling hashes to recompute the root
from one leaf, revealing nothing of the other leaves but hashes.

This is the writer's side. The checker in `msgarchive.proofs` (the client
package, for third parties) is written apart and shares no code with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of leaves already hashed with `leaf_hash`."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(root(leaf_hashes[:k]), root(leaf_hashes[k:]))


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf `index` (0-based) in the tree of `leaf_hashes`."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise IndexError(f"leaf {index} is not in a tree of {n}")
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*inclusion_proof(index, leaf_hashes[:k]), root(leaf_hashes[k:])]
    return [*inclusion_proof(index - k, leaf_hashes[k:]), root(leaf_hashes[:k])]
