"""What witnesses and trusted time cost (issue 21).

    .venv/bin/python -m bench.witnessing [--rounds 5] [--seals 20] [--hours 10000]

1. Sealing an hour with two witnesses (tests/witness.py) and a time-stamping
   authority (OpenSSL's, tests/tsa.py), all on loopback, against sealing the
   same hours alone: interleaved rounds, each sealing `--seals` hours with each
   sealer in turn; per round the median seal of each, and the difference.
   Wall time, and CPU: this process's (the sealer and the two witnesses, which
   run in it as threads) and its children's (OpenSSL's `ts -reply`, one a
   token). The store is in memory, the same for both: what differs is the
   witnesses and the TSA alone.
2. `verify` of a `--hours`-hour log (empty hours) whose newest checkpoint both
   witnesses cosigned and the TSA dated, with a trusted checkpoint from its
   start: every head, manifest and checkpoint read and checked, the log
   rebuilt and checked against the trusted checkpoint, the cosignatures and
   the token. Against an in-memory store: verify's own work; a real store adds
   the round trips of four reads an hour (head, manifest, checkpoint, token).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from msgarchive_server.domain.manifests import notes
from msgarchive_server.domain.manifests import verify as verify_module
from msgarchive_server.domain.manifests.headlog import checkpoint_key
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.manifests.sealer import Sealer, hour_keys, origin_of
from msgarchive_server.domain.manifests.timestamps import Timestamper, load_roots
from msgarchive_server.domain.manifests.verify import Verifier
from msgarchive_server.domain.manifests.witnesses import parse_witness
from msgarchive_server.stores import Capability, NoSuchObject, StoredObject, VersionSummary
from tests.tsa import LoopbackTSA
from tests.unit.fakes import FakeStore
from tests.unit.test_manifests import entry
from tests.witness import LoopbackWitness

HOUR_MS = 3600 * 1000


class MemoryStore(FakeStore):
    """FakeStore with one version an object, for verify."""

    capabilities = Capability.basic() | Capability.VERSIONS

    def versions(
        self, prefix: str, page_size: int = 1000, parallel: int = 1
    ) -> Iterator[VersionSummary]:
        for key in sorted(k for k in self.objects if k.startswith(prefix)):
            yield VersionSummary(key, "v1", "", len(self.objects[key]), True, False)

    def get_version(self, key: str, version_id: str) -> StoredObject:
        if key not in self.objects:
            raise NoSuchObject(key)
        return self.get(key)


def cpu() -> tuple[float, float]:
    """(this process's CPU, its children's), seconds."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


