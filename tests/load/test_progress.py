"""The live status line: in place on a terminal, one line per second elsewhere."""

from __future__ import annotations

import io

from rich.console import Console
from tslic.client.load.coordinator import Snapshot
from tslic.client.load.histograms import Interval
from tslic.client.load.progress import Progress


def _snapshots() -> list[Snapshot]:
    total = Interval(0)
    out = []
    for second in range(3):
        interval = Interval(second)
        for i in range(10):
            interval.record("new", service=0.001, lag=0.0, response=0.002 + i / 1000, dispatch=0)
        interval.record("new", service=0.001, lag=0.0, response=0.001, dispatch=0, error=1014)
        total.merge(interval)
        out.append(Snapshot(second, interval, 7, total))
    return out


def test_a_log_gets_one_line_per_second_with_the_target_rate() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    with Progress(console, lambda second: 10.0 * (second + 1)) as progress:
        for snap in _snapshots():
            progress(snap)
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 3
    assert "t=   1s rate 11/s (target 10)" in lines[0]
    assert "(target 30)" in lines[2]
    assert "errors 1 (9.09% so far)" in lines[2]
    assert "agents 7" in lines[2]
    assert "done 33" in lines[2]


def test_a_terminal_line_is_redrawn_in_place_and_left_on_screen() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, color_system=None)
    with Progress(console, lambda second: None) as progress:
        for snap in _snapshots():
            progress(snap)
    out = buffer.getvalue()
    # the closed model has no target rate; the last second stays visible after the run
    assert "target" not in out
    assert "done 33" in out
    # redrawn in place: cursor-up/erase sequences, not three separate lines of history
    assert "\x1b[" in out
    assert out.count("\n") < 3
