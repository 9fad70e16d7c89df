"""Prometheus metrics: defined here, in one registry per sidecar (no globals).

Served as Prometheus text on `--metrics-listen` (off by default; see
edge/scrape.py). Labels take only bounded values (channels, outcomes, store
error codes, RPC names), never ids or message content.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Archive latency: sub-millisecond local writes to multi-second retried ones.
_ARCHIVE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BYTES_BUCKETS = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.archive_seconds = Histogram(
            "msgarchive_archive_duration_seconds",
            "Archive calls, from receipt to answer, by channel and outcome.",
            ["channel", "outcome"],
            buckets=_ARCHIVE_BUCKETS,
            registry=r,
        )
        self.store_seconds = Histogram(
            "msgarchive_store_write_duration_seconds",
            "One store write attempt, by result.",
            ["result"],
            buckets=_ARCHIVE_BUCKETS,
            registry=r,
        )
        self.store_attempts = Counter(
            "msgarchive_store_attempts",
            "Store write attempts, by result: ok, or the error kind.",
            ["result"],
            registry=r,
        )
        self.failures = Counter(
            "msgarchive_archive_failures",
            "Archive calls answered with an error, by ErrorInfo reason and last store error.",
            ["reason", "store_error"],
            registry=r,
        )
        self.json_bytes = Histogram(
            "msgarchive_archive_json_bytes",
            "Size of each rendered JSON copy, before compression.",
            ["channel"],
            buckets=_BYTES_BUCKETS,
            registry=r,
        )
        self.stored_bytes = Histogram(
            "msgarchive_archive_stored_bytes",
            "Size of each stored copy, after LZ4 compression.",
            ["channel"],
            buckets=_BYTES_BUCKETS,
            registry=r,
        )
        # The gauges' modes say how --workers' processes add up.
        self.in_flight = Gauge(
            "msgarchive_archives_in_flight",
            "Archive calls being served now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "msgarchive_archives_rejected",
            "Archive calls refused at once because --max-in-flight were being served.",
            registry=r,
        )
        self.store_available = Gauge(
            "msgarchive_store_available",
            "1 while the store takes writes, 0 while its circuit is open.",
            ["bucket"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.journal_full = Gauge(
            "msgarchive_journal_full",
            "1 while the manifest journal's disk has no room (archives are refused), else 0.",
            ["bucket"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.streams_open = Gauge(
            "msgarchive_streams_open",
            "ArchiveStream and reflection calls open now (each holds a server thread).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.streams_refused = Counter(
            "msgarchive_streams_refused",
            "Streams refused at their start: --max-streams (total) or "
            "--max-streams-per-peer (peer) were open.",
            ["limit"],
            registry=r,
        )
        self.reads = Counter(
            "msgarchive_reads", "Read calls, by RPC and status code.", ["rpc", "code"], registry=r
        )
        self.witness_answers = Counter(
            "msgarchive_witness_answers",
            "Checkpoints submitted to each witness (--witness), by result: cosigned, or "
            "refused (any answer but a cosignature, or none).",
            ["witness", "result"],
            registry=r,
        )
        self.timestamp_answers = Counter(
            "msgarchive_timestamp_answers",
            "Checkpoints sent to the time-stamping authority (--timestamp-url), by result: "
            "stamped (a token that checks, stored), or refused (any other answer, or none).",
            ["result"],
            registry=r,
        )
        # Children by label values: an archive records several metrics, and
        # prometheus_client's labels() validates and locks on every call.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def archive_answered(self, channel: str, outcome: str, seconds: float) -> None:
        self._child(self.archive_seconds, channel, outcome).observe(seconds)

    def archive_failed(self, reason: str, store_error: str) -> None:
        self._child(self.failures, reason, store_error).inc()

    def witness_configured(self, witness: str) -> None:
        """Export a configured witness's counts from the start, at 0."""
        for result in ("cosigned", "refused"):
            self._child(self.witness_answers, witness, result)

    def witness_answered(self, witness: str, cosigned: bool) -> None:
        self._child(self.witness_answers, witness, "cosigned" if cosigned else "refused").inc()

    def timestamp_configured(self) -> None:
        """Export the time-stamping authority's counts from the start, at 0."""
        for result in ("stamped", "refused"):
            self._child(self.timestamp_answers, result)

    def timestamp_answered(self, stamped: bool) -> None:
        self._child(self.timestamp_answers, "stamped" if stamped else "refused").inc()

    def stream_refused(self, limit: str) -> None:
        self._child(self.streams_refused, limit).inc()

    def store_attempt(self, result: str, seconds: float) -> None:
        self._child(self.store_attempts, result).inc()
        self._child(self.store_seconds, result).observe(seconds)

    def copy_stored(self, channel: str, json_bytes: int, stored_bytes: int) -> None:
        self._child(self.json_bytes, channel).observe(json_bytes)
        self._child(self.stored_bytes, channel).observe(stored_bytes)
