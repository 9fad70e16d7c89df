"""`--workers N`: N sidecar processes sharing one TCP port (SO_REUSEPORT).

The supervisor (this process) starts the workers, each a `msgarchive serve`
with the same settings, and the kernel spreads connections between them. Each
worker serves health for itself (they are configured alike, so they agree)
and writes its metrics to prometheus-client's multiprocess files; the
supervisor alone serves /metrics, summing them. SIGTERM is passed on, and each
worker drains as a single sidecar does. If a worker dies, the supervisor stops
the others and exits non-zero, so that whatever runs it restarts the whole.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from types import FrameType

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from msgarchive_server.edge.scrape import metrics_listener
from msgarchive_server.process.config import OPTIONS, Settings, write

log = structlog.get_logger("msgarchive.workers")

_POLL_SECONDS = 0.2


def worker_argv(settings: Settings, index: int | None = None) -> list[str]:
    """`serve` flags for worker `index` (or for the one process that seals after
    them): every setting as given, one process, no metrics port."""
    argv = []
    for option in OPTIONS:
        if option.name in ("workers", "metrics_listen", "worker"):
            continue
        value = getattr(settings, option.name)
        if value is not None:
            argv.append(f"{option.flag}={write(value)}")
    argv.append("--workers=1")
    return argv if index is None else [*argv, f"--worker={index}"]


def supervise(settings: Settings) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="msgarchive-metrics-") if settings.metrics_listen else ""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers: list[subprocess.Popen[bytes]] = []
    metrics_server = None
    try:
        for index in range(settings.workers):
            env = dict(os.environ)
            if metrics_dir:
                env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            argv = worker_argv(settings, index)
            command = [sys.executable, "-m", "msgarchive_server", "serve", *argv]
            workers.append(subprocess.Popen(command, env=env))  # noqa: S603 (our own command)
        if settings.metrics_listen:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=metrics_dir)  # type: ignore[no-untyped-call]
            metrics_server = metrics_listener(settings.metrics_listen, registry)
            metrics_server.start()
        log.info("workers started", workers=[w.pid for w in workers], listen=settings.listen)
        failed = None
        while failed is None and not stopping.wait(_POLL_SECONDS):
            failed = next((w for w in workers if w.poll() is not None), None)
        if failed is not None:
            log.error(
                "a worker stopped; stopping the others", pid=failed.pid, code=failed.returncode
            )
        code = _stop(workers, settings.grace_period, failed is not None)
        if settings.manifests_dir:
            # Every worker is done: seal what they journaled, as one sidecar would.
            sealed = subprocess.run(  # noqa: S603 (our own command)
                [sys.executable, "-m", "msgarchive_server", "seal", *worker_argv(settings)],
                check=False,
            )
            code = code or sealed.returncode
        return code
    finally:
        if metrics_server is not None:
            metrics_server.stop(1)
        for worker in workers:
            if metrics_dir:
                mark_process_dead(worker.pid, metrics_dir)  # type: ignore[no-untyped-call]
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _stop(workers: list[subprocess.Popen[bytes]], grace: float, failed: bool) -> int:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    codes = []
    for worker in workers:
        try:
            codes.append(worker.wait(grace + 10))
        except subprocess.TimeoutExpired:
            worker.kill()
            codes.append(worker.wait())
    log.info("workers stopped", codes=codes)
    return 1 if failed or any(codes) else 0
