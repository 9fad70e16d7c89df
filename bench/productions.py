"""Search, export and check-production at scale, on SeaweedFS (part of `make bench`).

    .venv/bin/python -m bench.productions [--rows N] [--copies N] [--rounds N]

1. Search: N manifest rows (default 1,000,000; 20,000 recipients, 50
   campaigns, the four channels, over 30 days), journaled and sealed into
   signed hourly manifests by the project's own sealer, then searched in
   process (manifests mirrored and loaded once, as the CLI does): a recipient
   query and a campaign count, in interleaved rounds with a baseline, the bare
   filter on the user hash over the same table (no duplicates dropped, no
   holds, no other filters: the scan no search can avoid).
2. Export: N real copies (default 10,000) archived to SeaweedFS and sealed,
   then exported by `msgarchive export` (a process of its own) in rounds
   interleaved with a baseline, the same copies read one by one with boto3
   (the floor of any export: every copy must be read). Then
   `check-production` of the production, against a baseline that hashes
   every file of it. Copies/s, CPU per copy of each process, and the
   export's peak RSS at a tenth of the copies and at all of them.

Targets (issue 19): recipient query <= 300 ms p50, campaign count <= 1 s,
export >= 500 copies/s, check-production >= 2,000 items/s, export RSS at N
within 10% of at N/10.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.run import cpu_seconds, messages
from msgarchive.keys import archive_key
from msgarchive_server.domain.archive import Archiver
from msgarchive_server.domain.manifests.entries import ManifestEntry
from msgarchive_server.domain.manifests.heads import Ed25519FileSigner, new_key_pem
from msgarchive_server.domain.manifests.journal import Journal
from msgarchive_server.domain.manifests.sealer import Sealer
from msgarchive_server.domain.reads import Reader
from msgarchive_server.domain.search import Search, SearchQuery, recipient_hashes
from msgarchive_server.stores import Store
from tests.seaweed import SeaweedFS

HOUR_MS = 3600 * 1000
CHANNELS = ("push", "email", "sms", "whatsapp")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


# --- search -----------------------------------------------------------------------


def number(n: int) -> str:
    return f"+1 555 01{n:05d}"


def sealed_rows(store: Store, workdir: Path, rows: int, key: Ed25519PrivateKey) -> None:
    """`rows` manifest entries, journaled and sealed by the project's sealer."""
    rng = random.Random(19)  # noqa: S311 (bench data)
    start = (int(time.time() * 1000) // HOUR_MS - 24 * 30 - 1) * HOUR_MS
    now = start
    journal = Journal(workdir / "journal", writer="bench")
    sealer = Sealer(store, journal, Ed25519FileSigner(key), "bench", clock_ms=lambda: now)
    hashes = [recipient_hashes(number(n), "sms")[0] for n in range(20_000)]
    step = 24 * 30 * HOUR_MS // rows
    for n in range(rows):
        at = start + n * step
        channel = CHANNELS[n % 4]
        campaign = f"c-{rng.randrange(50)}"
        user = hashes[rng.randrange(len(hashes))]
        message_id = hashlib.sha256(str(n).encode()).hexdigest()
        month = datetime.datetime.fromtimestamp(at / 1000, datetime.UTC).strftime("%Y%m")
        entry = ManifestEntry(
            bucket=store.bucket, key=archive_key(channel, month, campaign, user, message_id),
            version_id=f"v{n}", size=400, e_tag="e" * 32, sha256=message_id,
            message_id=message_id, channel=channel, campaign_id=campaign, user_hash=user,
            sent_at=at, object_lock_mode="", object_lock_retain_until_date=0, acknowledged_at=at,
        )  # fmt: skip
        journal.append(entry)
    now = start + 24 * 30 * HOUR_MS + 2 * HOUR_MS
    sealer.seal_due()
    journal.close()


def search_rounds(store: Store, cache: Path, rounds: int, log: Callable[[str], None]) -> None:
    searcher = Search(store, cache)
    started = time.perf_counter()
    searcher.prepare(SearchQuery())
    log(f"manifests mirrored and opened in {time.perf_counter() - started:.1f} s")
    db = searcher._connect()  # the same connection the searches use
    times: dict[str, list[float]] = {
        "baseline": [], "recipient": [], "campaign count": [], "console search page": [],
    }  # fmt: skip
    found = counted = 0
    rng = random.Random(7)  # noqa: S311 (bench data)
    for _ in range(rounds):
        for _query in range(10):
            person = number(rng.randrange(20_000))
            started = time.perf_counter()
            bare = "SELECT key FROM manifests WHERE user_hash = ? ORDER BY sent_at LIMIT 100"
            db.execute(bare, [recipient_hashes(person, "sms")[0]]).fetchall()
            times["baseline"].append(time.perf_counter() - started)
            started = time.perf_counter()
            page = searcher.find(SearchQuery(recipient=person))
            times["recipient"].append(time.perf_counter() - started)
            found += len(page.items)
            started = time.perf_counter()
            totals = searcher.count(SearchQuery(campaign_id=f"c-{rng.randrange(50)}"))
            times["campaign count"].append(time.perf_counter() - started)
            counted += sum(n for _, _, n in totals)
    searcher.close()
    console_search_rounds(store, cache, rounds, times)
    print(f"\nSearch over {len(searcher.manifests)} manifests ({rounds * 10} queries of each kind, "
          f"{found} copies found, {counted} counted):\n")  # fmt: skip
    print("| query | p50 ms | p99 ms | ratio to the baseline (p50) |")
    print("|---|---|---|---|")
    base = statistics.median(times["baseline"])
    for name, values in times.items():
        p99 = statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]
        print(
            f"| {name} | {statistics.median(values) * 1000:.0f} | {p99 * 1000:.0f} | "
            f"{statistics.median(values) / base:.2f}x |"
        )
    recipient = statistics.median(times["recipient"])
    campaign = statistics.median(times["campaign count"])
    print(f"\n- recipient query p50 {recipient * 1000:.0f} ms (target <= 300): "
          f"{'met' if recipient <= 0.3 else 'MISSED'}")  # fmt: skip
    print(f"- campaign count p50 {campaign * 1000:.0f} ms (target <= 1000): "
          f"{'met' if campaign <= 1.0 else 'MISSED'}")  # fmt: skip
    shown = statistics.median(times["console search page"])
    print(f"- console search page p50 {shown * 1000:.0f} ms of server time (target <= 500): "
          f"{'met' if shown <= 0.5 else 'MISSED'}")  # fmt: skip


