"""singanseg.progress: a done/total/ETA line at most every N seconds, on a fake clock (issue 17)."""

import io
import threading

from singanseg.progress import Progress, duration


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_prints_on_cadence_with_done_total_and_eta():
    clock, out = Clock(), io.StringIO()
    p = Progress("train_singan", total=10, unit="models", every=30, clock=clock, stream=out)
    for i in range(1, 10):  # one model per 10 s: a line every third model
        clock.t += 10
        p.advance(note=f"img{i}")
    lines = out.getvalue().splitlines()
    assert lines == [
        "train_singan: 3/10 models, 30s elapsed, ETA 1m10s (img3)",
        "train_singan: 6/10 models, 1m00s elapsed, ETA 40s (img6)",
        "train_singan: 9/10 models, 1m30s elapsed, ETA 10s (img9)",
    ]
    clock.t += 10
    p.advance()  # the last item always prints, once
    p.update(10)
    assert out.getvalue().splitlines()[3:] == ["train_singan: 10/10 models, 1m40s elapsed, done"]


def test_tick_prints_while_one_item_runs_long():
    clock, out = Clock(), io.StringIO()
    p = Progress("segment@A", total=4, unit="trainings", every=30, clock=clock, stream=out)
    clock.t += 29
    p.tick()
    assert out.getvalue() == ""
    clock.t += 1
    p.tick()
    clock.t += 10
    p.tick()  # 10 s after the last line: quiet
    assert out.getvalue().splitlines() == ["segment@A: 0/4 trainings, 30s elapsed"]


def test_heartbeat_thread_prints_without_updates_and_stops():
    out = io.StringIO()
    ticked = threading.Event()

    class Stream(io.StringIO):
        def write(self, s):
            ticked.set()
            return out.write(s)

    with Progress("stylize@1to1", total=2, unit="images", every=0.05, stream=Stream()):
        assert ticked.wait(5)
    n = len(out.getvalue().splitlines())
    assert n >= 1 and out.getvalue().startswith("stylize@1to1: 0/2 images, ")
    threading.Event().wait(0.2)
    assert len(out.getvalue().splitlines()) == n  # stopped on exit


def test_disabled_and_duration():
    out = io.StringIO()
    p = Progress("x", total=1, clock=Clock(), stream=out, enabled=False)
    p.advance()
    assert out.getvalue() == ""
    assert [duration(s) for s in (0, 59.4, 190, 3600 * 2 + 300)] == ["0s", "59s", "3m10s", "2h05m"]


def test_iterate_advances_after_each_item_and_stops_its_heartbeat_on_break():
    clock, out = Clock(), io.StringIO()
    p = Progress("quality", total=3, unit="synthetic sets", every=30, clock=clock, stream=out)
    for i, _ in enumerate(p.iterate(["a", "b", "c"])):
        assert p.done == i  # counted when the loop asks for the next item
        clock.t += 40
        if i == 1:
            break
    assert p._stop.is_set() and out.getvalue().splitlines() == ["quality: 1/3 synthetic sets, 40s elapsed, ETA 1m20s"]
