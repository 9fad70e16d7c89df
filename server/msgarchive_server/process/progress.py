"""A progress bar for a one-shot command's terminal: one line, redrawn in place
at most five times a second, and only when that stream is a terminal (a log
or a pipe gets the command's final line alone)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class Bar:
    WIDTH = 30

    def __init__(
        self, stream: TextIO, noun: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.noun = noun
        self.shown = stream.isatty()
        self._clock = clock
        self._started = self._clock()
        self._first = 0  # done when it began (a resumed job's)
        self._drawn_at = -1.0
        self._drawn = False

    def update(self, done: int, total: int) -> None:
        if not self.shown:
            return
        now = self._clock()
        if self._drawn_at < 0:
            self._first, self._started = done, now
        elif done < total and now - self._drawn_at < 0.2:
            return
        self._drawn_at = now
        self._drawn = True
        self.stream.write(f"\r{self.line(done, total, now - self._started)}")
        self.stream.flush()

    def line(self, done: int, total: int, elapsed: float) -> str:
        share = done / total if total else 1.0
        bar = "#" * int(share * self.WIDTH)
        line = f"[{bar:<{self.WIDTH}}] {done} of {total} {self.noun}"
        rate = (done - self._first) / elapsed if elapsed > 0 else 0.0
        if rate > 0 and done < total:
            left = int((total - done) / rate)
            line += f", {rate:.0f}/s, {left // 60}:{left % 60:02d} left"
        return line

    def finish(self) -> None:
        """End the bar's line, so that what follows starts on a line of its own."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
