"""Sealing hours: each UTC hour's journal becomes a manifest and a signed head.

Once an hour is over (and a grace period has passed, for calls in flight at
its end), the sealer writes the hour's manifest (Parquet) and its head, each
write-once, under the store's prefix and outside `sent_messages/`:

    _msgarchive/manifests/<writer>/<yyyy>/<mm>/<dd>/<hh>/manifest.parquet
    _msgarchive/manifests/<writer>/<yyyy>/<mm>/<dd>/<hh>/head.json

Every hour gets both, an hour without copies an empty manifest, from the hour
the chain started on; each head links to the one before. With retention on,
the bucket's default retention locks them as it locks the copies.

A sidecar that stops seals the hour it is in, though it is not over, so that
every copy it acknowledged is in a signed manifest when it exits. That is the
hour's first part. If a sidecar with the same journal acknowledges more copies
in that hour (a restart within the hour), they are sealed as its next part,
`manifest.2.parquet` and `head.2.json`, and so on; each part's head states
its `part` and links to the part before, so the chain runs through every part
of every hour in order. An hour gets a next part only for copies it has not
sealed yet: an hour sealed early and then quiet keeps its parts as they are.

After a crash, sealing a part again finds what it wrote first: an identical
manifest is kept, and a head already stored is adopted if it is this signer's
and names the same manifest; anything else stops sealing (SealConflict)
rather than fork the chain.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from msgarchive_server.domain.manifests import merkle, notes, parquet
from msgarchive_server.domain.manifests.entries import ManifestEntry
from msgarchive_server.domain.manifests.headlog import CHECKPOINT_TYPE, HeadLog, checkpoint_key
from msgarchive_server.domain.manifests.heads import Link, Signer, head
from msgarchive_server.domain.manifests.journal import Journal, Sealed, hour_of
from msgarchive_server.domain.manifests.timestamps import (
    REPLY_TYPE,
    Timestamper,
    TimestampError,
    timestamp_key,
)
from msgarchive_server.domain.manifests.witnesses import (
    Post,
    Witness,
    Witnesses,
    cosigned_key,
    http_post,
)
from msgarchive_server.stores import Store

log = structlog.get_logger("msgarchive.manifests")

MANIFEST_ROOT = "_msgarchive/manifests"
PARQUET = "application/vnd.apache.parquet"
JSON = "application/json"
HOUR = datetime.timedelta(hours=1)


class SealConflict(Exception):
    """The store holds a different head for an hour this sidecar is sealing."""


# The name of a part's manifest or head in its hour's folder.
_PART_NAME = re.compile(r"(?P<kind>manifest|head)(?:\.(?P<part>[2-9]|[1-9]\d+))?\.(parquet|json)")


def hour_keys(prefix: str, writer: str, hour: datetime.datetime, part: int = 1) -> tuple[str, str]:
    """The keys of an hour's manifest and head (of its `part`: the first by default)."""
    base = f"{prefix}{MANIFEST_ROOT}/{writer}/{hour:%Y/%m/%d/%H}/"
    suffix = "" if part == 1 else f".{part}"
    return f"{base}manifest{suffix}.parquet", f"{base}head{suffix}.json"


def origin_of(bucket: str, prefix: str, writer: str) -> str:
    """A writer's log's origin line, which is also its checkpoints' key name."""
    origin = f"{bucket}/{prefix}{MANIFEST_ROOT}/{writer}"
    if any(c.isspace() or c == "+" for c in origin):
        raise ValueError(f"a log origin may hold no spaces or '+': {origin!r}")
    return origin


def part_name(name: str) -> tuple[str, int] | None:
    """("manifest" or "head", part) for a file name in an hour's folder, else None."""
    found = _PART_NAME.fullmatch(name)
    if found is None:
        return None
    return found["kind"], int(found["part"] or 1)


