"""The signed logs (holds, exports) on their own: records numbered in turn,
each linked to the one before, and every break named."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msgarchive_server.domain.manifests import signed_log
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
from tests.unit.fakes import FakeStore

ROOT = "_msgarchive/test-log"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def written(store: FakeStore, key: Ed25519PrivateKey, count: int) -> list[str]:
    signer = Ed25519FileSigner(key)
    return [signed_log.append(store, ROOT, {"n": n}, signer) for n in range(count)]


def test_records_are_numbered_in_turn_each_linked_to_the_one_before(key: Ed25519PrivateKey) -> None:
    store = FakeStore()
    keys = written(store, key, 4)
    assert keys == [f"{ROOT}/{n:012d}.json" for n in (1, 2, 3, 4)]
    records = [json.loads(store.objects[k]) for k in keys]
    assert [r["sequence"] for r in records] == [1, 2, 3, 4]
    assert records[0]["previous"] is None
    for before, record in zip(keys, records[1:], strict=False):
        assert record["previous"] == {
            "key": before,
            "sha256": hashlib.sha256(store.objects[before]).hexdigest(),
        }
    assert list(signed_log.verify_chain(store, ROOT, key.public_key())) == []


def test_a_removed_record_is_named_missing_before_the_next(key: Ed25519PrivateKey) -> None:
    store = FakeStore()
    keys = written(store, key, 3)
    del store.objects[keys[1]]
    assert list(signed_log.verify_chain(store, ROOT, key.public_key())) == [
        (keys[2], "record 2 is missing before it")
    ]


def test_an_edited_or_resigned_record_is_named(key: Ed25519PrivateKey) -> None:
    store = FakeStore()
    keys = written(store, key, 3)
    store.objects[keys[1]] = store.objects[keys[1]].replace(b'"n":1', b'"n":7')
    assert list(signed_log.verify_chain(store, ROOT, key.public_key())) == [
        (keys[1], "its signature does not verify"),
        (keys[2], "it does not link to the record before"),
    ]
