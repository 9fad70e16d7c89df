"""The progress bar: drawn on a terminal only, at most five times a second,
with the rate and time left of this run (a resumed job's earlier work is not
counted as speed)."""

from __future__ import annotations

import io

from msgarchive_server.process.progress import Bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_pipe_gets_no_bar() -> None:
    out = io.StringIO()
    bar = Bar(out, "copies")
    bar.update(1, 2)
    bar.finish()
    assert out.getvalue() == ""


def test_a_terminal_sees_the_bar_redrawn_in_place_with_rate_and_time_left() -> None:
    out, clock = Terminal(), Clock()
    bar = Bar(out, "copies", clock=clock)
    bar.update(100, 1100)  # a resumed job: 100 were done before
    clock.now += 0.1
    bar.update(150, 1100)  # too soon to redraw
    clock.now += 0.9
    bar.update(200, 1100)  # 100 in 1 s this run: 900 left, 9 s
    clock.now += 0.01
    bar.update(1100, 1100)  # the end is always drawn
    bar.finish()
    drawn = out.getvalue().split("\r")[1:]
    assert drawn == [
        f"[{'#' * 2:30}] 100 of 1100 copies",
        f"[{'#' * 5:30}] 200 of 1100 copies, 100/s, 0:09 left",
        f"[{'#' * 30}] 1100 of 1100 copies\n",
    ]
