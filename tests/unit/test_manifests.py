"""Manifests: the journal, sealing hours into signed, chained heads, and inclusion."""

from __future__ import annotations

import datetime
import hashlib
import itertools
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msgarchive.proofs import included
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.errors import NotArchived
from msgarchive_server.domain.manifests import merkle, parquet
from msgarchive_server.domain.manifests.entries import ManifestEntry
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner, verify
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.manifests.sealer import SealConflict, Sealer, hour_keys
from tests import samples
from tests.unit.fakes import FakeStore

H0 = datetime.datetime(2026, 11, 23, 5, tzinfo=datetime.UTC)
HOUR_MS = 3600 * 1000
H0_MS = int(H0.timestamp() * 1000)


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def entry(n: int, at_ms: int) -> ManifestEntry:
    return ManifestEntry(
        bucket="fake-bucket",
        key=f"sent_messages/Sms/202611/c/{n:032x}/{n:064x}.json.lz4",
        version_id=f"v{n}",
        size=100 + n,
        e_tag=f"{n:032x}",
        sha256=hashlib.sha256(str(n).encode()).hexdigest(),
        message_id=f"{n:064x}",
        channel="sms",
        campaign_id="c",
        user_hash=f"{n:032x}",
        sent_at=at_ms - 5,
        object_lock_mode="",
        object_lock_retain_until_date=0,
        acknowledged_at=at_ms,
    )


def sealer(tmp_path: Path, store: FakeStore, clock: Clock, key: Ed25519PrivateKey) -> Sealer:
    return Sealer(
        store,
        Journal(tmp_path / "journal", writer="w1"),
        Ed25519FileSigner(key),
        "pod-1",
        grace=datetime.timedelta(minutes=2),
        clock_ms=clock,
    )


def test_hours_seal_into_chained_signed_heads_including_empty_ones(tmp_path: Path) -> None:
    store, clock, key = FakeStore(), Clock(H0_MS + 60_000), Ed25519PrivateKey.generate()
    seal = sealer(tmp_path, store, clock, key)
    for n, at in ((1, H0_MS + 61_000), (2, H0_MS + 62_000), (3, H0_MS + 2 * HOUR_MS + 5)):
        seal.journal.append(entry(n, at))
    clock.ms = H0_MS + 2 * HOUR_MS + 60_000  # within the grace of hour 2's start
    assert seal.seal_due() == [H0]
    clock.ms = H0_MS + 3 * HOUR_MS + 3 * 60_000
    assert seal.seal_due() == [H0 + datetime.timedelta(hours=h) for h in (1, 2)]

    heads = []
    for h in range(3):
        manifest_key, head_key = hour_keys("", "pod-1", H0 + datetime.timedelta(hours=h))
        fields = verify(store.objects[head_key], key.public_key())
        assert fields is not None, "every head verifies under the signer's key"
        manifest = store.objects[manifest_key]
        entries = parquet.decode(manifest)
        assert fields["count"] == len(entries)
        assert fields["manifest"] == {
            "key": manifest_key,
            "sha256": hashlib.sha256(manifest).hexdigest(),
        }
        leaves = [merkle.leaf_hash(e.leaf()) for e in entries]
        assert fields["merkle_root"] == merkle.root(leaves).hex()
        heads.append((head_key, fields))
    assert [f["count"] for _, f in heads] == [2, 0, 1]  # an hour without copies too
    assert heads[0][1]["previous"] is None
    for (before_key, before), (_, after) in itertools.pairwise(heads):
        assert after["previous"] == {
            "key": before_key,
            "sha256": hashlib.sha256(store.objects[before_key]).hexdigest(),
            "signature": before["signature"],
        }
    assert verify(store.objects[heads[0][0]], Ed25519PrivateKey.generate().public_key()) is None
    assert seal.journal.hours() == []  # sealed hours leave the journal


def test_one_copy_is_proven_from_its_manifest_alone(tmp_path: Path) -> None:
    store, clock, key = FakeStore(), Clock(H0_MS), Ed25519PrivateKey.generate()
    seal = sealer(tmp_path, store, clock, key)
    for n in range(7):
        seal.journal.append(entry(n, H0_MS + n))
    clock.ms = H0_MS + HOUR_MS + 3 * 60_000
    seal.seal_due()
    manifest_key, head_key = hour_keys("", "pod-1", H0)
    entries = parquet.decode(store.objects[manifest_key])
    fields = json.loads(store.objects[head_key])
    leaves = [merkle.leaf_hash(e.leaf()) for e in entries]
    index = 4
    path = merkle.inclusion_proof(index, leaves)
    root = bytes.fromhex(fields["merkle_root"])
    assert included(entries[index].leaf(), index, len(entries), path, root)