class Sealer:
    def __init__(
        self,
        store: Store,
        journal: Journal,
        signer: Signer,
        writer: str,
        *,
        grace: datetime.timedelta = datetime.timedelta(minutes=2),
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        witnesses: list[Witness] | None = None,
        post: Post = http_post,
        on_witness: Callable[[str, bool], None] = lambda name, cosigned: None,
        timestamper: Timestamper | None = None,
        on_timestamp: Callable[[bool], None] = lambda stamped: None,
    ) -> None:
        self.store = store
        self.journal = journal
        self.signer = signer
        self.writer = writer
        self.grace = grace
        self._clock_ms = clock_ms
        self._chain_file = journal.directory / "chain.json"
        self.log = HeadLog(journal.directory / "log.txt")
        self.witnesses = (
            Witnesses(witnesses, journal.directory / "witnesses.json", post) if witnesses else None
        )
        self._on_witness = on_witness  # (witness name, cosigned): for a metric
        self.timestamper = timestamper
        self._on_timestamp = on_timestamp  # (a token stored): for a metric
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if journal.sealed is None:
            # A new chain starts with the current hour: nothing before it was
            # journaled here, so there is nothing to seal.
            journal.start_chain(hour_of(clock_ms()))

    def seal_due(self) -> list[datetime.datetime]:
        """Seal every hour that is over and not sealed yet; the hours sealed."""
        last_complete = hour_of(self._clock_ms() - int(self.grace.total_seconds() * 1000)) - HOUR
        return self._seal_through(last_complete, early=None)

    def seal_now(self) -> list[datetime.datetime]:
        """Seal every hour through the current one, which is not over: when the
        sidecar stops, so that nothing it acknowledged stays unsealed. The
        current hour stays open: entries of it journaled later (a restart
        within the hour) are sealed as its next part."""
        current = hour_of(self._clock_ms())
        return self._seal_through(current, early=current)

    def _seal_through(
        self, last: datetime.datetime, early: datetime.datetime | None
    ) -> list[datetime.datetime]:
        """Seal the open hours through `last`; `early` is the one not over yet."""
        sealed = []
        state = self.journal.sealed
        assert state is not None
        hour = state.first_open_hour
        while hour <= last:
            part = state.parts + 1 if state.open and hour == state.hour else 1
            entries = self.journal.entries_through(hour)
            if part == 1 or entries:
                state = self._seal(hour, part, entries, still_open=hour == early)
                sealed.append(hour)
            elif hour != early:
                # Nothing since its last part, and now it is over: it has every part.
                state = Sealed(hour, part - 1, open=False)
                self.journal.mark_sealed(state)
            hour += HOUR
        return sealed

    def start(self, interval: float = 30.0) -> None:
        """Seal in the background every `interval` seconds until stop()."""

        def run() -> None:
            # At once first: a journal left by a stopped or crashed sidecar may
            # hold hours that are due (and, on a full disk, sealing frees it).
            while True:
                try:
                    self.seal_due()
                except OSError as err:
                    log.error("sealing failed; retrying", error=err.strerror or str(err))
                except Exception:
                    log.exception("sealing failed; retrying")
                if self._stop.wait(interval):
                    return

        self._thread = threading.Thread(target=run, name="manifest-sealer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _seal(
        self, hour: datetime.datetime, part: int, entries: list[ManifestEntry], still_open: bool
    ) -> Sealed:
        """Seal `part` of `hour` with `entries`; the journal's state after it."""
        self._sync_log()
        manifest = parquet.encode(entries)
        manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        root = merkle.root([merkle.leaf_hash(entry.leaf()) for entry in entries])
        manifest_key, head_key = hour_keys(self.store.prefix, self.writer, hour, part)
        written = self.store.put(manifest_key, manifest, PARQUET)
        if written.existing_copy is not None and written.existing_copy != manifest:
            raise SealConflict(f"{manifest_key} holds another manifest")
        stored = head(
            writer=self.writer,
            bucket=self.store.bucket,
            prefix=self.store.prefix,
            hour=hour,
            part=part,
            count=len(entries),
            manifest_key=manifest_key,
            manifest_sha256=manifest_sha256,
            merkle_root=root,
            previous=self._previous(),
            signer=self.signer,
        )
        put = self.store.put(head_key, stored, JSON)
        if put.existing_copy is not None:
            stored = self._adopt(head_key, put.existing_copy, manifest_sha256)
        fields = json.loads(stored)
        link = Link(head_key, hashlib.sha256(stored).hexdigest(), fields["signature"])
        self.journal.write_state(
            self._chain_file.name,
            json.dumps({"key": link.key, "sha256": link.sha256, "signature": link.signature}),
        )
        self._checkpoint(head_key, stored)
        state = Sealed(hour, part, open=still_open)
        self.journal.mark_sealed(state)
        log.info(
            "hour sealed",
            hour=f"{hour:%Y-%m-%dT%H}",
            part=part,
            still_open=still_open,
            copies=len(entries),
            head=head_key,
        )
        return state

    def _checkpoint(self, head_key: str, stored: bytes) -> None:
        """Append the head to the writer's log and write its checkpoint beside it."""
        size = self.log.append(head_key, stored)
        origin = origin_of(self.store.bucket, self.store.prefix, self.writer)
        text = notes.Checkpoint(origin, size, self.log.root()).text()
        signed = str(notes.sign(text, origin, self.signer.public_key_raw, self.signer.sign))
        key = checkpoint_key(head_key)
        put = self.store.put(key, signed.encode(), CHECKPOINT_TYPE)
        if put.existing_copy is not None and put.existing_copy != signed.encode():
            raise SealConflict(f"{key} holds another checkpoint")
        if self.witnesses is not None:
            self._witness(key, notes.parse(signed), size)
        if self.timestamper is not None:
            self._timestamp(key, signed.encode(), size)

    def _witness(self, key: str, checkpoint: notes.Note, size: int) -> None:
        """Have the witnesses cosign the checkpoint; keep what they signed beside it."""
        assert self.witnesses is not None
        got, refused = self.witnesses.cosign(checkpoint, self.log.tree())
        for name, why in refused.items():
            log.warning("witness refused", witness=name, checkpoint=key, size=size, why=why)
            self._on_witness(name, False)
        for signature in got:
            self._on_witness(signature.name, True)
        if got:
            cosigned = notes.Note(checkpoint.text, (*checkpoint.signatures, *got))
            self.store.put(cosigned_key(key), str(cosigned).encode(), CHECKPOINT_TYPE)
            log.info("checkpoint witnessed", checkpoint=key, size=size,
                     witnesses=sorted(s.name for s in got))  # fmt: skip

    def _timestamp(self, key: str, checkpoint: bytes, size: int) -> None:
        """Have the TSA date the checkpoint; keep its reply beside it."""
        assert self.timestamper is not None
        try:
            reply, token = self.timestamper.stamp(checkpoint)
        except TimestampError as err:
            log.warning("timestamp refused", checkpoint=key, size=size, why=str(err))
            self._on_timestamp(False)
            return
        # Written once: after a crash between this and the seal's end, the
        # hour is sealed again and the first token stays.
        self.store.put(timestamp_key(key), reply, REPLY_TYPE)
        self._on_timestamp(True)
        log.info("checkpoint timestamped", checkpoint=key, size=size,
                 time=token.time.isoformat(), tsa=token.tsa)  # fmt: skip

    def _sync_log(self) -> None:
        """The log ends with the chain's last head (after a crash between the
        two, or with no log yet: rebuilt from the store)."""
        previous = self._previous()
        if previous is None or (self.log.keys and self.log.keys[-1] == previous.key):
            return
        stored = self.store.get(previous.key).body
        link = json.loads(stored).get("previous")
        if self.log.keys and link and link.get("key") == self.log.keys[-1]:
            self.log.append(previous.key, stored)
        else:
            self.log.rebuild(self.store, previous.key)

    def _previous(self) -> Link | None:
        try:
            data = json.loads(self._chain_file.read_text())
        except FileNotFoundError:
            return None
        return Link(data["key"], data["sha256"], data["signature"])

    def _adopt(self, key: str, existing: bytes, manifest_sha256: str) -> bytes:
        """A head sealed before a crash: keep it if it is ours and for this manifest."""
        fields = json.loads(existing)
        ours = fields.get("public_key_sha256") == self.signer.public_key_sha256
        if not ours or fields.get("manifest", {}).get("sha256") != manifest_sha256:
            raise SealConflict(f"{key} holds a head this sidecar did not seal")
        return existing


def journal_directory(root: Path, bucket: str, prefix: str) -> Path:
    """The journal of one store, below the --manifests-dir."""
    name = hashlib.sha256(f"{bucket}\n{prefix}".encode()).hexdigest()[:16]
    return root / name
