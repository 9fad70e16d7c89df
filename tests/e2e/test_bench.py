"""A short run of `make bench`, so the benchmark cannot rot (figures are not judged here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SHORT_RUN = ["--rounds", "2", "--messages", "60", "--rss-messages", "200", "--views", "20"]


def test_the_benchmark_runs_and_loses_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", *SHORT_RUN],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for row in (
        "| boto3 put, 1 thread |",
        "| boto3 put, 16 threads |",
        "| Archive, concurrency 1 |",
        "| Archive, concurrency 1, tracing on |",
        "| Archive, concurrency 16 |",
        "| ArchiveStream, window 16 |",
        "| ArchiveStream, window 64 |",
        "| ViewMessage (gRPC) |",
        "| POST /v1/archival/view |",
    ):
        assert row in done.stdout
    assert "Sidecar RSS after 20 archives" in done.stdout
    assert "| run | archives/s | p50 ms | p99 ms | CPU µs/archive: sender |" in done.stdout
    assert "grpcio " in done.stdout  # the versions the figures depend on
    assert "CPU was read thread by thread, to the nanosecond, in " in done.stdout
    for target in (
        "Archive, concurrency 1: sidecar CPU",
        "Archive, concurrency 1: sender + sidecar CPU",
        "Archive, concurrency 16: sidecar CPU",
        "ArchiveStream, window 16: sender + sidecar CPU",
        "Archive, concurrency 1 adds <= 0.3 ms p50",
        "retention + manifests",
        "tracing on",
        "tracing off",
    ):
        assert f"- {target}" in done.stdout
    assert "Every message of every run was acknowledged and is in the store." in done.stdout


def test_the_productions_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.productions", "--rows", "2000", "--copies", "50",
         "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for row in (
        "| recipient |",
        "| campaign count |",
        "| msgarchive export (a process) |",
        "| msgarchive check-production (a process) |",
    ):
        assert row in done.stdout
    assert "| console search page |" in done.stdout
    assert "| console copy page |" in done.stdout
    targets = ("recipient query p50", "campaign count p50", "export", "check-production",
               "export peak RSS", "console search page p50", "console copy page p50")  # fmt: skip
    for target in targets:
        assert f"- {target} " in done.stdout


def test_the_witnessing_span_and_floor_benchmarks_run() -> None:
    for command, says in (
        (["bench.witnessing", "--rounds", "1", "--seals", "2", "--hours", "30"],
         ("added by 2 witnesses and a TSA", "verify of a 30-hour log")),
        (["bench.spans", "--traces", "50", "--rounds", "1"],
         ("1 span a trace:", "4 spans a trace:", "; the calling thread ")),
        (["bench.floor", "--calls", "50", "--rounds", "1"],
         ("| boto3 put |", "| sidecar |", "| gRPC server, nothing else |",
          "| the store's write (S3Store.put) |", "| the same, log level warning |",
          "| the same, log level info, tracing on |")),
    ):  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", *command],
            capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        for line in says:
            assert line in done.stdout, done.stdout
