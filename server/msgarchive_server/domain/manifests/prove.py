"""`msgarchive prove KEY`: the proof that one copy is in a signed manifest.

The copy's manifest is found from its write time: the manifests of its hour
and the next (a late entry goes to the next hour), every part of them, of
every writer. The proof
holds the copy's entry (the Merkle leaf, as canonical JSON), its place and
audit path in the hour's tree, and the hour's signed head as stored; anyone
with the public key can check it (`msgarchive check-proof`) without seeing
any other entry.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from msgarchive_server.domain.manifests import merkle, parquet
from msgarchive_server.domain.manifests.entries import ManifestEntry
from msgarchive_server.domain.manifests.journal import hour_of
from msgarchive_server.domain.manifests.sealer import MANIFEST_ROOT, hour_keys, part_name
from msgarchive_server.stores import NoSuchObject, Store, listed

PROOF_FORMAT = "msgarchive.inclusion-proof.v1"


def prove(
    store: Store,
    key: str,
    manifest_keys: Iterable[str] | None = None,
    read: Callable[[str], bytes] | None = None,
) -> dict[str, Any] | None:
    """The inclusion proof of the copy at `key`, or None if no manifest lists it.

    `manifest_keys`: the store's manifest keys when the caller has listed them
    already (a search's mirror); `read`: how a manifest's or head's bytes are
    read (default: from the store)."""
    try:
        written = store.get(key).stored_at_ms
    except NoSuchObject:
        return None
    root = f"{store.prefix}{MANIFEST_ROOT}/"
    if manifest_keys is None:
        manifest_keys = (item.key for item in listed(store, root))
    read = read or (lambda name: store.get(name).body)
    # writer -> hour folder -> the parts sealed there
    parts: dict[str, dict[str, set[int]]] = {}
    for manifest_key in manifest_keys:
        writer, _, rest = manifest_key[len(root) :].partition("/")
        folder, _, name = rest.rpartition("/")
        named = part_name(name)
        if named is not None and named[0] == "manifest":
            parts.setdefault(writer, {}).setdefault(folder, set()).add(named[1])
    hour = hour_of(written)
    for writer in sorted(parts):
        for candidate in (
            hour,
            hour + datetime.timedelta(hours=1),
            hour - datetime.timedelta(hours=1),
        ):
            for part in sorted(parts[writer].get(f"{candidate:%Y/%m/%d/%H}", ())):
                manifest_key, head_key = hour_keys(store.prefix, writer, candidate, part)
                try:
                    entries = _entries(read(manifest_key))
                    head = read(head_key)
                except NoSuchObject:
                    continue
                for index, entry in enumerate(entries):
                    if entry.key == key:
                        return next(proofs_in(entries, head_key, head, [index]))[1]
    return None


@functools.lru_cache(maxsize=32)
def _entries(manifest: bytes) -> list[ManifestEntry]:
    """A manifest's entries (the last few decoded kept: a reviewer reads one
    hour's copies one after another)."""
    return parquet.decode(manifest)


def proofs_in(
    entries: list[ManifestEntry], head_key: str, head: bytes, indexes: Iterable[int]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, inclusion proof) of the entries at `indexes` of one manifest part,
    in that order, whose signed head is `head` (stored at `head_key`): the tree
    is built once."""
    tree = merkle.Tree([merkle.leaf_hash(e.leaf()) for e in entries])
    signed = json.loads(head)
    for index in indexes:
        yield index, proof_of(tree, index, entries[index].leaf(), head_key, signed)


def proof_of(
    tree: merkle.Tree, index: int, leaf: bytes, head_key: str, head: dict[str, Any]
) -> dict[str, Any]:
    """The inclusion proof of leaf `index` (its bytes `leaf`) of a part's `tree`."""
    return {
        "format": PROOF_FORMAT,
        "leaf": leaf.decode(),
        "index": index,
        "size": len(tree.leaves),
        "path": [h.hex() for h in tree.path(index)],
        "head_key": head_key,
        "head": head,
    }
