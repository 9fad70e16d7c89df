"""Timestamp tokens over the checkpoints, against SeaweedFS and OpenSSL's own
TSA (tests/tsa.py): `verify --tsa-ca` accepts the tokens the sealer stored,
and names each way they fail: missing, from another CA, over a checkpoint
that was replaced since, or long after the hours they date."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.manifests.headlog import checkpoint_key
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.manifests.sealer import Sealer, hour_keys
from msgarchive_server.domain.manifests.timestamps import Timestamper, load_roots, timestamp_key
from msgarchive_server.domain.manifests.verify import Finding, Verifier
from msgarchive_server.stores import Retention
from tests import samples
from tests.integration.conftest import HOUR_MS, PREFIX, Archive, rebuild_with_the_real_key
from tests.seaweed import SeaweedFS
from tests.tsa import LoopbackTSA, make_pki, openssl_verify

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

NOW_MS = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def tsa() -> Iterator[LoopbackTSA]:
    running = LoopbackTSA()
    yield running
    running.stop()


@dataclass
class Timestamped:
    archive: Archive
    sealer: Sealer
    journal: Journal
    now: list[int]  # the sealer's clock
    roots: list[x509.Certificate]

    def verify(self, **options: object) -> list[tuple[str, str]]:
        found: list[Finding] = list(
            Verifier(self.archive.store, self.archive.key.public_key(),
                     tsa_roots=self.roots, **options).run()  # type: ignore[arg-type]
        )  # fmt: skip
        return sorted((f.kind, f.key) for f in found)

    def token_key(self, hour: int) -> str:
        """The token key of the `hour`th hour of the chain (0: its first)."""
        first = self.archive.hours[0]
        head = hour_keys(PREFIX, "pod-1", first + datetime.timedelta(hours=hour))[1]
        return timestamp_key(checkpoint_key(head))


def timestamped(
    seaweed: SeaweedFS, tmp_path: Path, tsa: LoopbackTSA, *, started_ms: int
) -> Timestamped:
    """Three copies acked at `started_ms`, journaled, and their hour and the
    next sealed two hours after it, each checkpoint dated by `tsa` (now)."""
    bucket = seaweed.new_bucket(object_lock=True)
    seaweed.set_default_retention(bucket, "GOVERNANCE", days=1)
    store = seaweed.store(bucket, prefix=PREFIX, retention=Retention("GOVERNANCE", 1))
    store.probe()
    now = [started_ms]
    journal = Journal(tmp_path / "journal", writer="w0")
    key = Ed25519PrivateKey.generate()
    sealer = Sealer(store, journal, Ed25519FileSigner(key), "pod-1", clock_ms=lambda: now[0],
                    timestamper=Timestamper(tsa.url))  # fmt: skip
    archiver = Archiver(store, journal=journal, clock_ms=lambda: started_ms)
    acked = [archiver.archive(make()).key for make in list(samples.REQUESTS.values())[:3]]
    now[0] = (started_ms // HOUR_MS) * HOUR_MS + 2 * HOUR_MS + 5 * 60 * 1000
    hours = sealer.seal_due()
    assert len(hours) == 2
    archive = Archive(bucket, store, key, acked, hours)
    return Timestamped(archive, sealer, journal, now, load_roots(tsa.ca.read_bytes()))


@pytest.fixture
def recent(seaweed: SeaweedFS, tmp_path: Path, tsa: LoopbackTSA) -> Timestamped:
    """Two hours that ended between one and three hours ago, dated now."""
    tsa.mode = ""
    return timestamped(seaweed, tmp_path, tsa, started_ms=NOW_MS - 3 * HOUR_MS)


def test_each_checkpoint_of_a_sealed_chain_is_dated_and_verifies(
    recent: Timestamped, tsa: LoopbackTSA, s3: S3Client, tmp_path: Path
) -> None:
    assert recent.verify() == []
    bucket = recent.archive.bucket
    for hour in (0, 1):
        key = recent.token_key(hour)
        (tmp_path / "checkpoint.tsr").write_bytes(
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        )
        checkpoint = key.removesuffix(".tsr") + ".txt"
        data = s3.get_object(Bucket=bucket, Key=checkpoint)["Body"].read()
        (tmp_path / "checkpoint.txt").write_bytes(data)
        checked = openssl_verify(tmp_path / "checkpoint.txt", tmp_path / "checkpoint.tsr", tsa.ca)
        assert checked.returncode == 0, checked.stderr


def test_tokens_that_chain_to_another_ca_are_invalid(recent: Timestamped, tmp_path: Path) -> None:
    recent.roots = load_roots(make_pki(tmp_path / "elsewhere", name="another").read_bytes())
    found = list(Verifier(recent.archive.store, recent.archive.key.public_key(),
                          tsa_roots=recent.roots).run())  # fmt: skip
    assert sorted((f.kind, f.key) for f in found) == [
        ("timestamp_invalid", recent.token_key(0)),
        ("timestamp_invalid", recent.token_key(1)),
        ("timestamp_missing", recent.token_key(1).removesuffix(".tsr") + ".txt"),
    ]
    assert "does not chain to --tsa-ca" in found[0].detail


def test_a_chain_rebuilt_with_the_real_key_is_caught_by_the_tokens_of_the_one_it_replaced(
    recent: Timestamped, s3: S3Client, tmp_path: Path
) -> None:
    bucket = recent.archive.bucket
    kept = {
        key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in (recent.token_key(0), recent.token_key(1))
    }
    rebuild_with_the_real_key(recent.archive, s3, tmp_path)
    assert recent.archive.findings() == []  # no signature or link is wrong
    newest = recent.token_key(1).removesuffix(".tsr") + ".txt"
    # The tokens went with the chain: nothing dates the rebuilt one.
    assert recent.verify() == [("timestamp_missing", newest)]
    # Tokens of the chain it replaced (the compliance team kept them, or a
    # lock kept them in the bucket) are over other checkpoints.
    for key, token in kept.items():
        s3.put_object(Bucket=bucket, Key=key, Body=token)
    found = recent.verify()
    assert found == [
        ("timestamp_invalid", recent.token_key(0)),
        ("timestamp_invalid", recent.token_key(1)),
        ("timestamp_missing", newest),
    ]


def test_tokens_long_after_the_hours_they_date_are_late(
    seaweed: SeaweedFS, tmp_path: Path, tsa: LoopbackTSA
) -> None:
    """What a chain rebuilt days later looks like, however it was dated: the
    hours were sealed three days ago, the tokens over them are from now."""
    tsa.mode = ""
    old = timestamped(seaweed, tmp_path, tsa, started_ms=NOW_MS - 72 * HOUR_MS)
    assert old.verify() == [
        ("timestamp_late", old.token_key(0)),
        ("timestamp_late", old.token_key(1)),
    ]
    assert old.verify(timestamp_max_lag=datetime.timedelta(hours=100)) == []


def test_hours_the_tsa_missed_are_dated_by_the_next_token(
    seaweed: SeaweedFS, tmp_path: Path, tsa: LoopbackTSA
) -> None:
    tsa.mode = "error"
    try:
        world = timestamped(seaweed, tmp_path, tsa, started_ms=NOW_MS - 6 * HOUR_MS)
    finally:
        tsa.mode = ""
    newest = world.token_key(1).removesuffix(".tsr") + ".txt"
    assert world.verify() == [("timestamp_missing", newest)]
    world.now[0] = NOW_MS  # the TSA is back: the next seal dates its checkpoint
    assert world.sealer.seal_due()
    assert world.verify() == []
    # That token dates hour 0 (ended 5 to 6 hours before it) as well as its
    # own hour 2 (3 to 4): the lag is the oldest hour's.
    assert world.verify(timestamp_max_lag=datetime.timedelta(hours=4.5)) == [
        ("timestamp_late", world.token_key(2))
    ]


def test_an_hour_whose_checkpoint_is_gone_is_not_dated(recent: Timestamped, s3: S3Client) -> None:
    from tests.integration.conftest import bypass_delete

    checkpoint = recent.token_key(1).removesuffix(".tsr") + ".txt"
    bypass_delete(s3, recent.archive.bucket, checkpoint)
    assert recent.verify() == [
        ("checkpoint_missing", checkpoint),
        ("timestamp_missing", recent.token_key(0).removesuffix(".tsr") + ".txt"),
    ]


def test_the_command_checks_tokens_and_refuses_a_bad_ca_file_in_one_line(
    recent: Timestamped, seaweed: SeaweedFS, tsa: LoopbackTSA, tmp_path: Path
) -> None:
    public = recent.archive.public_key_file(tmp_path)
    (tmp_path / "not.pem").write_text("not a certificate\n")

    def verify(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "msgarchive_server", "verify",
             f"s3://{recent.archive.bucket}/acme", f"--public-key={public}",
             f"--s3-endpoint-url={seaweed.endpoint}", *flags],
            capture_output=True, text=True, env={**seaweed.env}, timeout=300, check=False,
        )  # fmt: skip

    assert verify(f"--tsa-ca={tsa.ca}").returncode == 0
    late = verify(f"--tsa-ca={tsa.ca}", "--timestamp-max-lag=0.5")
    assert late.returncode == 1
    assert late.stdout.startswith("timestamp_late")
    for flag, says in [
        (f"--tsa-ca={tmp_path / 'missing.pem'}", "No such file"),
        (f"--tsa-ca={tmp_path / 'not.pem'}", "not PEM certificates"),
        ("--timestamp-max-lag=-1", "--timestamp-max-lag must be 0 hours or more"),
    ]:
        refused = verify(f"--tsa-ca={tsa.ca}", flag)
        assert refused.returncode == 2
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("msgarchive: error: ")
        assert says in line


def test_a_token_older_than_the_hour_it_dates_is_invalid(
    seaweed: SeaweedFS, tmp_path: Path, tsa: LoopbackTSA
) -> None:
    """A sealer whose clock runs hours ahead seals hours that have not begun:
    a token from now cannot date them."""
    tsa.mode = ""
    ahead = timestamped(seaweed, tmp_path, tsa, started_ms=NOW_MS + 3 * HOUR_MS)
    found = list(Verifier(ahead.archive.store, ahead.archive.key.public_key(),
                          tsa_roots=ahead.roots).run())  # fmt: skip
    # (Copies acked in the future are under-locked too: their retention ends early.)
    dated = [f for f in found if f.kind.startswith("timestamp")]
    assert sorted((f.kind, f.key) for f in dated)[:2] == [
        ("timestamp_invalid", ahead.token_key(0)),
        ("timestamp_invalid", ahead.token_key(1)),
    ]
    assert "is before the hour it seals began" in dated[0].detail
