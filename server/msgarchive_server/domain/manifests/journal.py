"""The journal: each acknowledged copy's manifest entry, on local disk before the ack.

Why a local journal rather than rebuilding an hour from the store at startup:
the store cannot say which copies were acknowledged (a copy can be stored and
its ack lost; a listing by key is no listing by hour, and at millions of
copies an hour it would be read again at every start). The journal records
exactly what was acknowledged, at the cost of one memory copy per archive.

Entries go to one file per UTC hour and journal (each process has its own,
and the sealer reads them all): `<dir>/<yyyymmddhh>.<writer>.jsonl`, one JSON
line each, zero-padded past the last. The file is memory-mapped shared, so a
line copied into it is in the kernel's page cache at once: it survives the
process being killed (kill -9) and restarted on the same disk, with no
system call per archive (a write(2) per ack cost 40 µs of CPU under 16
threads, contending for the GIL). It does not survive the machine losing power
before the kernel writes the pages back; a copy acknowledged then is reported
by `msgarchive verify` as an object no manifest lists, never hidden. An entry
is never added to an hour already sealed: it goes to the first hour that is
not.
"""

from __future__ import annotations

import datetime
import json
import mmap
import os
import secrets
import threading
from pathlib import Path

from msgarchive_server.domain.manifests.entries import ManifestEntry

HOUR_FORMAT = "%Y%m%d%H"
HOUR_MS = 3600 * 1000
# A journal file grows by this much at a time (sparse until written).
SEGMENT_BYTES = 8 * 1024 * 1024


def hour_of(epoch_ms: int) -> datetime.datetime:
    """The UTC hour an instant falls in."""
    instant = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC)
    return instant.replace(minute=0, second=0, microsecond=0)


class _Segment:
    """One hour's file of one journal, mapped shared; lines are appended at `end`."""

    def __init__(self, path: Path, hour: datetime.datetime) -> None:
        self.hour = hour
        self.start_ms = int(hour.timestamp() * 1000)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(self.fd, SEGMENT_BYTES)
        self.map = mmap.mmap(self.fd, SEGMENT_BYTES)
        self.end = 0

    def append(self, data: bytes) -> None:
        if self.end + len(data) > len(self.map):
            size = max(len(self.map) * 2, self.end + len(data))
            os.ftruncate(self.fd, size)
            self.map.resize(size)
        self.map[self.end : self.end + len(data)] = data
        self.end += len(data)

    def close(self) -> None:
        self.map.close()
        os.ftruncate(self.fd, self.end)  # drop the padding: readers see the lines alone
        os.close(self.fd)


class Journal:
    def __init__(self, directory: Path, writer: str) -> None:
        self.directory = directory
        # A name of this process's own: a restarted process never appends to
        # (or scans the end of) a file an earlier one left.
        self.writer = f"{writer}-{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._segment: _Segment | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.sealed_until = self._read_sealed()  # the last sealed hour, or None

    def append(self, entry: ManifestEntry) -> datetime.datetime:
        """Record `entry` (raises OSError if it cannot be); the hour it went to."""
        data = entry.journal_line()
        at = entry.acknowledged_at
        with self._lock:
            segment = self._segment
            if segment is None or not segment.start_ms <= at < segment.start_ms + HOUR_MS:
                segment = self._open(hour_of(at))
            segment.append(data)
            return segment.hour

    def hours(self) -> list[datetime.datetime]:
        """The hours that have entries, from any journal, oldest first."""
        found = set()
        for path in self.directory.glob("*.jsonl"):
            stamp = path.name.split(".", 1)[0]
            found.add(datetime.datetime.strptime(stamp, HOUR_FORMAT).replace(tzinfo=datetime.UTC))
        return sorted(found)

    def entries_through(self, hour: datetime.datetime) -> list[ManifestEntry]:
        """Every journal's entries for `hour`, and any left in files of earlier
        hours (late ones), by key and version, each copy once. A partial last
        line, from a copy cut short by a crash (its ack was never given), and
        the zero padding are left out."""
        first: dict[tuple[str, str], ManifestEntry] = {}
        for path in self._files_through(hour):
            for line in path.read_bytes().split(b"\n"):
                line = line.strip(b"\0")
                if not line:
                    continue
                try:
                    entry = ManifestEntry.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue
                # A copy acked again (a retried archive) is listed once, as first acked.
                seen = first.get((entry.key, entry.version_id))
                if seen is None or entry.acknowledged_at < seen.acknowledged_at:
                    first[(entry.key, entry.version_id)] = entry
        return sorted(first.values(), key=lambda e: (e.key, e.version_id))

    def mark_sealed(self, hour: datetime.datetime) -> None:
        """Record that every hour through `hour` is sealed, and drop their files."""
        with self._lock:
            self.sealed_until = hour
            state = self.directory / "sealed"
            tmp = state.with_suffix(".tmp")
            tmp.write_text(f"{hour:{HOUR_FORMAT}}\n")
            os.replace(tmp, state)
            if self._segment is not None and self._segment.hour <= hour:
                self._segment.close()
                self._segment = None
        for path in self._files_through(hour):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._segment is not None:
                self._segment.close()
                self._segment = None

    def _open(self, hour: datetime.datetime) -> _Segment:
        """The segment an entry of `hour` goes to (the lock held)."""
        if self._segment is not None:
            self._segment.close()
            self._segment = None
        # A new hour: another process (the sealer) may have sealed hours since.
        self.sealed_until = self._read_sealed()
        if self.sealed_until is not None and hour <= self.sealed_until:
            hour = self.sealed_until + datetime.timedelta(hours=1)  # a late entry
        path = self.directory / f"{hour:{HOUR_FORMAT}}.{self.writer}.jsonl"
        self._segment = _Segment(path, hour)
        return self._segment

    def _files_through(self, hour: datetime.datetime) -> list[Path]:
        last = f"{hour:{HOUR_FORMAT}}"
        return sorted(p for p in self.directory.glob("*.jsonl") if p.name[:10] <= last)

    def _read_sealed(self) -> datetime.datetime | None:
        try:
            stamp = (self.directory / "sealed").read_text().strip()
        except FileNotFoundError:
            return None
        return datetime.datetime.strptime(stamp, HOUR_FORMAT).replace(tzinfo=datetime.UTC)
