"""The sealer asks an RFC 3161 time-stamping authority for a token over each
checkpoint: OpenSSL's own TSA on loopback (tests/tsa.py), tokens that
`openssl ts -verify` accepts kept beside the checkpoint, and every refusal
reported by what was wrong, never holding up a seal."""

from __future__ import annotations

import datetime
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from msgarchive_server.domain.manifests.headlog import checkpoint_key
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.manifests.sealer import Sealer, hour_keys
from msgarchive_server.domain.manifests.timestamps import (
    Timestamper,
    TimestampError,
    load_roots,
    read_reply,
    request,
    timestamp_key,
)
from msgarchive_server.process.config import ConfigError, parse_settings
from tests.tsa import LoopbackTSA, make_pki, openssl_verify
from tests.unit.fakes import FakeStore
from tests.unit.test_manifests import H0_MS, HOUR_MS, Clock, entry

H0 = datetime.datetime.fromtimestamp(H0_MS / 1000, datetime.UTC)


class World:
    """A sealer over a fake store whose checkpoints a loopback TSA dates."""

    def __init__(self, tmp_path: Path, tsa: LoopbackTSA, timeout: float = 5.0) -> None:
        self.store = FakeStore()
        self.clock = Clock(H0_MS + 60_000)
        self.journal = Journal(tmp_path / "journal", writer="w1")
        self.answers: list[bool] = []
        self.sealer = Sealer(
            self.store, self.journal, Ed25519FileSigner(Ed25519PrivateKey.generate()), "pod-1",
            clock_ms=self.clock, timestamper=Timestamper(tsa.url, timeout=timeout),
            on_timestamp=self.answers.append,
        )  # fmt: skip

    def seal_hours(self, count: int) -> None:
        for _ in range(count):
            self.journal.append(entry(self.clock.ms, self.clock.ms))
            self.clock.ms += HOUR_MS
            self.sealer.seal_due()

    def checkpoint(self, hour: int) -> tuple[str, bytes]:
        head = hour_keys(self.store.prefix, "pod-1", H0 + datetime.timedelta(hours=hour))[1]
        key = checkpoint_key(head)
        return key, self.store.objects[key]

    def token(self, hour: int) -> bytes | None:
        return self.store.objects.get(timestamp_key(self.checkpoint(hour)[0]))


@pytest.fixture(scope="module")
def tsa() -> Iterator[LoopbackTSA]:
    running = LoopbackTSA()
    yield running
    running.stop()


@pytest.fixture
def world(tmp_path: Path, tsa: LoopbackTSA) -> Iterator[World]:
    tsa.mode = ""
    yield World(tmp_path, tsa)
    tsa.mode = ""


def test_each_checkpoint_gets_a_token_that_openssl_verifies(
    world: World, tsa: LoopbackTSA, tmp_path: Path
) -> None:
    world.seal_hours(3)  # the first two hours are over
    assert world.answers == [True, True]
    for hour in (0, 1):
        key, checkpoint = world.checkpoint(hour)
        token = world.token(hour)
        assert token is not None, key
        assert timestamp_key(key) == key.removesuffix(".txt") + ".tsr" != key
        (tmp_path / "checkpoint.txt").write_bytes(checkpoint)
        (tmp_path / "checkpoint.tsr").write_bytes(token)
        checked = openssl_verify(tmp_path / "checkpoint.txt", tmp_path / "checkpoint.tsr", tsa.ca)
        assert checked.returncode == 0, checked.stderr
        assert "Verification: OK" in checked.stdout
        # And the bytes the token is over are the checkpoint's, to the byte.
        (tmp_path / "checkpoint.txt").write_bytes(checkpoint + b"\n")
        tampered = openssl_verify(tmp_path / "checkpoint.txt", tmp_path / "checkpoint.tsr", tsa.ca)
        assert tampered.returncode != 0
        found = read_reply(token, checkpoint, roots=load_roots(tsa.ca.read_bytes()))
        assert found.tsa == "CN=msgarchive test TSA"


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("error", "500: the signing module is offline"),
        ("garbage", "not a timestamp reply"),
        ("rejection", "the TSA refused (rejection): Requested policy is not supported."),
        ("other bytes", "the token is over other bytes than the checkpoint"),
    ],
)
def test_each_refusal_is_named_and_the_next_seal_is_dated(
    world: World, tsa: LoopbackTSA, mode: str, why: str
) -> None:
    tsa.mode = mode
    with capture_logs() as logs:
        world.seal_hours(2)  # the first hour is over
    refused = [line for line in logs if line["event"] == "timestamp refused"]
    assert len(refused) == 1
    assert refused[0]["why"].startswith(why)
    assert world.token(0) is None
    assert world.answers == [False]
    head = hour_keys(world.store.prefix, "pod-1", H0)[1]
    assert head in world.store.objects  # sealed all the same
    tsa.mode = ""
    world.seal_hours(1)
    assert world.answers == [False, True]
    assert world.token(1) is not None  # dates hour 1's checkpoint, and so hour 0 with it


