"""kill -9 under load, for the crash tests: archive from several threads, kill the
sidecar once enough acks are in, and let every thread meet its first error."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field

from msgarchive import ArchiveClient, MsgArchiveError
from msgarchive.v1 import archive_service_pb2 as pb
from tests import samples
from tests.sidecar import SidecarProcess

WAIT = 120.0  # generous: a busy machine is slow, not stuck


@dataclass
class KilledUnderLoad:
    acked: list[pb.ArchiveResponse] = field(default_factory=list)
    # Each thread's first failed call: after the kill, every call fails.
    errors: list[tuple[pb.ArchiveRequest, MsgArchiveError]] = field(default_factory=list)
    acked_before_kill: int = 0


def kill_9_under_load(
    sidecar: SidecarProcess, *, threads: int = 8, acks_before_kill: int = 200
) -> KilledUnderLoad:
    """SMS archives from `threads` threads until `acks_before_kill` acks are in,
    then kill -9; returns once every thread has stopped at its first error."""
    result = KilledUnderLoad()
    stop, enough, lock = threading.Event(), threading.Event(), threading.Lock()
    counter = iter(range(1, 1_000_000))

    def load(client: ArchiveClient) -> None:
        while not stop.is_set():
            with lock:
                n = next(counter)
            request = samples.sms_request(created_at_ms=samples.CREATED_AT_MS + n)
            try:
                ack = client.archive(request, timeout=30)
            except MsgArchiveError as err:
                result.errors.append((request, err))
                return
            result.acked.append(ack)
            if len(result.acked) >= acks_before_kill:
                enough.set()

    client = ArchiveClient(sidecar.address, options=[("grpc.enable_retries", 0)])
    workers = [threading.Thread(target=load, args=(client,)) for _ in range(threads)]
    try:
        for worker in workers:
            worker.start()
        assert enough.wait(WAIT), f"only {len(result.acked)} acks: {result.errors[:1]}"
        assert sidecar.stop(signal.SIGKILL) == -signal.SIGKILL
        result.acked_before_kill = len(result.acked)
        for worker in workers:
            worker.join(WAIT)
            assert not worker.is_alive()
    finally:
        stop.set()
        client.close()
    return result
