"""Manifests: the journal, sealing hours into signed, chained heads, and inclusion."""

from __future__ import annotations

import base64
import datetime
import errno
import hashlib
import itertools
import json
import os
import queue
import sqlite3
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msgarchive.proofs import included
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.errors import ArchiveFailed, JournalFull
from msgarchive_server.domain.manifests import journal as journal_module
from msgarchive_server.domain.manifests import merkle, parquet
from msgarchive_server.domain.manifests.entries import ManifestEntry, leaf_of
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner, verify
from msgarchive_server.domain.manifests.journal import Journal, Sealed
from msgarchive_server.domain.manifests.sealer import SealConflict, Sealer, hour_keys, part_name
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


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"campaign_id": 'spring "sale" \\ ünï ✓ \u2028 \x00\x1f\n\t'},
        {"version_id": "", "object_lock_mode": "GOVERNANCE"},
        {"size": 0, "sent_at": -1, "acknowledged_at": 1 << 70},
        {"size": True},  # not an int to the fast writer: the encoder writes it
        {"version_id": None},  # nor is None
    ],
)
def test_journal_lines_and_leaves_are_what_the_json_encoder_writes(
    changes: dict[str, object],
) -> None:
    fields = {**entry(7, H0_MS).as_dict(), **changes}
    one = ManifestEntry(**fields)
    compact = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    assert one.journal_line().decode() == compact + "\n"
    sorted_keys = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    assert one.leaf().decode() == sorted_keys
    assert leaf_of(fields) == one.leaf()  # as verify makes it from a manifest's row


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

    def crash(state: Sealed) -> None:
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
    other.journal.mark_sealed(Sealed(H0 - datetime.timedelta(hours=1)))
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
    with pytest.raises(ArchiveFailed) as raised:
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


def test_a_restart_within_the_hour_seals_a_second_part_of_it(tmp_path: Path) -> None:
    store, clock, key = FakeStore(), Clock(H0_MS + 10 * 60_000), Ed25519PrivateKey.generate()
    first = sealer(tmp_path, store, clock, key)
    first.journal.append(entry(1, clock.ms))
    assert first.seal_now() == [H0]  # the sidecar stops at 05:10
    first.journal.close()

    clock.ms = H0_MS + 20 * 60_000  # started again at 05:20, the same hour
    again = sealer(tmp_path, store, clock, key)
    for n in (2, 3, 4):  # every archive after the restart is journaled, in hour 05
        assert again.journal.append(entry(n, clock.ms + n)) == H0
    assert again.seal_now() == [H0]  # and it stops again at 05:20

    (_, head_1), (manifest_2, head_2) = (hour_keys("", "pod-1", H0, part) for part in (1, 2))
    assert head_2.endswith("/05/head.2.json")
    second = verify(store.objects[head_2], key.public_key())
    assert second is not None
    assert (second["part"], second["count"]) == (2, 3)
    assert [e.key for e in parquet.decode(store.objects[manifest_2])] == [
        entry(n, 0).key for n in (2, 3, 4)
    ]
    assert second["previous"]["key"] == head_1  # the chain runs through both parts

    # Once the hour is over, a quiet hour keeps its two parts; the next hour
    # links to its last part.
    clock.ms = H0_MS + HOUR_MS + 3 * 60_000
    third = sealer(tmp_path, store, clock, key)
    assert third.seal_due() == []
    assert third.journal.sealed == Sealed(H0, 2, open=False)  # over, with its two parts
    clock.ms += HOUR_MS
    assert third.seal_due() == [H0 + datetime.timedelta(hours=1)]
    _, next_head = hour_keys("", "pod-1", H0 + datetime.timedelta(hours=1))
    assert json.loads(store.objects[next_head])["previous"]["key"] == head_2
    assert not any(".3." in name for name in store.objects)