# --- the console's pages ---------------------------------------------------------------


def console_app(store: Store, cache: Path, manifest_key: bytes | None) -> Any:
    """The console's WSGI app over `store`, as `msgarchive console` builds it
    (no accounts: this machine's user)."""
    from msgarchive_server.edge.console.app import Archive, Console, ConsoleSettings

    archive = Archive("-", store, lambda: Search(store, cache), refresh_s=3600.0)
    settings = ConsoleSettings(manifest_key=manifest_key)
    return Console({"-": archive}, None, settings, cache / "console-work")


def server_time(app: Any, path: str, **query: str) -> float:
    """Seconds the app takes to answer one GET (the server's own time: no socket)."""
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": urlencode(query),
        "REMOTE_ADDR": "127.0.0.1", "wsgi.input": io.BytesIO(),
    }  # fmt: skip
    answered: list[str] = []
    started = time.perf_counter()
    body = b"".join(app(environ, lambda status, headers: answered.append(status)))
    took = time.perf_counter() - started
    if not answered[0].startswith("200") or not body:
        raise RuntimeError(f"GET {path} answered {answered[0]}")
    return took


def console_search_rounds(
    store: Store, cache: Path, rounds: int, times: dict[str, list[float]]
) -> None:
    """The console's search page for a recipient (results and totals, rendered)."""
    app = console_app(store, cache, None)
    rng = random.Random(11)  # noqa: S311 (bench data)
    server_time(app, "/search")  # opens the search (its DuckDB table) once
    for _ in range(rounds * 10):
        person = number(rng.randrange(20_000))
        times["console search page"].append(server_time(app, "/search", recipient=person))


