"""A progress line for long loops that survives DVC's output capture (issue 17).

    with Progress("train_singan", total=200, unit="models") as progress:
        for ... :
            ...
            progress.advance()      # a line at most every 30 s, and once at the end

(as a context manager it also prints while one item takes longer than 30 s: a heartbeat
thread, so "at least every 30 s" holds for a SinGAN-Seg model or an epoch of minutes)

prints lines like

    train_singan: 12/200 models, 3m10s elapsed, ETA 49m40s

on stderr, flushed. Why not tqdm: DVC streams a stage's stdout and stderr as they come, but
a carriage-return bar is one ever-growing line in a log and prints nothing new for a stage
run with `--quiet`/`--no-progress`; a whole line every N seconds (time-based, not per item,
so a fast loop does not flood the log and a slow one is still heard from) reads the same in
a terminal, in `dvc repro`'s output and in a CI log. The ETA assumes the remaining items cost
what the finished ones did on average.

Generic on purpose (no model, no pipeline import): the DVC stages, the libraries' loops and
the CLIs share it. `clock` and `stream` are injectable for tests.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

EVERY_S = 30.0  # issue 17: "a progress line at least every 30 s"


def duration(seconds: float) -> str:
    """`42s`, `3m10s`, `2h05m`: short, for a log line."""
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Counts finished items of a known total and prints a line at most every `every` seconds.

    `advance(n)` adds finished items, `update(done)` sets the count; either prints when
    `every` seconds passed since the last line (or since the start), and when the count
    reaches the total (unless `final` is False). `note` is appended to the line (e.g. the item just finished).
    """

    def __init__(
        self,
        name: str,
        total: int,
        unit: str = "items",
        every: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
        enabled: bool = True,
        final: bool = True,
    ) -> None:
        self.name = name
        self.total = max(int(total), 0)
        self.unit = unit
        self.every = every
        self.clock = clock
        self.stream = stream  # None: sys.stderr at print time (pytest's capsys swaps it)
        self.enabled = enabled
        self.final = final  # False: no line for reaching the total (the caller reports the end)
        self.done = 0
        self.start = clock()
        self._last = self.start
        self._ended = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.enabled and self.every > 0:
            self._thread = threading.Thread(target=self._heartbeat, name=f"progress-{self.name}", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def iterate(self, items: Iterable[T]) -> Iterator[T]:
        """Yield `items`, advancing by one after each (when the loop asks for the next), with the
        heartbeat running meanwhile: `for it in Progress(...).iterate(range(n)):` is the whole
        change to a loop. The heartbeat stops when the loop ends, breaks or raises (the
        generator is closed)."""
        with self:
            for item in items:
                yield item
                self.advance()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()

    def tick(self) -> None:
        """Print if `every` seconds passed since the last line, whether or not items finished."""
        now = self.clock()
        if not self._ended and now - self._last >= self.every:
            self._print(now, "")

    def advance(self, n: int = 1, note: str = "") -> None:
        self.update(self.done + n, note)

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        now = self.clock()
        finished = self.total and self.done >= self.total
        if finished and not self._ended:
            self._ended = True
            if self.final:
                self._print(now, note)
        elif not finished and now - self._last >= self.every:
            self._print(now, note)

    def line(self, now: float | None = None, note: str = "") -> str:
        now = self.clock() if now is None else now
        elapsed = now - self.start
        text = f"{self.name}: {self.done}/{self.total} {self.unit}, {duration(elapsed)} elapsed"
        if 0 < self.done < self.total:
            text += f", ETA {duration(elapsed / self.done * (self.total - self.done))}"
        elif self.total and self.done >= self.total:
            text += ", done"
        return text + (f" ({note})" if note else "")

    def _print(self, now: float, note: str) -> None:
        with self._lock:
            self._last = now
            if self.enabled:
                print(self.line(now, note), file=self.stream or sys.stderr, flush=True)


__all__ = ["EVERY_S", "Progress", "duration"]
