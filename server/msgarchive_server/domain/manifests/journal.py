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
by `msgarchive verify` as an object no manifest lists, never hidden.

Where an entry goes: to the hour of its ack, or, if that hour is sealed, to
the first hour that is not (an hour sealed early, when a sidecar stopped
before it was over, stays open: its later entries go into a next part of it).
A file is never reopened once the journal has moved past its hour: an entry
acknowledged just before the hour turned, and journaled just after another
thread opened the new hour's file, goes into the new file (a late entry).

Disk space is reserved (posix_fallocate) before a mapped page is written, so
a full disk is an error the code sees (`JournalOutOfSpace`), never SIGBUS. While the
journal is full, archives are refused at once, and a background probe retries
the reservation until space is freed (sealing frees it too: sealed hours'
files are deleted); `on_change` tells the sidecar each time the state flips.
Sealing needs a few bytes of its own to record what it sealed: a small reserve
file is kept for that, and let go when the disk has none left.
"""

from __future__ import annotations

import datetime
import errno
import json
import mmap
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from msgarchive_server.domain.manifests.entries import ManifestEntry

log = structlog.get_logger("msgarchive.manifests")

HOUR_FORMAT = "%Y%m%d%H"
HOUR = datetime.timedelta(hours=1)
HOUR_MS = 3600 * 1000
# A journal file's first reservation, and the most it grows by at once: it
# doubles up to that. Past what the disk can give, it grows by the pages one
# line needs, so a nearly full disk is used to its last page.
FIRST_RESERVATION = 64 * 1024
MAX_RESERVATION_STEP = 8 * 1024 * 1024
PAGE = mmap.PAGESIZE
# How often a full journal checks whether space has been freed.
PROBE_INTERVAL_S = 1.0
# Disk kept back for the journal's own small state files (`sealed`, the chain
# file): on a disk with no byte free, it is let go so that sealing, which
# deletes sealed hours' files and so frees the disk, can still record itself.
RESERVE_BYTES = 64 * 1024
RESERVE_NAME = ".reserve"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class JournalOutOfSpace(Exception):
    """The journal's disk has no room for the next entry; nothing was written."""

    def __init__(self, error: str) -> None:
        super().__init__(f"the manifest journal's disk is full: {error}")
        self.error = error


def hour_of(epoch_ms: int) -> datetime.datetime:
    """The UTC hour an instant falls in."""
    instant = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.UTC)
    return instant.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Sealed:
    """How far a journal is sealed: the last hour with a head, how many parts
    (heads) that hour has, and whether it is still open (sealed before it was
    over: entries of it journaled since go into a next part)."""

    hour: datetime.datetime
    parts: int = 1
    open: bool = False

    @property
    def first_open_hour(self) -> datetime.datetime:
        """The first hour an entry may still go to."""
        return self.hour if self.open else self.hour + HOUR

    def line(self) -> str:
        return f"{self.hour:{HOUR_FORMAT}} {self.parts} {'open' if self.open else 'closed'}\n"

    @classmethod
    def parse(cls, text: str) -> Sealed:
        """The state file: `yyyymmddhh parts open|closed`, or the hour alone (as
        journals before parts wrote it: one part, closed)."""
        words = text.split()
        hour = datetime.datetime.strptime(words[0], HOUR_FORMAT).replace(tzinfo=datetime.UTC)
        if len(words) == 1:
            return cls(hour)
        return cls(hour, int(words[1]), words[2] == "open")