def test_acks_interleaved_across_the_hour_never_stop_the_journal(tmp_path: Path) -> None:
    """One thread's ack at 05:59:59.999 is journaled after another's at 06:00:00.001
    opened hour 06: the late one joins hour 06, and every later one goes in too."""
    journal = Journal(tmp_path, writer="w1")
    next_hour = H0 + datetime.timedelta(hours=1)
    assert journal.append(entry(1, H0_MS + HOUR_MS + 1)) == next_hour
    assert journal.append(entry(2, H0_MS + HOUR_MS - 1)) == next_hour
    assert journal.append(entry(3, H0_MS + HOUR_MS + 2)) == next_hour
    assert [e.key for e in journal.entries_through(next_hour)] == [
        entry(n, 0).key for n in (1, 2, 3)
    ]


def test_the_sealed_state_of_a_journal_before_parts_still_reads(tmp_path: Path) -> None:
    (tmp_path / "sealed").write_text(f"{H0:%Y%m%d%H}\n")
    journal = Journal(tmp_path, writer="w1")
    assert journal.sealed == Sealed(H0, parts=1, open=False)
    assert journal.append(entry(1, H0_MS + 5)) == H0 + datetime.timedelta(hours=1)


def test_a_full_disk_is_an_error_the_archiver_sees_and_it_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes: queue.SimpleQueue[bool] = queue.SimpleQueue()
    journal = Journal(tmp_path, writer="w1", on_change=changes.put, probe_interval=0.01)
    room = threading.Event()

    def reserve(fd: int, offset: int, length: int) -> None:
        if not room.is_set():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.posix_fallocate(fd, offset, length)

    monkeypatch.setattr(journal_module, "_reserve", reserve)
    store = FakeStore()
    archiver = Archiver(store, journal=journal)
    with pytest.raises(JournalFull) as raised:
        archiver.archive(samples.sms_request())
    assert raised.value.metadata == {"journal_error": "No space left on device"}
    assert journal.full
    assert changes.get(timeout=30) is False
    stored = len(store.objects)
    with pytest.raises(JournalFull):  # refused before the store is asked
        archiver.archive(samples.email_request())
    assert len(store.objects) == stored

    room.set()  # space is freed: the probe finds it, no restart
    assert changes.get(timeout=30) is True
    assert not journal.full
    assert archiver.archive(samples.email_request()).key in store.objects
    journal.close()


