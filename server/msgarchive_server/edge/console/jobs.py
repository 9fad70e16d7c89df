"""Productions made from the console: each a background job, listed afterwards.

A job runs `produce` (domain/production.py) on a thread of its own into the
console's work directory, as a zip; its progress is what `produce` reports.
Jobs live in this process: a restart forgets the list, but the finished zips
stay in the work directory, and the export log in the store keeps the record
of every production that was made.
"""

from __future__ import annotations

import datetime
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from msgarchive_server.domain.manifests.heads import Signer
from msgarchive_server.domain.production import ProductionError, produce
from msgarchive_server.domain.search import Search, SearchQuery
from msgarchive_server.stores import Store, StoreError

log = structlog.get_logger("msgarchive.console")


@dataclass
class Job:
    id: str
    account: str
    reviewer: str
    filters: dict[str, object]
    started: str
    state: str = "running"  # running, done, failed
    done: int = 0
    total: int = 0
    items: int = 0
    error: str = ""
    path: Path | None = None
    record: str = ""
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.total) if self.total else 0


class Jobs:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(
        self,
        *,
        account: str,
        reviewer: str,
        store: Store,
        open_search: Callable[[], Search],
        query: SearchQuery,
        filters: dict[str, object],
        signer: Signer,
        manifest_key: bytes | None,
    ) -> Job:
        """A new production of `query`'s copies, made in the background."""
        now = datetime.datetime.now(datetime.UTC)
        job = Job(
            id=secrets.token_hex(8),
            account=account,
            reviewer=reviewer,
            filters=filters,
            started=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        out = self.root / account / f"production-{now:%Y%m%dT%H%M%SZ}-{job.id}.zip"

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        def run() -> None:
            searcher = open_search()  # a search of its own: the job outlives a page
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                searcher.prepare(query)
                made = produce(
                    store, searcher.all(query), out, signer,
                    selection={"filters": filters, "keys": None}, source=searcher.source_used,
                    manifests=searcher.manifests, manifest_key=manifest_key, as_zip=True,
                    handed_to=f"console reviewer {reviewer}", progress=progress,
                )  # fmt: skip
            except (ProductionError, StoreError, OSError) as err:
                job.state, job.error = "failed", str(err) or type(err).__name__
                log.warning("console export failed", job=job.id, error=job.error)
            except Exception as err:
                job.state, job.error = "failed", f"internal error ({type(err).__name__})"
                log.exception("console export crashed", job=job.id)
            else:
                job.items, job.path, job.record = made.items, made.path, made.record
                job.done = job.total = made.items
                job.state = "done"
                log.info("console export done", job=job.id, count=made.items, record=made.record)
            finally:
                searcher.close()

        job.thread = threading.Thread(target=run, name=f"export-{job.id}", daemon=True)
        with self._lock:
            self._jobs[job.id] = job
        job.thread.start()
        return job

    def of(self, account: str) -> list[Job]:
        """An account's jobs, newest first."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.account == account]
        return sorted(jobs, key=lambda j: j.started, reverse=True)

    def get(self, account: str, job_id: str) -> Job | None:
        """The job, if it is this account's (another account's is not found)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.account == account else None