def console_copy_rounds(
    store: Store, cache: Path, keys: list[str], manifest_key: bytes, rounds: int
) -> None:
    """The console's copy page (the copy read, described, proven against its
    manifest and head) against the bare read of the copy."""
    app = console_app(store, cache, manifest_key)
    reader = Reader(store)
    server_time(app, "/search")
    times: dict[str, list[float]] = {"baseline: the copy read": [], "console copy page": []}
    rng = random.Random(13)  # noqa: S311 (bench data)
    for _ in range(rounds * 10):
        key = keys[rng.randrange(len(keys))]
        started = time.perf_counter()
        reader.get(key)
        times["baseline: the copy read"].append(time.perf_counter() - started)
        times["console copy page"].append(server_time(app, "/copy", key=key))
    print(f"\nThe console's copy page, {rounds * 10} copies of {len(keys)}, interleaved with "
          "their bare reads (server time):\n")  # fmt: skip
    print("| run | p50 ms | p99 ms |")
    print("|---|---|---|")
    for name, values in times.items():
        p99 = statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]
        print(f"| {name} | {statistics.median(values) * 1000:.1f} | {p99 * 1000:.1f} |")
    shown = statistics.median(times["console copy page"])
    print(f"\n- console copy page p50 {shown * 1000:.0f} ms of server time (target <= 100): "
          f"{'met' if shown <= 0.1 else 'MISSED'}")  # fmt: skip


# --- export and check ----------------------------------------------------------------