def test_a_tsa_that_does_not_answer_holds_up_no_seal(tmp_path: Path, tsa: LoopbackTSA) -> None:
    tsa.mode = "slow"
    tsa.release.clear()
    world = World(tmp_path, tsa, timeout=0.5)
    try:
        with capture_logs() as logs:
            world.seal_hours(2)
        refused = [line for line in logs if line["event"] == "timestamp refused"]
        assert refused[0]["why"].startswith("did not answer")
        assert hour_keys(world.store.prefix, "pod-1", H0)[1] in world.store.objects
    finally:
        tsa.release.set()
        tsa.mode = ""


def test_an_unreachable_tsa_is_a_refusal(tmp_path: Path) -> None:
    stamper = Timestamper("http://127.0.0.1:9/")  # discard: nobody listens
    with pytest.raises(TimestampError, match="did not answer"):
        stamper.stamp(b"a checkpoint")


def _token(tsa: LoopbackTSA, data: bytes) -> bytes:
    return tsa.reply(request(data, nonce=7))


def test_a_token_checks_only_with_its_bytes_its_nonce_and_its_ca(tsa: LoopbackTSA) -> None:
    data = b"checkpoint bytes\n"
    token = _token(tsa, data)
    roots = load_roots(tsa.ca.read_bytes())
    assert read_reply(token, data, nonce=7, roots=roots).time.tzinfo is not None
    with pytest.raises(TimestampError, match="over other bytes"):
        read_reply(token, data + b"x", roots=roots)
    with pytest.raises(TimestampError, match="nonce"):
        read_reply(token, data, nonce=8)
    with tempfile.TemporaryDirectory() as other:
        elsewhere = load_roots(make_pki(Path(other), name="another").read_bytes())
    with pytest.raises(TimestampError, match="does not chain to --tsa-ca"):
        read_reply(token, data, roots=elsewhere)


def test_a_token_whose_signature_was_altered_does_not_check(tsa: LoopbackTSA) -> None:
    data = b"checkpoint bytes\n"
    token = bytearray(_token(tsa, data))
    # The signature is the SignerInfo's last field, and OpenSSL writes no
    # unsigned attributes: the reply's last byte is the signature's.
    token[-1] ^= 0x01
    with pytest.raises(TimestampError, match="signature does not verify"):
        read_reply(bytes(token), data)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--timestamp-url=http://tsa.test/"], "--timestamp-url needs --manifests-dir"),
        (["--manifests-dir=/tmp/m", "--manifest-signing-key=/tmp/k",
          "--timestamp-url=ftp://tsa.test/"], r"not an http\(s\) URL"),
    ],
)  # fmt: skip
def test_a_bad_timestamp_setting_is_refused(flags: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_settings(flags, {})


def test_a_token_whose_time_was_edited_does_not_check(tsa: LoopbackTSA) -> None:
    """The TSTInfo (its time, here) is covered by the digest in the signed
    attributes, not by the signature directly: an edit is caught there."""
    data = b"checkpoint bytes\n"
    token = _token(tsa, data)
    time = read_reply(token, data).time.strftime("%Y%m%d%H%M%S").encode()
    assert token.count(time) >= 1
    edited = token.replace(time, b"1999" + time[4:], 1)  # the TSTInfo comes first
    with pytest.raises(TimestampError, match="signed digest is not the TSTInfo's"):
        read_reply(edited, data)


def test_a_token_naming_another_certificate_than_it_carries_does_not_check(
    tsa: LoopbackTSA,
) -> None:
    data = b"checkpoint bytes\n"
    token = _token(tsa, data)
    named = hashlib.sha256(load_roots((tsa.directory / "tsa.pem").read_bytes())[0].public_bytes(
        serialization.Encoding.DER)).digest()  # fmt: skip
    assert token.count(named) == 1  # ESSCertIDv2, in the signed attributes
    other = token.replace(named, bytes(32))
    with pytest.raises(TimestampError, match="names another certificate"):
        read_reply(other, data)


def test_a_token_signed_with_a_certificate_expired_at_its_time_does_not_check(
    tmp_path: Path,
) -> None:
    make_pki(tmp_path / "pki", expired=True)
    expired = LoopbackTSA(tmp_path / "pki")
    try:
        token = _token(expired, b"data")
        read_reply(token, b"data")  # the signature itself is good
        with pytest.raises(TimestampError, match="is not valid at"):
            read_reply(token, b"data", roots=load_roots(expired.ca.read_bytes()))
    finally:
        expired.stop()


def test_a_tsa_that_answers_with_another_requests_token_is_refused(
    world: World, tsa: LoopbackTSA
) -> None:
    """A replayed reply is over the same bytes, but not for this nonce. (The
    world fixture puts the shared TSA's mode back afterwards.)"""
    stamper = Timestamper(tsa.url)
    stamper.stamp(b"the same checkpoint")
    tsa.mode = "replay"
    with pytest.raises(TimestampError, match="nonce"):
        stamper.stamp(b"the same checkpoint")
