"""A manifest as a Parquet file: one row per entry, columns as in entries.py.

`object_lock_retain_until_date` is a UTC timestamp (milliseconds), as in an
S3 Inventory report, so one query compares the two; it is null for a copy
kept without retention. The other times are epoch milliseconds.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from msgarchive_server.domain.manifests.entries import FIELDS, ManifestEntry

SCHEMA = pa.schema(
    [
        ("bucket", pa.string()),
        ("key", pa.string()),
        ("version_id", pa.string()),
        ("size", pa.int64()),
        ("e_tag", pa.string()),
        ("sha256", pa.string()),
        ("message_id", pa.string()),
        ("channel", pa.string()),
        ("campaign_id", pa.string()),
        ("user_hash", pa.string()),
        ("sent_at", pa.int64()),
        ("object_lock_mode", pa.string()),
        ("object_lock_retain_until_date", pa.timestamp("ms", tz="UTC")),
        ("acknowledged_at", pa.int64()),
    ]
)


UNTIL = "object_lock_retain_until_date"


def encode(entries: list[ManifestEntry]) -> bytes:
    columns = {name: [getattr(e, name) for e in entries] for name in SCHEMA.names}
    columns[UNTIL] = [ms or None for ms in columns[UNTIL]]
    table = pa.Table.from_pydict(columns, schema=SCHEMA)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def decode(data: bytes) -> list[ManifestEntry]:
    # ParquetFile, not read_table: read_table goes through pyarrow's dataset
    # layer, twice the time for a small manifest (verify reads one an hour).
    with pq.ParquetFile(pa.BufferReader(data)) as manifest:
        return _entries(manifest.read())


def entries_of(path: Path, batch_rows: int = 8192) -> Iterator[ManifestEntry]:
    """A manifest file's entries in order, read a batch of rows at a time (an
    hour's manifest can hold a hundred thousand)."""
    with pq.ParquetFile(path) as manifest:
        for batch in manifest.iter_batches(batch_size=batch_rows):
            yield from _entries(pa.Table.from_batches([batch]))


def rows(data: bytes, batch_rows: int = 65536) -> Iterator[list[dict[str, Any]]]:
    """A manifest's entries as plain rows, each what `ManifestEntry.as_dict`
    gives, `batch_rows` at a time (verify reads a hundred thousand an hour:
    no object for each, and not all at once)."""
    with pq.ParquetFile(pa.BufferReader(data)) as manifest:
        for batch in manifest.iter_batches(batch_size=batch_rows):
            yield _rows(pa.Table.from_batches([batch]))


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    until = table.column(UNTIL).cast(pa.int64()).to_pylist()
    found: list[dict[str, Any]] = table.select([n for n in FIELDS if n != UNTIL]).to_pylist()
    for row, ms in zip(found, until, strict=True):
        row[UNTIL] = ms or 0
    return found


def _entries(table: pa.Table) -> list[ManifestEntry]:
    return [ManifestEntry.from_dict(row) for row in _rows(table)]
