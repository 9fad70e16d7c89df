"""The journal: each acknowledged copy's manifest entry, on local disk before the ack.

Why a local journal rather than rebuilding an hour from the store at startup:
the store cannot say which copies were acknowledged (a copy can be stored and
its ack lost; a listing by key is no listing by hour, and at millions of
copies an hour it would be read again at every start). The journal records
exactly what was acknowledged, in the order it was, at the cost of one
append per archive.

Entries go to one file per UTC hour and writer (a --workers worker writes
its own; the sealer reads them all): `<dir>/<yyyymmddhh>.<writer>.jsonl`, one
JSON line each, appended with a single write(2) on an O_APPEND descriptor.
That survives the process being killed (kill -9) and restarted on the same
disk: the kernel has the bytes once write(2) returns. It does not survive the
machine losing power before the kernel flushes them; a copy acknowledged then
is reported by `msgarchive verify` as an object no manifest lists, never
hidden. An entry is never added to an hour already sealed: it goes to the
first hour that is not.
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from dataclasses import asdict
from pathlib import Path

from msgarchive_server.domain.manifests.entries import ManifestEntry

HOUR_FORMAT = "%Y%m%d%H"


def hour_of(epoch_ms: int) -> datetime.datetime:
    """The UTC hour an instant falls in."""
    instant = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC)
    return instant.replace(minute=0, second=0, microsecond=0)


class Journal:
    def __init__(self, directory: Path, writer: str) -> None:
        self.directory = directory
        self.writer = writer
        self._lock = threading.Lock()
        self._open: tuple[datetime.datetime, int] | None = None  # hour, descriptor
        directory.mkdir(parents=True, exist_ok=True)
        self.sealed_until = self._read_sealed()  # the last sealed hour, or None

    def append(self, entry: ManifestEntry) -> datetime.datetime:
        """Record `entry` (raises OSError if it cannot be); the hour it went to."""
        line = json.dumps(asdict(entry), separators=(",", ":"), ensure_ascii=False) + "\n"
        with self._lock:
            hour = hour_of(entry.acknowledged_at)
            if self.sealed_until is not None and hour <= self.sealed_until:
                hour = self.sealed_until + datetime.timedelta(hours=1)  # a late entry
            hour, fd = self._descriptor(hour)
            data = line.encode()
            if os.write(fd, data) != len(data):
                raise OSError("short write to the manifest journal")
        return hour

    def hours(self) -> list[datetime.datetime]:
        """The hours that have entries, from any writer, oldest first."""
        found = set()
        for path in self.directory.glob("*.jsonl"):
            stamp = path.name.split(".", 1)[0]
            found.add(datetime.datetime.strptime(stamp, HOUR_FORMAT).replace(tzinfo=datetime.UTC))
        return sorted(found)

    def entries_through(self, hour: datetime.datetime) -> list[ManifestEntry]:
        """Every writer's entries for `hour`, and any left in files of earlier
        hours (late ones), by key and version. A partial last line, from a
        write cut short by a crash, is left out."""
        out = []
        for path in self._files_through(hour):
            for line in path.read_bytes().split(b"\n"):
                try:
                    out.append(ManifestEntry.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    continue
        return sorted(set(out), key=lambda e: (e.key, e.version_id, e.acknowledged_at))

    def mark_sealed(self, hour: datetime.datetime) -> None:
        """Record that every hour through `hour` is sealed, and drop their files."""
        with self._lock:
            self.sealed_until = hour
            state = self.directory / "sealed"
            tmp = state.with_suffix(".tmp")
            tmp.write_text(f"{hour:{HOUR_FORMAT}}\n")
            os.replace(tmp, state)
            if self._open is not None and self._open[0] <= hour:
                os.close(self._open[1])
                self._open = None
        for path in self._files_through(hour):
            path.unlink(missing_ok=True)

    def _files_through(self, hour: datetime.datetime) -> list[Path]:
        last = f"{hour:{HOUR_FORMAT}}"
        return sorted(p for p in self.directory.glob("*.jsonl") if p.name[:10] <= last)

    def close(self) -> None:
        with self._lock:
            if self._open is not None:
                os.close(self._open[1])
                self._open = None

    def _descriptor(self, hour: datetime.datetime) -> tuple[datetime.datetime, int]:
        """The hour an entry of `hour` goes to, and that hour's open file."""
        if self._open is not None and self._open[0] == hour:
            return self._open
        if self._open is not None:
            os.close(self._open[1])
            self._open = None
        # A new hour: another process (the sealer) may have sealed hours since.
        self.sealed_until = self._read_sealed()
        if self.sealed_until is not None and hour <= self.sealed_until:
            hour = self.sealed_until + datetime.timedelta(hours=1)
        path = self.directory / f"{hour:{HOUR_FORMAT}}.{self.writer}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._open = (hour, fd)
        return self._open

    def _read_sealed(self) -> datetime.datetime | None:
        try:
            stamp = (self.directory / "sealed").read_text().strip()
        except FileNotFoundError:
            return None
        return datetime.datetime.strptime(stamp, HOUR_FORMAT).replace(tzinfo=datetime.UTC)
