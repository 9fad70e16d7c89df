"""The sealer asks witnesses to cosign each checkpoint (C2SP tlog-witness),
over HTTP on loopback, to a witness written apart from it (tests/witness.py):
cosignatures kept beside the checkpoint, refusals reported and retried at the
next seal from the size each witness last cosigned, and sealing never held up."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from msgarchive_server.domain.manifests import notes
from msgarchive_server.domain.manifests.headlog import checkpoint_key
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.manifests.sealer import Sealer, hour_keys, origin_of
from msgarchive_server.domain.manifests.witnesses import (
    Witnesses,
    cosigned_key,
    http_post,
    parse_witness,
)
from tests.unit.fakes import FakeStore
from tests.unit.test_manifests import H0_MS, HOUR_MS, Clock, entry
from tests.witness import LoopbackWitness

H0 = datetime.datetime.fromtimestamp(H0_MS / 1000, datetime.UTC)


class World:
    def __init__(self, tmp_path: Path, names: list[str], timeout: float = 5.0) -> None:
        self.store = FakeStore()
        self.clock = Clock(H0_MS + 60_000)
        self.key = Ed25519PrivateKey.generate()
        self.origin = origin_of(self.store.bucket, self.store.prefix, "pod-1")
        public = self.key.public_key()
        self.witnesses = [LoopbackWitness(name, self.origin, public) for name in names]
        configured = [parse_witness(f"{w.url}={w.vkey}") for w in self.witnesses]
        self.journal = Journal(tmp_path / "journal", writer="w1")
        self.answers: list[tuple[str, bool]] = []
        self.sealer = Sealer(
            self.store, self.journal, Ed25519FileSigner(self.key), "pod-1",
            clock_ms=self.clock, witnesses=configured,
            post=lambda url, body, _: http_post(url, body, timeout),
            on_witness=lambda name, cosigned: self.answers.append((name, cosigned)),
        )  # fmt: skip

    def seal_hours(self, count: int) -> None:
        for _ in range(count):
            self.journal.append(entry(self.clock.ms, self.clock.ms))
            self.clock.ms += HOUR_MS
            self.sealer.seal_due()

    def cosigned(self, hour: int) -> notes.Note | None:
        head = hour_keys(self.store.prefix, "pod-1", H0 + datetime.timedelta(hours=hour))[1]
        data = self.store.objects.get(cosigned_key(checkpoint_key(head)))
        return notes.parse(data.decode()) if data else None

    def cosigners(self, hour: int) -> list[str]:
        note = self.cosigned(hour)
        if note is None:
            return []
        found = []
        for witness in self.witnesses:
            if notes.verified(note, notes.parse_vkey(witness.vkey)) is not None:
                found.append(witness.name)
        return found

    def stop(self) -> None:
        for witness in self.witnesses:
            witness.stop()


@pytest.fixture
def two(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path, ["witness.test/a", "witness.test/b"])
    yield world
    world.stop()


def test_each_checkpoint_is_cosigned_by_every_witness_and_kept(two: World) -> None:
    two.seal_hours(4)
    for hour in range(3):  # the fourth hour is not over yet
        assert two.cosigners(hour) == ["witness.test/a", "witness.test/b"]
        note = two.cosigned(hour)
        assert note is not None
        assert notes.checkpoint_of(note).size == hour + 1
    assert [w.latest[0] for w in two.witnesses] == [3, 3]
    # Each after the first came with a consistency proof the witness checked.
    assert two.witnesses[0].requests == ["200", "200", "200"]


def test_a_witness_that_refuses_is_reported_and_caught_up_at_the_next_seal(two: World) -> None:
    a, b = two.witnesses
    a.mode = "forbidden"
    with capture_logs() as logs:
        two.seal_hours(2)
    assert two.cosigners(0) == ["witness.test/b"]
    refused = [line for line in logs if line["event"] == "witness refused"]
    assert refused
    assert refused[0]["witness"] == "witness.test/a"
    assert refused[0]["why"].startswith("403: not a log this witness follows")
    # What the metric counts: one hour sealed, a refused it, b cosigned it.
    assert sorted(two.answers) == [("witness.test/a", False), ("witness.test/b", True)]
    a.mode = "ok"
    two.seal_hours(1)  # seals hour 1: a gets size 2 from 0, b from 1
    assert two.cosigners(1) == ["witness.test/a", "witness.test/b"]
    assert a.latest[0] == b.latest[0] == 2


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("unprocessable", "422: the consistency proof does not verify"),
        ("garbage", "200, but not a cosignature of its key"),
        ("another tree", "409: it has cosigned another tree"),
    ],
)
def test_each_refusal_is_named(two: World, mode: str, why: str) -> None:
    two.seal_hours(2)  # both have cosigned size 1
    two.witnesses[0].mode = mode
    with capture_logs() as logs:
        two.seal_hours(1)
    refused = [line for line in logs if line["event"] == "witness refused"]
    assert [line["why"][: len(why)] for line in refused] == [why]
    assert two.cosigners(1) == ["witness.test/b"]


def test_a_witness_that_lost_its_place_is_resent_from_the_size_it_names(two: World) -> None:
    two.seal_hours(3)  # both at size 2
    witnesses = Witnesses([], two.journal.directory / "witnesses.json")
    assert witnesses.sizes == {"witness.test/a": 2, "witness.test/b": 2}
    (two.journal.directory / "witnesses.json").unlink()  # the sealer's record is gone
    two.sealer.witnesses.sizes = {}  # type: ignore[union-attr]
    two.seal_hours(1)
    assert two.witnesses[0].requests[-2:] == ["409", "200"]  # old 0, then old 2
    assert two.cosigners(2) == ["witness.test/a", "witness.test/b"]


def test_a_witness_that_does_not_answer_holds_up_no_seal(tmp_path: Path) -> None:
    world = World(tmp_path, ["witness.test/slow", "witness.test/b"], timeout=0.5)
    world.witnesses[0].mode = "slow"
    try:
        with capture_logs() as logs:
            world.seal_hours(2)
        refused = [line for line in logs if line["event"] == "witness refused"]
        assert refused[0]["why"].startswith("did not answer")
        assert world.cosigners(0) == ["witness.test/b"]
        head = hour_keys(world.store.prefix, "pod-1", H0)[1]
        assert head in world.store.objects  # sealed all the same
    finally:
        world.stop()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("witness.test/a+00000000+AQ==", "URL=VKEY"),
        ("ftp://w=witness.test/a+00000000+AQ==", "URL=VKEY"),
        ("http://w=nonsense", "not a verifier key"),
    ],
)
def test_a_bad_witness_setting_is_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_witness(text)


def test_witness_flags_repeat_and_the_variable_separates_them_by_spaces() -> None:
    from msgarchive_server.process.config import ConfigError, parse_settings

    a = (
        "http://127.0.0.1:1=witness.test/a+"
        + notes.key_id("witness.test/a", notes.COSIGNATURE_V1, bytes(32)).hex()
        + "+"
        + "BA"
        + "A" * 42
        + "="
    )
    flags = ["--manifests-dir=/tmp/m", "--manifest-signing-key=/tmp/k"]
    one = parse_settings([*flags, f"--witness={a}", f"--witness={a.replace(':1=', ':2=')}"], {})
    assert [w.url for w in one.witnesses] == ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    env = parse_settings(flags, {"MSGARCHIVE_WITNESS": f"{a} {a}"})
    assert len(env.witnesses) == 2
    with pytest.raises(ConfigError, match="--witness needs --manifests-dir"):
        parse_settings([f"--witness={a}"], {})
    with pytest.raises(ConfigError, match=r"--witness .*URL=VKEY"):
        parse_settings([*flags, "--witness=nonsense"], {})
