"""How long `msgarchive verify` takes per 10,000 copies, on SeaweedFS.

    .venv/bin/python -m bench.verify [--copies N]

Archives N copies (16 threads, the journal on), seals their hour into a
signed manifest, then times the verifier: plain (the chain, and the store's
version listing against the manifests), and --deep (every copy downloaded,
re-hashed and parsed). Run on the same two cores as SeaweedFS.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.run import messages
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.manifests.sealer import Sealer
from msgarchive_server.domain.manifests.verify import Verifier
from tests.seaweed import SeaweedFS

HOUR_MS = 3600 * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.verify")
    parser.add_argument("--copies", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        seaweed = SeaweedFS(Path(workdir))
        seaweed.start()
        try:
            store = seaweed.store(seaweed.new_bucket())
            now = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)
            journal = Journal(Path(workdir) / "journal", writer="w0")
            key = Ed25519PrivateKey.generate()
            sealer = Sealer(store, journal, Ed25519FileSigner(key), "bench", clock_ms=lambda: now)
            archiver = Archiver(store, journal=journal, clock_ms=lambda: now)
            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(archiver.archive, messages(args.copies)))
            print(f"archived {args.copies} copies in {time.perf_counter() - started:.1f} s")
            now = (now // HOUR_MS + 1) * HOUR_MS + 5 * 60 * 1000
            sealer.seal_due()
            per = 10_000 / args.copies
            for deep in (False, True):
                verifier = Verifier(store, key.public_key(), deep=deep)
                cpu, started = time.process_time(), time.perf_counter()
                findings = list(verifier.run())
                wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                label = "verify --deep" if deep else "verify"
                print(
                    f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU for {args.copies} copies "
                    f"({wall * per:.1f} s per 10,000); {len(findings)} findings"
                )
                if findings:
                    return 1
        finally:
            seaweed.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
