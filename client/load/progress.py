"""The live status of a run: rate (achieved / target), errors, response p99, agents connected.

Contract: `Progress(console, target_at)` is called with a `Snapshot` after every second of
the run. On a terminal it redraws one status line in place (rich `Live`), as k6 and vegeta
do; elsewhere (a pipe, CI logs) it prints one line per second, so a log keeps the history.
Use it as a context manager around the run so the live line is closed (and left on screen)
at the end. `target_at(second)` is the schedule's target rate in that second (None for the
closed model, which has no target rate).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text

from .coordinator import Snapshot
from .histograms import summarize


class Progress:
    """The live one-line status, refreshed once a second."""

    def __init__(self, console: Console, target_at: Callable[[int], float | None]) -> None:
        self.console = console
        self.target_at = target_at
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self._live = Live(
                Text("connecting..."), console=self.console, auto_refresh=False, transient=False
            )
            self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def line(self, snap: Snapshot) -> str:
        """The status text for one second (rich markup)."""
        interval = snap.interval
        p99 = summarize(interval.hists["response"], with_mean=False)["p99"]
        total = snap.total
        ratio = total.error_count / total.completed if total.completed else 0.0
        target = self.target_at(snap.second)
        wanted = "" if target is None else f" (target {target:.0f})"
        return (
            f"[dim]t={snap.second + 1:>4}s[/] rate {interval.completed}/s{wanted}  "
            f"errors {interval.error_count} ({ratio:.2%} so far)  response p99 {p99:.2f} ms  "
            f"agents {snap.connected}  done {total.completed}"
        )

    def __call__(self, snap: Snapshot) -> None:
        text = self.line(snap)
        if self._live is not None:
            self._live.update(Text.from_markup(text), refresh=True)
        else:
            self.console.print(text, highlight=False)
