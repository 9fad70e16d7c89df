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
import json
from typing import Any

from msgarchive_server.domain.manifests import merkle, parquet
from msgarchive_server.domain.manifests.entries import ManifestEntry
from msgarchive_server.domain.manifests.journal import hour_of
from msgarchive_server.domain.manifests.sealer import MANIFEST_ROOT, hour_keys, part_name
from msgarchive_server.stores import NoSuchObject, Store, listed

PROOF_FORMAT = "msgarchive.inclusion-proof.v1"


def prove(store: Store, key: str) -> dict[str, Any] | None:
    """The inclusion proof of the copy at `key`, or None if no manifest lists it."""
    try:
        written = store.get(key).stored_at_ms
    except NoSuchObject:
        return None
    root = f"{store.prefix}{MANIFEST_ROOT}/"
    # writer -> hour folder -> the parts sealed there
    parts: dict[str, dict[str, set[int]]] = {}
    for item in listed(store, root):
        writer, _, rest = item.key[len(root) :].partition("/")
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
                    entries = parquet.decode(store.get(manifest_key).body)
                    head = store.get(head_key).body
                except NoSuchObject:
                    continue
                for index, entry in enumerate(entries):
                    if entry.key == key:
                        return proofs_in(entries, head_key, head, [index])[index]
    return None


def proofs_in(
    entries: list[ManifestEntry], head_key: str, head: bytes, indexes: list[int]
) -> dict[int, dict[str, Any]]:
    """The inclusion proofs of the entries at `indexes` of one manifest part,
    whose signed head is `head` (stored at `head_key`): the tree is built once."""
    tree = merkle.Tree([merkle.leaf_hash(e.leaf()) for e in entries])
    signed = json.loads(head)
    return {
        index: {
            "format": PROOF_FORMAT,
            "leaf": entries[index].leaf().decode(),
            "index": index,
            "size": len(entries),
            "path": [h.hex() for h in tree.path(index)],
            "head_key": head_key,
            "head": signed,
        }
        for index in indexes
    }