class _Segment:
    """One hour's file of one journal, mapped shared; lines are appended at `end`.

    The mapping never reaches past what `posix_fallocate` reserved, so every
    page written has its disk blocks: a full disk fails the reservation with
    ENOSPC instead of the write with SIGBUS.
    """

    def __init__(self, path: Path, hour: datetime.datetime) -> None:
        self.hour = hour
        self.start_ms = int(hour.timestamp() * 1000)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _reserve(self.fd, 0, FIRST_RESERVATION)
        except OSError:
            os.close(self.fd)
            path.unlink(missing_ok=True)
            raise
        self.map = mmap.mmap(self.fd, FIRST_RESERVATION)
        self.end = 0

    def append(self, data: bytes) -> None:
        needed = self.end + len(data)
        if needed > len(self.map):
            self._grow(needed)
        self.map[self.end : needed] = data
        self.end = needed

    def _grow(self, needed: int) -> None:
        size = len(self.map)
        wanted = max(min(size * 2, size + MAX_RESERVATION_STEP), needed)
        try:
            _reserve(self.fd, size, wanted - size)
        except OSError as err:
            if err.errno not in _NO_SPACE:
                raise
            wanted = -(-needed // PAGE) * PAGE  # only the pages this line needs
            _reserve(self.fd, size, wanted - size)
        self.map.resize(wanted)

    def close(self) -> None:
        self.map.close()
        os.ftruncate(self.fd, self.end)  # drop the padding: readers see the lines alone
        os.close(self.fd)


def _reserve(fd: int, offset: int, length: int) -> None:
    """Allocate disk blocks for `length` bytes at `offset` (the file grows to
    cover them); OSError(ENOSPC) when the disk cannot."""
    os.posix_fallocate(fd, offset, length)


class Journal:
    def __init__(
        self,
        directory: Path,
        writer: str,
        *,
        on_change: Callable[[bool], None] = lambda usable: None,
        probe_interval: float = PROBE_INTERVAL_S,
    ) -> None:
        self.directory = directory
        # A name of this process's own: a restarted process never appends to
        # (or scans the end of) a file an earlier one left.
        self.writer = f"{writer}-{secrets.token_hex(4)}"
        self.on_change = on_change
        self.probe_interval = probe_interval
        self._lock = threading.Lock()
        self._segment: _Segment | None = None
        self._full = ""  # the error that filled the disk; "" while there is room
        self._unsaved = False  # `sealed` is not on disk yet (the disk was full)
        self._stopped = threading.Event()
        self._prober: threading.Thread | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.sealed = self._read_sealed()  # None until a chain starts
        self._keep_reserve()
        try:
            self._check_room()  # a sidecar started on a full disk says so at once
        except OSError as err:
            if err.errno not in _NO_SPACE:
                raise
            with self._lock:
                self._became_full(os.strerror(err.errno or errno.ENOSPC))

    # --- the write path ---------------------------------------------------------

    @property
    def full(self) -> bool:
        """True while the disk had no room for the last entry tried."""
        return bool(self._full)

    @property
    def full_reason(self) -> str:
        """What the system said when the disk filled ("" while there is room)."""
        return self._full

    def append(self, entry: ManifestEntry) -> datetime.datetime:
        """Record `entry`; the hour it went to. Raises JournalOutOfSpace when the disk
        has no room (nothing was written), OSError when it fails otherwise."""
        data = entry.journal_line()
        at = entry.acknowledged_at
        with self._lock:
            segment = self._segment
            try:
                if segment is None or at >= segment.start_ms + HOUR_MS:
                    segment = self._open(hour_of(at))
                segment.append(data)
            except OSError as err:
                if err.errno not in _NO_SPACE:
                    raise
                self._became_full(os.strerror(err.errno or errno.ENOSPC))
                raise JournalOutOfSpace(self._full) from None
            return segment.hour

    def _open(self, hour: datetime.datetime) -> _Segment:
        """The segment an entry of `hour` goes to, or after (the lock held)."""
        if self._segment is not None:
            self._segment.close()
            self._segment = None
        # A new hour: another process (the sealer) may have sealed hours since.
        self.sealed = self._read_sealed() or self.sealed
        if self.sealed is not None:
            hour = max(hour, self.sealed.first_open_hour)
        path = self.directory / f"{hour:{HOUR_FORMAT}}.{self.writer}.jsonl"
        self._segment = _Segment(path, hour)
        return self._segment

    # --- a full disk ------------------------------------------------------------

    def _became_full(self, error: str) -> None:
        """Record that the disk is full and start probing for room (the lock held)."""
        if self._full:
            return
        self._full = error
        log.error("manifest journal full", error=error, directory=str(self.directory))
        self._prober = threading.Thread(target=self._probe, name="journal-probe", daemon=True)
        self._prober.start()
        self.on_change(False)

    def _probe(self) -> None:
        """Until the disk has room for a new journal file again, try every
        `probe_interval`; then take entries again."""
        while not self._stopped.wait(self.probe_interval):
            try:
                self._check_room()
                with self._lock:
                    if self._unsaved and self.sealed is not None:
                        self._save(self.sealed)
            except OSError:
                continue
            with self._lock:
                self._full = ""
                self._prober = None
            self._keep_reserve()
            log.info("manifest journal has room again", directory=str(self.directory))
            self.on_change(True)
            return

    def _check_room(self) -> None:
        """Raise OSError unless a new journal file's first reservation fits."""
        probe = self.directory / f".space-probe.{self.writer}"
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _reserve(fd, 0, FIRST_RESERVATION)
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)

    # --- sealing ----------------------------------------------------------------

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

    def start_chain(self, hour: datetime.datetime) -> None:
        """A new chain's state: every hour before `hour` counts as sealed. On a
        full disk it is kept in memory (and the journal counts as full) until
        there is room to save it."""
        with self._lock:
            self.sealed = Sealed(hour - HOUR)
            try:
                self._save(self.sealed)
            except OSError as err:
                if err.errno not in _NO_SPACE:
                    raise
                self._unsaved = True
                self._became_full(os.strerror(err.errno or errno.ENOSPC))

    def mark_sealed(self, state: Sealed) -> None:
        """Record `state` (raises OSError if it cannot be), and drop the files of
        every hour it seals, the open hour's included: their entries are in its
        parts now, and the hour's later entries go to new files."""
        with self._lock:
            self._save(state)
            self.sealed = state
            if self._segment is not None and self._segment.hour <= state.hour:
                self._segment.close()
                self._segment = None
        for path in self._files_through(state.hour):
            path.unlink(missing_ok=True)
        self._keep_reserve()

    def write_state(self, name: str, text: str) -> None:
        """Replace the state file `name` in the journal's directory, atomically.
        On a disk with no room, the reserve is let go for it."""
        target = self.directory / name
        tmp = target.with_name(target.name + ".tmp")
        for last_try in (False, True):
            try:
                tmp.write_text(text)
                os.replace(tmp, target)
                return
            except OSError as err:
                tmp.unlink(missing_ok=True)
                if last_try or err.errno not in _NO_SPACE:
                    raise
                if not self._release_reserve():
                    raise

    def _keep_reserve(self) -> None:
        """Make the reserve file if there is none and the disk has room for it."""
        reserve = self.directory / RESERVE_NAME
        if reserve.exists():
            return
        try:
            fd = os.open(reserve, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return  # another process of this journal made it, or no room
        try:
            _reserve(fd, 0, RESERVE_BYTES)
        except OSError:
            reserve.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def _release_reserve(self) -> bool:
        """Let the reserve go; False if there was none."""
        try:
            (self.directory / RESERVE_NAME).unlink()
        except FileNotFoundError:
            return False
        log.warning("manifest journal disk full: its reserve is used to record a seal")
        return True

    def close(self) -> None:
        self._stopped.set()
        prober = self._prober
        if prober is not None:
            prober.join(timeout=5)
        with self._lock:
            if self._segment is not None:
                self._segment.close()
                self._segment = None

    def _save(self, state: Sealed) -> None:
        self.write_state("sealed", state.line())
        self._unsaved = False

    def _files_through(self, hour: datetime.datetime) -> list[Path]:
        last = f"{hour:{HOUR_FORMAT}}"
        return sorted(p for p in self.directory.glob("*.jsonl") if p.name[:10] <= last)

    def _read_sealed(self) -> Sealed | None:
        try:
            return Sealed.parse((self.directory / "sealed").read_text())
        except FileNotFoundError:
            return None