def test_a_nearly_full_disk_is_used_page_by_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past what the disk can give at once, the journal grows by the pages one line needs."""
    allowed = journal_module.FIRST_RESERVATION + 2 * journal_module.PAGE
    asked: list[int] = []

    def reserve(fd: int, offset: int, length: int) -> None:
        asked.append(length)
        if offset + length > allowed:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.posix_fallocate(fd, offset, length)

    monkeypatch.setattr(journal_module, "_reserve", reserve)
    journal = Journal(tmp_path, writer="w1")
    line = len(entry(0, H0_MS).journal_line())
    n = 0
    while True:
        n += 1
        try:
            journal.append(entry(n, H0_MS + n))
        except journal_module.JournalOutOfSpace:
            break
        assert n < 10_000, "the disk never filled"
    assert (n - 1) * line > journal_module.FIRST_RESERVATION + journal_module.PAGE
    assert journal_module.PAGE in asked  # it fell back to single pages
    journal.close()
    assert len(journal.entries_through(H0)) == n - 1  # every entry before the full one


def test_a_head_checks_as_the_readme_describes_it(tmp_path: Path) -> None:
    """Written from the README's "A head, byte for byte" alone: no code of the sealer's."""
    from cryptography.hazmat.primitives import serialization

    store, clock, key = FakeStore(), Clock(H0_MS + 60_000), Ed25519PrivateKey.generate()
    seal = sealer(tmp_path, store, clock, key)
    seal.journal.append(entry(1, H0_MS + 61_000))
    clock.ms = H0_MS + HOUR_MS + 3 * 60_000
    seal.seal_due()
    base = "_msgarchive/manifests/pod-1/2026/11/23/05/"
    raw = store.objects[base + "head.json"]

    def canonical_json(value: object) -> bytes:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    head = json.loads(raw)
    assert raw == canonical_json(head)  # stored as canonical JSON
    signature = base64.b64decode(head.pop("signature"), validate=True)
    key.public_key().verify(signature, canonical_json(head))  # raises if it does not
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert head["public_key_sha256"] == hashlib.sha256(public).hexdigest()
    assert head["manifest"] == {
        "key": base + "manifest.parquet",
        "sha256": hashlib.sha256(store.objects[base + "manifest.parquet"]).hexdigest(),
    }
    assert (head["format"], head["hour"], head["part"], head["count"]) == (
        "msgarchive.manifest-head.v1", "2026-11-23T05:00:00Z", 1, 1,
    )  # fmt: skip
    (only,) = parquet.decode(store.objects[base + "manifest.parquet"])
    leaf = hashlib.sha256(b"\0" + canonical_json(only.as_dict())).hexdigest()
    assert head["merkle_root"] == leaf  # one row: the root is its leaf hash


def test_an_hour_is_due_once_its_grace_has_passed_not_a_millisecond_before(
    tmp_path: Path,
) -> None:
    store, clock, key = FakeStore(), Clock(H0_MS), Ed25519PrivateKey.generate()
    seal = sealer(tmp_path, store, clock, key)
    seal.journal.append(entry(1, H0_MS + 1))
    clock.ms = H0_MS + HOUR_MS + 2 * 60_000 - 1  # the grace is two minutes
    assert seal.seal_due() == []
    clock.ms += 1
    assert seal.seal_due() == [H0]


def test_a_manifest_key_that_holds_other_bytes_is_a_conflict_the_same_bytes_are_not(
    tmp_path: Path,
) -> None:
    store, clock, key = FakeStore(), Clock(H0_MS), Ed25519PrivateKey.generate()
    seal = sealer(tmp_path, store, clock, key)
    seal.journal.append(entry(1, H0_MS + 1))
    clock.ms = H0_MS + HOUR_MS + 3 * 60_000
    manifest_key, head_key = hour_keys("", "pod-1", H0)
    ours = parquet.encode([entry(1, H0_MS + 1)])
    for other in (ours[:-1] + b"\x00", b"", ours + b"\x00"):  # after, before, longer
        store.objects[manifest_key] = other
        with pytest.raises(SealConflict):
            seal.seal_due()
        assert head_key not in store.objects
    store.objects[manifest_key] = ours  # what a crash after the manifest's write left
    assert seal.seal_due() == [H0]
    assert verify(store.objects[head_key], key.public_key()) is not None


def test_a_head_of_ours_for_another_manifest_is_not_adopted(tmp_path: Path) -> None:
    store, clock, key = FakeStore(), Clock(H0_MS), Ed25519PrivateKey.generate()
    seal = sealer(tmp_path, store, clock, key)
    seal.journal.append(entry(1, H0_MS + 1))
    clock.ms = H0_MS + HOUR_MS + 3 * 60_000
    _, head_key = hour_keys("", "pod-1", H0)
    signer = Ed25519FileSigner(key)
    store.objects[head_key] = json.dumps(
        {"public_key_sha256": signer.public_key_sha256, "manifest": {"sha256": "0" * 64}}
    ).encode()
    with pytest.raises(SealConflict):
        seal.seal_due()


def test_the_background_sealer_seals_at_once_survives_a_failure_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, clock, key = FakeStore(), Clock(H0_MS), Ed25519PrivateKey.generate()
    seal = sealer(tmp_path, store, clock, key)
    seal.journal.append(entry(1, H0_MS + 1))
    clock.ms = H0_MS + HOUR_MS + 3 * 60_000
    calls: queue.Queue[str] = queue.Queue()
    real = seal.seal_due
    failures = [OSError(errno.EIO, "I/O error"), RuntimeError("a bug")]

    def seal_due() -> list[datetime.datetime]:
        if failures:
            calls.put("failed")
            raise failures.pop(0)
        calls.put("sealed")
        return real()

    monkeypatch.setattr(seal, "seal_due", seal_due)
    seal.start(interval=0.01)
    try:
        assert [calls.get(timeout=60) for _ in range(3)] == ["failed", "failed", "sealed"]
    finally:
        seal.stop()
    assert seal._thread is not None
    assert not seal._thread.is_alive()
    assert hour_keys("", "pod-1", H0)[1] in store.objects


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("manifest.parquet", ("manifest", 1)),
        ("head.json", ("head", 1)),
        ("manifest.2.parquet", ("manifest", 2)),
        ("head.12.json", ("head", 12)),
        ("manifest.1.parquet", None),  # the first part has no number
        ("head.02.json", None),
        ("chain.json", None),
        ("manifest.parquet.tmp", None),
    ],
)
def test_a_part_is_named_as_the_sealer_names_it(name: str, named: tuple[str, int] | None) -> None:
    assert part_name(name) == named


def test_prove_answers_the_proof_of_the_copy_asked_for_and_of_no_other(tmp_path: Path) -> None:
    """(The mutation run: prove() picking the first entry whose key sorts before
    or after the one asked for survived.)"""
    from cryptography.hazmat.primitives import serialization

    from msgarchive.proofs import check_proof
    from msgarchive_server.domain.manifests.prove import prove

    store, clock, key = FakeStore(), Clock(H0_MS), Ed25519PrivateKey.generate()
    seal = sealer(tmp_path, store, clock, key)
    store.clock_ms = lambda: H0_MS + 10
    entries = [entry(n, H0_MS + n) for n in (5, 1, 9, 3)]  # keys in no order
    for item in entries:
        seal.journal.append(item)
        store.put(item.key, b"copy")
    clock.ms = H0_MS + HOUR_MS + 3 * 60_000
    seal.seal_due()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for item in entries:
        proof = prove(store, item.key)
        assert proof is not None
        assert json.loads(proof["leaf"])["key"] == item.key
        assert check_proof(proof, public) == item.key
    assert prove(store, "sent_messages/Sms/202611/c/none.json.lz4") is None


@pytest.mark.parametrize("batch_rows", [65536, 2])
def test_a_manifest_whose_entries_miss_the_heads_root_leaves_none_in_verifys_index(
    monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    """Verify indexes a manifest's entries a batch at a time, and takes them
    all back when the whole does not give the root its head states (its
    copies are then unlisted); a manifest that does, it keeps whole."""
    from msgarchive_server.domain.manifests import verify as verify_module

    rows = parquet.rows
    monkeypatch.setattr(parquet, "rows", lambda data: rows(data, batch_rows=batch_rows))
    store = FakeStore()
    listed = [entry(n, H0_MS) for n in range(5)]
    data = parquet.encode(listed)
    store.put("m", data)
    root = merkle.root([merkle.leaf_hash(e.leaf()) for e in listed]).hex()
    verifier = verify_module.Verifier(store, Ed25519PrivateKey.generate().public_key())  # type: ignore[arg-type]
    index = sqlite3.connect(":memory:")
    index.execute(
        "CREATE TABLE entry (key TEXT, version_id TEXT, e_tag TEXT, sha256 TEXT, mode TEXT,"
        " retain_until INTEGER, message_id TEXT, seen INTEGER DEFAULT 0,"
        " PRIMARY KEY (key, version_id)) WITHOUT ROWID"
    )
    head = {"manifest": {"sha256": hashlib.sha256(data).hexdigest()}, "count": 5}
    wrong = list(verifier._manifest(index, {**head, "merkle_root": "00" * 32}, "m"))
    assert [(f.kind, f.detail) for f in wrong] == [
        ("manifest_altered", "its entries do not give the head's root")
    ]
    assert index.execute("SELECT count(*) FROM entry").fetchone() == (0,)
    assert list(verifier._manifest(index, {**head, "merkle_root": root}, "m")) == []
    assert index.execute("SELECT count(*) FROM entry").fetchone() == (5,)