def test_a_late_entry_goes_to_the_next_open_hour(tmp_path: Path) -> None:
    store, clock, key = FakeStore(), Clock(H0_MS), Ed25519PrivateKey.generate()
    seal = sealer(tmp_path, store, clock, key)
    clock.ms = H0_MS + HOUR_MS + 3 * 60_000
    seal.seal_due()  # hour 0 sealed, empty
    late = entry(9, H0_MS + 10)  # acknowledged in hour 0, journaled after its seal
    assert seal.journal.append(late) == H0 + datetime.timedelta(hours=1)
    clock.ms = H0_MS + 2 * HOUR_MS + 3 * 60_000
    seal.seal_due()
    manifest_key, _ = hour_keys("", "pod-1", H0 + datetime.timedelta(hours=1))
    assert parquet.decode(store.objects[manifest_key]) == [late]


def test_sealing_again_after_a_crash_keeps_the_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, clock, key = FakeStore(), Clock(H0_MS), Ed25519PrivateKey.generate()
    first = sealer(tmp_path, store, clock, key)
    first.journal.append(entry(1, H0_MS + 1))
    clock.ms = H0_MS + HOUR_MS + 3 * 60_000

    def crash(hour: datetime.datetime) -> None:
        raise KeyboardInterrupt  # killed after writing, before recording the seal

    monkeypatch.setattr(first.journal, "mark_sealed", crash)
    with pytest.raises(KeyboardInterrupt):
        first.seal_due()
    _, head_key = hour_keys("", "pod-1", H0)
    written = store.objects[head_key]

    again = sealer(tmp_path, store, clock, key)  # the restarted sidecar
    assert again.seal_due() == [H0]
    assert store.objects[head_key] == written  # the first head stands
    clock.ms += HOUR_MS
    again.seal_due()
    _, next_key = hour_keys("", "pod-1", H0 + datetime.timedelta(hours=1))
    assert json.loads(store.objects[next_key])["previous"]["key"] == head_key

    late_clock = Clock(H0_MS + HOUR_MS + 3 * 60_000)
    other = sealer(tmp_path / "other", store, late_clock, Ed25519PrivateKey.generate())
    other.journal.mark_sealed(H0 - datetime.timedelta(hours=1))
    other.journal.append(entry(1, H0_MS + 1))
    with pytest.raises(SealConflict):  # another signer's head is not adopted
        other.seal_due()


def test_the_archiver_journals_each_ack_before_giving_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path, writer="w1")
    store = FakeStore()
    ack = Archiver(store, journal=journal).archive(samples.sms_request())
    (hour,) = journal.hours()
    (recorded,) = journal.entries_through(hour)
    stored = store.objects[ack.key]
    assert (recorded.key, recorded.message_id, recorded.size) == (
        ack.key,
        ack.message_id,
        len(stored),
    )
    assert recorded.sha256 == hashlib.sha256(stored).hexdigest()
    assert (recorded.channel, recorded.campaign_id, recorded.sent_at) == (
        "sms",
        samples.sms_request().campaign_id,
        ack.sent_at_ms,
    )


def test_no_ack_without_its_journal_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(tmp_path, writer="w1")

    def full_disk(entry: ManifestEntry) -> datetime.datetime:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "append", full_disk)
    with pytest.raises(NotArchived) as raised:
        Archiver(FakeStore(), journal=journal).archive(samples.sms_request())
    assert raised.value.store_error == "JournalWriteFailed"


def test_a_torn_last_line_is_left_out(tmp_path: Path) -> None:
    journal = Journal(tmp_path, writer="w1")
    journal.append(entry(1, H0_MS + 1))
    journal.close()
    (path,) = tmp_path.glob("*.jsonl")
    with path.open("ab") as out:
        out.write(b'{"bucket": "fake-bucket", "key": "sent_mess')  # cut by a crash
    assert Journal(tmp_path, writer="w2").entries_through(H0) == [entry(1, H0_MS + 1)]


def test_a_copy_acked_twice_is_listed_once_as_first_acked(tmp_path: Path) -> None:
    journal = Journal(tmp_path, writer="w1")
    first, again = entry(1, H0_MS + 10), entry(1, H0_MS + 20)
    journal.append(again)
    journal.append(first)
    journal.append(entry(2, H0_MS + 30))
    assert journal.entries_through(H0) == [first, entry(2, H0_MS + 30)]


def test_what_a_killed_process_left_mapped_is_read(tmp_path: Path) -> None:
    journal = Journal(tmp_path, writer="w1")
    journal.append(entry(1, H0_MS + 1))
    journal.append(entry(2, H0_MS + 2))
    # Not closed, as after kill -9: the lines are in the page cache, then zeros.
    (path,) = tmp_path.glob("*.jsonl")
    assert path.read_bytes().endswith(b"\0")
    assert Journal(tmp_path, writer="w2").entries_through(H0) == [
        entry(1, H0_MS + 1),
        entry(2, H0_MS + 2),
    ]
