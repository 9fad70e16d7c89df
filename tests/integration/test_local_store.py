"""The local-directory store: atomic, durable, write-once, on the real file system."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from msgarchive_server.stores import ErrorKind, NoSuchObject, StoreError
from msgarchive_server.stores.local import LocalStore

pytestmark = pytest.mark.integration

KEY = "sent_messages/Email/202409/77/aa/bb.json.lz4"
BODY = b"\x04\x22\x4d\x18 copy bytes"
MD5 = hashlib.md5(BODY, usedforsecurity=False).digest()


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_put_writes_the_copy_at_its_key_and_nothing_else(tmp_path: Path) -> None:
    result = LocalStore(tmp_path).put(KEY, BODY)
    assert not result.already_existed
    assert result.etag == MD5.hex()
    assert (tmp_path / KEY).read_bytes() == BODY
    assert all_files(tmp_path) == [KEY]  # no temporary file is left behind


def test_read_gives_the_bytes_of_the_one_version_a_directory_keeps(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(KEY, BODY)
    assert store.read(KEY) == BODY
    with pytest.raises(NoSuchObject):
        store.read(KEY, "v2")  # a directory keeps no other version
    with pytest.raises(NoSuchObject):
        store.read(KEY + ".missing")


def test_file_and_every_new_directory_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    LocalStore(tmp_path).put(KEY, BODY)
    final_dir = str((tmp_path / KEY).parent)
    temp_files = [p for p in synced if Path(p).name.startswith(".tmp-")]
    assert len(temp_files) == 1  # the data, before it is published
    assert synced[-1] == final_dir  # the directory entry, after
    for parent in Path(KEY).parents:
        if str(parent) != ".":
            assert str(tmp_path / parent.parent) in synced  # each new directory's entry


def test_write_once_keeps_the_first_copy(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put(KEY, BODY)
    other = b"another body"
    result = store.put(KEY, other)
    assert result.already_existed
    assert result.existing_copy == BODY
    assert (tmp_path / KEY).read_bytes() == BODY


def test_concurrent_writers_of_one_key_publish_exactly_one_copy(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    bodies = [f"body {i}".encode() for i in range(16)]
    results: list[bool] = []
    barrier = threading.Barrier(len(bodies))

    def write(body: bytes) -> None:
        barrier.wait()
        result = store.put(KEY, body)
        results.append(result.already_existed)

    threads = [threading.Thread(target=write, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(False) == 1
    assert (tmp_path / KEY).read_bytes() in bodies
    assert all_files(tmp_path) == [KEY]


def test_a_file_that_does_not_read_back_as_written_is_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def corrupting_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.pwrite(fd, b"X", 0)  # the disk keeps other bytes than were written
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", corrupting_fsync)
    with pytest.raises(StoreError) as raised:
        LocalStore(tmp_path).put(KEY, BODY)
    assert raised.value.code == "BadDigest"
    assert all_files(tmp_path) == []


def test_a_failure_before_publishing_leaves_no_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_link(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "link", failing_link)
    with pytest.raises(StoreError) as raised:
        LocalStore(tmp_path).put(KEY, BODY)
    assert raised.value.code == "EIO"
    assert raised.value.kind is ErrorKind.TRANSIENT
    assert all_files(tmp_path) == []


def test_an_unusable_directory_is_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError) as raised:
        LocalStore(blocker / "archive").probe()
    assert raised.value.kind is ErrorKind.FATAL
    assert "cannot write to" in str(raised.value)


def test_a_key_cannot_escape_the_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as raised:
        LocalStore(tmp_path / "root").put("../outside.json.lz4", BODY)
    assert raised.value.kind is ErrorKind.REJECTED
    assert not (tmp_path / "outside.json.lz4").exists()


def test_listing_pages_in_key_order_below_a_prefix_and_skips_hidden_files(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    keys = [f"sent_messages/Sms/202409/c/{n}.json.lz4" for n in "abcde"]
    for key in reversed(keys):
        store.put(key, BODY)
    store.put("sent_messages/Sms/202409/c-2/z.json.lz4", BODY)  # "c-2/" sorts before "c/"
    (tmp_path / "sent_messages/Sms/202409/c/.tmp-x.part").write_bytes(b"half")
    prefix = "sent_messages/Sms/202409/c/"
    first = store.list(prefix, limit=2)
    assert [i.key for i in first.items] == keys[:2]
    assert first.truncated
    rest = store.list(prefix, start_after=keys[1], limit=3)  # after, not from
    assert [i.key for i in rest.items] == keys[2:]
    assert not rest.truncated  # exactly the limit left: nothing follows
    # Key order, not a walk's: "c-2/" sorts before "c/".
    wider = [i.key for i in store.list("sent_messages/Sms/202409/c").items]
    assert wider == ["sent_messages/Sms/202409/c-2/z.json.lz4", *keys]
    assert all(i.size == len(BODY) for i in first.items)


def test_times_are_epoch_milliseconds_and_the_etag_is_the_md5(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "not" / "there" / "yet")
    store.probe()  # makes the directory, parents too
    before = time.time_ns() // 1_000_000 - 2_000  # file systems keep coarse times
    store.put(KEY, BODY)
    after = time.time_ns() // 1_000_000 + 2_000
    got = store.get(KEY)
    assert got.body == BODY
    assert got.etag == MD5.hex()
    assert before <= got.stored_at_ms <= after
    (listed,) = store.list("sent_messages/").items
    assert listed.stored_at_ms == got.stored_at_ms
    assert store.remote is False  # an unusable directory is a configuration error
