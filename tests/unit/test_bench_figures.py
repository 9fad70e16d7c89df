"""How `make bench` reads CPU and puts a round together (bench/run.py), apart
from any run: a figure the benchmark gets wrong here would be wrong in every
table of docs/benchmarks.md."""

from __future__ import annotations

import os
import threading
import time

import pytest

from bench.run import CpuReading, Run, messages, sliced, verdict


def reading(ticks: float, **threads: int) -> CpuReading:
    return CpuReading(ticks, {int(tid[1:]): ns for tid, ns in threads.items()})


def test_the_threads_nanoseconds_are_used_when_they_account_for_the_ticks() -> None:
    before = reading(1.00, t1=400_000_000, t2=600_000_000)
    after = reading(1.25, t1=512_345_678, t2=737_654_321, t3=1_000_000)  # t3 started
    assert before.until(after) == pytest.approx(0.250_999_999, abs=1e-12)


def test_a_thread_that_ended_in_between_falls_back_to_the_ticks() -> None:
    # t2 ended after 20 ms more, its time gone from the sum: a sum within the
    # ticks' rounding, still short by what t2 took.
    before = reading(1.00, t1=400_000_000, t2=600_000_000)
    after = reading(1.12, t1=500_000_000)
    assert before.until(after) == pytest.approx(0.12)


def test_a_sum_that_disagrees_with_the_ticks_falls_back_to_them() -> None:
    # A thread that started and ended in between: every thread of the first
    # reading is still there, but the sum misses the ended one's 0.2 s.
    before = reading(1.00, t1=400_000_000)
    after = reading(1.50, t1=700_000_000)
    assert before.until(after) == pytest.approx(0.50)


def test_a_reading_of_this_process_agrees_with_its_own_cpu_clock() -> None:
    def burn(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    worker = threading.Thread(target=burn, args=(0.2,))
    start, clock = CpuReading.of(os.getpid()), time.process_time()
    worker.start()
    burn(0.2)
    worker.join()  # ended: its time stays in the ticks, not in the threads' sum
    taken = start.until(CpuReading.of(os.getpid()))
    assert taken == pytest.approx(time.process_time() - clock, abs=0.03)
    assert taken >= 0.35


def test_a_round_is_cut_into_slices_that_keep_every_message_once_in_order() -> None:
    batch = messages(10)
    parts = sliced(batch, 4)
    assert [len(part) for part in parts] == [3, 3, 2, 2]
    assert [request for part in parts for request in part] == batch
    assert sliced(batch, 1) == [batch]
    assert [len(part) for part in sliced(batch[:2], 4)] == [1, 1]  # never an empty slice


def test_a_modes_slices_make_one_run() -> None:
    first = Run(2.0, [0.1, 0.2], {"sender": 0.5, "sidecar": 1.0}, failures=1)
    second = Run(1.0, [0.3], {"sender": 0.25, "sidecar": 0.5, "store": 0.75})
    joined = Run.joined([first, second])
    assert joined.latencies == [0.1, 0.2, 0.3]
    assert joined.rate == pytest.approx(1.0)  # 3 archives in 3 s
    assert joined.cpu_ms("sidecar") == pytest.approx(500.0)  # 1.5 s over 3 archives
    assert joined.cpu_ms("store") == pytest.approx(250.0)
    assert joined.failures == 1


def test_a_verdict_says_when_the_rounds_fall_on_both_sides_of_the_line() -> None:
    assert verdict([0.25, 0.27, 0.29], 0.3) == "met"
    assert verdict([0.31, 0.33, 0.35], 0.3) == "MISSED"
    assert verdict([0.25, 0.28, 0.35], 0.3) == "met (rounds on both sides of the line)"
    assert verdict([0.25, 0.32, 0.35], 0.3) == "MISSED (rounds on both sides of the line)"
    assert verdict([0.2, 0.25, 0.3], 0.3) == "met"  # a round on the line is not over it