class Bench:
    """A sealer with, or without, two witnesses and a TSA."""

    def __init__(self, workdir: Path, name: str, tsa: LoopbackTSA | None) -> None:
        self.store = MemoryStore()
        start = (time.time_ns() // 1_000_000 // HOUR_MS - 100_000) * HOUR_MS
        self.now = [start + 60_000]
        key = Ed25519PrivateKey.generate()
        origin = origin_of(self.store.bucket, self.store.prefix, "bench")
        self.witnesses = (
            [LoopbackWitness(f"witness.test/{n}", origin, key.public_key()) for n in "ab"]
            if tsa
            else []
        )
        self.journal = Journal(workdir / name, writer="w0")
        self.sealer = Sealer(
            self.store, self.journal, Ed25519FileSigner(key), "bench",
            clock_ms=lambda: self.now[0],
            witnesses=[parse_witness(f"{w.url}={w.vkey}") for w in self.witnesses],
            timestamper=Timestamper(tsa.url) if tsa else None,
        )  # fmt: skip
        self.n = 0

    def seal(self) -> tuple[float, float, float]:
        """Seal one hour with one entry: (wall, own CPU, children's CPU) seconds."""
        self.n += 1
        self.journal.append(entry(self.n, self.now[0]))
        self.now[0] += HOUR_MS
        own, children = cpu()
        started = time.perf_counter()
        sealed = self.sealer.seal_due()
        wall = time.perf_counter() - started
        own_after, children_after = cpu()
        assert len(sealed) == 1 or self.n == 1, sealed
        return wall, own_after - own, children_after - children

    def stop(self) -> None:
        self.journal.close()
        for witness in self.witnesses:
            witness.stop()


def seal_rounds(workdir: Path, tsa: LoopbackTSA, rounds: int, seals: int) -> None:
    alone, witnessed = Bench(workdir, "alone", None), Bench(workdir, "witnessed", tsa)
    try:
        for bench in (alone, witnessed):
            bench.seal()  # the chain's first hour (nothing due yet)
            bench.seal()
        added: dict[str, list[float]] = {"wall": [], "own": [], "children": []}
        base: dict[str, list[float]] = {"wall": [], "own": []}
        for number in range(rounds):
            order = (alone, witnessed) if number % 2 == 0 else (witnessed, alone)
            got: dict[int, list[tuple[float, float, float]]] = {id(alone): [], id(witnessed): []}
            for _ in range(seals):
                for bench in order:
                    got[id(bench)].append(bench.seal())
            a, w = got[id(alone)], got[id(witnessed)]
            for i, name in enumerate(("wall", "own", "children")):
                median_a = statistics.median(s[i] for s in a)
                median_w = statistics.median(s[i] for s in w)
                added[name].append(median_w - median_a)
                if name in base:
                    base[name].append(median_a)
            alone_ms = statistics.median(s[0] for s in a) * 1000
            witnessed_ms = statistics.median(s[0] for s in w) * 1000
            print(
                f"  round {number + 1}: seal alone {alone_ms:.1f} ms, "
                f"with 2 witnesses and a TSA {witnessed_ms:.1f} ms"
            )

        def ms(values: list[float]) -> str:
            return (
                f"{statistics.median(values) * 1000:.1f} ms "
                f"({min(values) * 1000:.1f} to {max(values) * 1000:.1f})"
            )

        print(f"seal alone: {ms(base['wall'])} wall, {ms(base['own'])} CPU")
        print(f"added by 2 witnesses and a TSA, median of {rounds} rounds (spread):")
        print(f"  wall {ms(added['wall'])}")
        print(f"  CPU in the sealer's process (with the witnesses) {ms(added['own'])}")
        print(f"  CPU of OpenSSL's TSA (children) {ms(added['children'])}")
    finally:
        alone.stop()
        witnessed.stop()


def verify_log(workdir: Path, tsa: LoopbackTSA, hours: int, rounds: int) -> None:
    store = MemoryStore()
    key = Ed25519PrivateKey.generate()
    origin = origin_of(store.bucket, store.prefix, "bench")
    start = (time.time_ns() // 1_000_000 // HOUR_MS - hours - 1) * HOUR_MS
    now = [start + 60_000]
    journal = Journal(workdir / "long", writer="w0")
    signer = Ed25519FileSigner(key)
    plain = Sealer(store, journal, signer, "bench", clock_ms=lambda: now[0])
    built = time.perf_counter()
    now[0] = start + (hours - 1) * HOUR_MS + 5 * 60_000
    plain.seal_due()
    witnesses = [LoopbackWitness(f"witness.test/{n}", origin, key.public_key()) for n in "ab"]
    try:
        last = Sealer(
            store, journal, signer, "bench", clock_ms=lambda: now[0],
            witnesses=[parse_witness(f"{w.url}={w.vkey}") for w in witnesses],
            timestamper=Timestamper(tsa.url),
        )  # fmt: skip
        now[0] += HOUR_MS
        assert len(last.seal_due()) == 1
    finally:
        for witness in witnesses:
            witness.stop()
        journal.close()
    print(f"built a {hours}-hour log in {time.perf_counter() - built:.1f} s")
    first = datetime.datetime.fromtimestamp(start / 1000, datetime.UTC)
    trusted_at = min(99, hours // 2)  # the checkpoint of 100 heads (or of half the log)
    early = checkpoint_key(hour_keys("", "bench", first + datetime.timedelta(hours=trusted_at))[1])
    trusted = [notes.parse(store.objects[early].decode())]
    keys = [notes.parse_vkey(w.vkey) for w in witnesses]
    roots = load_roots(tsa.ca.read_bytes())
    walls, cpus, logs = [], [], []
    spent = [0.0]

    def timed(method: Any) -> Any:
        def run(*args: Any) -> Any:
            started = time.perf_counter()
            for finding in method(*args):
                spent[0] += time.perf_counter() - started
                yield finding
                started = time.perf_counter()
            spent[0] += time.perf_counter() - started

        return run

    for name in ("head", "end"):
        setattr(verify_module._Log, name, timed(getattr(verify_module._Log, name)))
    for _ in range(rounds):
        spent[0] = 0.0
        verifier = Verifier(
            store, key.public_key(), trusted=trusted, witness_keys=keys, witness_quorum=2,
            tsa_roots=roots, timestamp_max_lag=datetime.timedelta(hours=hours + 10),
        )  # fmt: skip
        own = cpu()[0]
        started = time.perf_counter()
        findings = list(verifier.run())
        walls.append(time.perf_counter() - started)
        cpus.append(cpu()[0] - own)
        logs.append(spent[0])
        assert findings == [], findings[:3]
        assert verifier.progress.heads == hours
    print(
        f"verify of a {hours}-hour log (consistency with a trusted checkpoint, 2 cosignatures, "
        f"a token): {statistics.median(walls):.2f} s wall ({min(walls):.2f} to "
        f"{max(walls):.2f}), {statistics.median(cpus):.2f} s CPU, median of {rounds}; of "
        f"which the log's own checks (checkpoints, consistency, cosignatures, tokens) "
        f"{statistics.median(logs):.2f} s ({min(logs):.2f} to {max(logs):.2f}), the rest "
        "the heads' signatures and the manifests"
    )


def main(argv: list[str] | None = None) -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(prog="python -m bench.witnessing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seals", type=int, default=20, help="seals per sealer per round")
    parser.add_argument("--hours", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        tsa = LoopbackTSA()
        try:
            seal_rounds(Path(workdir), tsa, args.rounds, args.seals)
            verify_log(Path(workdir), tsa, args.hours, max(1, args.rounds // 2))
        finally:
            tsa.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
