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


class Tree:
    """One tree whose subtree hashes are kept as they are computed: the audit
    paths of many of its leaves then cost O(log n) each, not O(n) each as
    `inclusion_proof` does (the definition, for one leaf)."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.leaves = leaf_hashes
        self._roots: dict[tuple[int, int], bytes] = {}

    def root(self, lo: int = 0, hi: int | None = None) -> bytes:
        """The hash of the subtree of leaves lo..hi-1 (all of them by default)."""
        hi = len(self.leaves) if hi is None else hi
        if hi - lo == 0:
            return EMPTY_ROOT
        if hi - lo == 1:
            return self.leaves[lo]
        found = self._roots.get((lo, hi))
        if found is None:
            k = _split(hi - lo)
            found = node_hash(self.root(lo, lo + k), self.root(lo + k, hi))
            self._roots[lo, hi] = found
        return found

    def path(self, index: int) -> list[bytes]:
        """The audit path of leaf `index`, as `inclusion_proof` gives it."""
        lo, hi = 0, len(self.leaves)
        if not lo <= index < hi:
            raise IndexError(f"leaf {index} is not in a tree of {hi}")
        siblings: list[bytes] = []  # from the top down
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                siblings.append(self.root(lo + k, hi))
                hi = lo + k
            else:
                siblings.append(self.root(lo, lo + k))
                lo += k
        return siblings[::-1]

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        """The consistency proof from the tree's first `old` leaves to its first
        `new` (all by default): RFC 6962, section 2.1.2 (empty when old is 0 or new)."""
        new = len(self.leaves) if new is None else new
        if not 0 <= old <= new <= len(self.leaves):
            raise IndexError(f"no consistency proof from {old} to {new} of {len(self.leaves)}")
        if old in (0, new):
            return []
        return self._subproof(old, 0, new, complete=True)

    def _subproof(self, m: int, lo: int, hi: int, *, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self.root(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, complete=complete), self.root(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, complete=False), self.root(lo, lo + k)]


class Frontier:
    """The root of a growing tree, leaf by leaf, in O(log n) memory: the
    perfect subtrees on its right edge (a compact range), folded right to
    left. The root after each append is the Merkle Tree Hash of the leaves so far."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, hash), left to right
        self.size = 0

    def append(self, leaf: bytes) -> None:
        """Add a leaf already hashed with `leaf_hash`."""
        height, digest = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            digest = node_hash(left, digest)
            height += 1
        self._stack.append((height, digest))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = node_hash(left, digest)
        return digest
