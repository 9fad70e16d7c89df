"""LaneStream's sends against a fake core call: the order its batches start in.

An answer's batch is started outside the send lock (the core may write it to
the socket within that call), so the order is the lane's to keep, not the
lock's. The real socket's side is in tests/integration/test_stream_lane.py.
"""

from __future__ import annotations

import queue
import threading
from types import SimpleNamespace
from typing import Any

from msgarchive_server.edge.lane import LaneStream
from tests.polling import until


class _Call:
    """A core call whose answer batches block until `release` is set, as a
    write the core makes within `start_server_batch` takes its time. Each
    batch is recorded when its start returns; a status batch completes at once."""

    def __init__(self, events: queue.Queue[Any]) -> None:
        self.events = events
        self.release = threading.Event()
        self.answer_starting = threading.Event()
        self.started: list[list[str]] = []
        self._lock = threading.Lock()

    def start_server_batch(self, operations: tuple[Any, ...], tag: object) -> int:
        kinds = [type(operation).__name__ for operation in operations]
        if "SendMessageOperation" in kinds:
            self.answer_starting.set()
            assert self.release.wait(30)
        with self._lock:
            self.started.append(kinds)
        if "SendStatusFromServerOperation" in kinds:
            self.events.put(SimpleNamespace(tag=tag, completion_type=None, success=True))
        return 0


class _Queue:
    def __init__(self, events: queue.Queue[Any]) -> None:
        self.events = events

    def poll(self, deadline: float | None = None) -> Any:
        return self.events.get(timeout=30)


def test_the_status_waits_for_an_answer_whose_batch_is_being_started() -> None:
    events: queue.Queue[Any] = queue.Queue()
    call = _Call(events)
    stream = LaneStream(SimpleNamespace(call=call, invocation_metadata=()), _Queue(events), "/m")
    sender = threading.Thread(target=stream.send, args=(b"answer", "note"))
    sender.start()
    assert call.answer_starting.wait(30)  # the answer's start is under way, unfinished
    finisher = threading.Thread(target=stream.finish)
    finisher.start()
    until(lambda: stream.finished, "finish to begin")
    call.release.set()
    sender.join(30)
    finisher.join(30)
    assert not sender.is_alive()
    assert not finisher.is_alive()
    assert call.started == [
        ["ReceiveCloseOnServerOperation"],  # the stream's close, asked for at its start
        ["SendInitialMetadataOperation", "SendMessageOperation"],
        ["SendStatusFromServerOperation"],  # after the answer, not before it
    ]


def test_answers_sent_while_one_is_being_started_wait_their_turn_unblocked() -> None:
    events: queue.Queue[Any] = queue.Queue()
    call = _Call(events)
    stream = LaneStream(SimpleNamespace(call=call, invocation_metadata=()), _Queue(events), "/m")
    first = threading.Thread(target=stream.send, args=(b"first", "one"))
    first.start()
    assert call.answer_starting.wait(30)
    stream.send(b"second", "two")  # returns at once: queued behind the first, no lock waited on
    call.release.set()
    first.join(30)
    assert call.started[1:] == [["SendInitialMetadataOperation", "SendMessageOperation"]]
    # The first's SENT event starts the second, on the lane thread (here, this one).
    assert stream._sent(ok=True) == "one"
    assert call.started[2:] == [["SendMessageOperation"]]
    assert stream._sent(ok=True) == "two"