def run_child(args: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Run a process to its end: (wall s, CPU s, peak RSS bytes, stderr). The
    peak comes from bench.maxrss, a small launcher: this process's own size
    would count in a child forked from it (see bench/maxrss.py)."""
    started = time.perf_counter()
    child = subprocess.Popen(  # noqa: S603 (this interpreter, the bench's own arguments)
        [sys.executable, "-m", "bench.maxrss", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stderr is not None
    stderr = child.stderr.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"{args[3]} exited {child.returncode}: {stderr}")
    lines = stderr.rstrip().splitlines()
    peak = int(lines[-1].removeprefix("maxrss_bytes=")) if lines else 0
    # CPU: the command's and the launcher's (children's usage is summed on wait).
    return wall, usage.ru_utime + usage.ru_stime, peak, "\n".join(lines[:-1])


def export_rounds(
    seaweed: SeaweedFS, workdir: Path, copies: int, rounds: int, log: Callable[[str], None]
) -> None:
    bucket = seaweed.new_bucket()
    store = seaweed.store(bucket)
    key = Ed25519PrivateKey.generate()
    now = int(time.time() * 1000)
    journal = Journal(workdir / "export-journal", writer="w0")
    sealer = Sealer(store, journal, Ed25519FileSigner(key), "bench", clock_ms=lambda: now)
    archiver = Archiver(store, journal=journal, clock_ms=lambda: now)
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        located = list(pool.map(archiver.archive, messages(copies)))
    log(f"archived {copies} copies in {time.perf_counter() - started:.1f} s")
    now = (now // HOUR_MS + 1) * HOUR_MS + 5 * 60 * 1000
    sealer.seal_due()
    keys = [(a.key, a.version_id) for a in located]
    producer, public = workdir / "producer.pem", workdir / "producer.pub"
    private_pem, public_pem = new_key_pem()
    producer.write_bytes(private_pem)
    producer.chmod(0o600)
    public.write_bytes(public_pem)
    manifest_public = workdir / "manifests.pub"
    manifest_public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    env = {**os.environ, **seaweed.env}
    tool = [sys.executable, "-m", "msgarchive_server"]
    flags = [
        f"--store=s3://{bucket}", f"--s3-endpoint-url={seaweed.endpoint}",
        f"--cache-dir={workdir / 'export-cache'}", f"--signing-key={producer}",
    ]  # fmt: skip
    client = seaweed.client()
    figures: dict[str, list[float]] = {k: [] for k in ("read", "export", "hash", "check")}
    cpu: dict[str, list[float]] = {k: [] for k in figures}
    store_cpu: dict[str, list[float]] = {k: [] for k in ("read", "export")}
    weed = seaweed.process.pid if seaweed.process else 0
    production = workdir / "production"
    peak = 0
    for n in range(rounds):
        for mode in ("read", "export"):
            weed_before = cpu_seconds(weed)
            if mode == "read":
                started, cpu_before = time.perf_counter(), time.process_time()
                for copy_key, version in keys:
                    client.get_object(Bucket=bucket, Key=copy_key, VersionId=version)["Body"].read()
                wall, used = time.perf_counter() - started, time.process_time() - cpu_before
            else:
                out = workdir / f"production-{n}"
                wall, used, peak, _ = run_child([*tool, "export", str(out), *flags], env)
                if n == 0:
                    out.rename(production)
            figures[mode].append(copies / wall)
            cpu[mode].append(used / copies * 1e6)
            store_cpu[mode].append((cpu_seconds(weed) - weed_before) / copies * 1e6)
        for mode in ("hash", "check"):
            if mode == "hash":
                started, cpu_before = time.perf_counter(), time.process_time()
                for path in sorted(production.rglob("*")):
                    if path.is_file():
                        hashlib.sha256(path.read_bytes()).hexdigest()
                wall, used = time.perf_counter() - started, time.process_time() - cpu_before
            else:
                wall, used, _, _ = run_child(
                    [*tool, "check-production", str(production), f"--public-key={public}",
                     f"--manifest-key={manifest_public}"], env,
                )  # fmt: skip
            figures[mode].append(copies / wall)
            cpu[mode].append(used / copies * 1e6)
        log(f"export round {n + 1} of {rounds} done")
    small_out = workdir / "production-tenth"
    keys_file = workdir / "tenth.keys"
    keys_file.write_text("\n".join(k for k, _ in keys[: copies // 10]) + "\n")
    _, _, small_peak, _ = run_child(
        [*tool, "export", str(small_out), *flags, f"--keys={keys_file}"], env
    )
    print(f"\nExport of {copies} copies, {rounds} rounds interleaved with their baselines "
          "(median, min-max):\n")  # fmt: skip
    print(
        "| run | copies/s | CPU µs per copy (this process or the child) | store CPU µs per copy |"
    )
    print("|---|---|---|---|")
    labels = {
        "read": "baseline: boto3 reads every copy, one by one",
        "export": "msgarchive export (a process)",
        "hash": "baseline: SHA-256 of every file of the production",
        "check": "msgarchive check-production (a process)",
    }
    for mode, label in labels.items():
        stored = spread(store_cpu[mode]) if mode in store_cpu else "-"
        print(f"| {label} | {spread(figures[mode])} | {spread(cpu[mode])} | {stored} |")
    export_rate = statistics.median(figures["export"])
    check_rate = statistics.median(figures["check"])
    ratio = statistics.median(
        e / r for e, r in zip(figures["export"], figures["read"], strict=True)
    )
    print(f"\n- export {export_rate:.0f} copies/s, {ratio:.2f}x the bare reads' rate "
          f"(target >= 500/s): {'met' if export_rate >= 500 else 'MISSED'}")  # fmt: skip
    print(f"- check-production {check_rate:.0f} items/s (target >= 2000/s): "
          f"{'met' if check_rate >= 2000 else 'MISSED'}")  # fmt: skip
    console_copy_rounds(
        store, workdir / "console-cache", [k for k, _ in keys], manifest_public.read_bytes(), rounds
    )
    growth = peak / small_peak
    print(f"- export peak RSS {small_peak / 2**20:.0f} MiB at {copies // 10} copies, "
          f"{peak / 2**20:.0f} MiB at {copies} ({growth:.2f}x; target <= 1.10x): "
          f"{'met' if growth <= 1.10 else 'MISSED'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.productions")
    parser.add_argument("--rows", type=int, default=1_000_000, help="manifest rows searched")
    parser.add_argument("--copies", type=int, default=10_000, help="copies exported")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    # The sealer's line per hour would bury the tables (stdout is the report).
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        seaweed = SeaweedFS(workdir)
        seaweed.start()
        try:
            if args.rows:
                store = seaweed.store(seaweed.new_bucket())
                started = time.perf_counter()
                sealed_rows(store, workdir, args.rows, Ed25519PrivateKey.generate())
                took = time.perf_counter() - started
                log(f"{args.rows} rows journaled and sealed in {took:.0f} s")
                search_rounds(store, workdir / "search-cache", args.rounds, log)
            if args.copies:
                export_rounds(seaweed, workdir, args.copies, args.rounds, log)
        finally:
            seaweed.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
