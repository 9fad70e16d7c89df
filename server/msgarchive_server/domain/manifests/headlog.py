"""One append-only Merkle log per writer, over its signed heads.

Leaf i of a writer's log is the i-th head it sealed, its stored bytes (RFC
6962 leaf hash). Heads are sealed one after another and each links to the one
before, so the log holds the chain in order, and any two checkpoints of it
have an RFC 6962 consistency proof: the first's tree is the start of the
second's. Sealing a head appends it and writes a checkpoint beside the head
(`checkpoint[.N].txt`, a C2SP tlog-checkpoint signed with the manifest key):

    <bucket>/<prefix>_msgarchive/manifests/<writer>     the origin
    <size>                                               heads so far
    <root hash, base64>

The writer keeps the log's leaves in its journal directory (`log.txt`, a line
a head: its key and leaf hash), to make proofs without reading every head
back. A log lost with its journal is rebuilt from the store by following the
chain of heads back from the newest.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from msgarchive_server.domain.manifests import merkle
from msgarchive_server.stores import NoSuchObject, Store

CHECKPOINT_TYPE = "text/plain; charset=utf-8"


def checkpoint_key(head_key: str) -> str:
    """Where the checkpoint written with a head goes: beside it."""
    folder, _, name = head_key.rpartition("/")
    return f"{folder}/{name.replace('head', 'checkpoint', 1).removesuffix('.json')}.txt"


class HeadLog:
    """A writer's log, as its leaves in `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: list[str] = []
        self.leaves: list[bytes] = []
        self.frontier = merkle.Frontier()
        if path.exists():
            for line in path.read_text().splitlines():
                key, _, leaf = line.partition(" ")
                self.keys.append(key)
                self.leaves.append(bytes.fromhex(leaf))
                self.frontier.append(self.leaves[-1])

    @property
    def size(self) -> int:
        return len(self.leaves)

    def append(self, head_key: str, head: bytes) -> int:
        """Add a head (once: the same head again, after a crash, is not added
        twice); the log's size after it."""
        if self.keys and self.keys[-1] == head_key:
            return self.size
        leaf = merkle.leaf_hash(head)
        with self.path.open("a") as file:
            file.write(f"{head_key} {leaf.hex()}\n")
            file.flush()
            os.fsync(file.fileno())
        self.keys.append(head_key)
        self.leaves.append(leaf)
        self.frontier.append(leaf)
        return self.size

    def root(self) -> bytes:
        return self.frontier.root()

    def tree(self) -> merkle.Tree:
        return merkle.Tree(self.leaves)

    def rebuild(self, store: Store, newest: str) -> None:
        """Fill a missing log from the store: the chain of heads back from `newest`."""
        chain: list[tuple[str, bytes]] = []
        key: str | None = newest
        while key is not None:
            try:
                stored = store.get(key).body
            except NoSuchObject:
                break  # the chain began after a head that is gone: the log starts here
            chain.append((key, stored))
            previous = json.loads(stored).get("previous")
            key = previous.get("key") if previous else None
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(f"{k} {merkle.leaf_hash(b).hex()}\n" for k, b in reversed(chain)))
        os.replace(tmp, self.path)
        self.__init__(self.path)  # type: ignore[misc]
