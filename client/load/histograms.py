"""Per-second, exactly mergeable latency histograms (HdrHistogram) and counts.

Contract:
- Values are microseconds, tracked from 1 µs to one hour with 3 significant figures, in
  HdrHistogram's log-linear buckets: memory per histogram is fixed, whatever the sample count,
  and there is no per-sample storage anywhere.
- Four metrics per operation: `service` (actual send to reply), `lag` (intended to actual send:
  the schedule lag, which includes waiting for a free agent), `response` (intended send to
  reply, the coordinated-omission-free figure) and `dispatch` (intended instant to the moment
  the generator's own timer woke up for it: the generator's lateness, used by its self-check).
- `Interval` holds one second of one generator: the four histograms, the counts of scheduled,
  completed and failed operations, errors by wire code, and operations by kind. It travels as
  a JSON-able dict (`to_wire`/`from_wire`) whose histograms are HdrHistogram's own compressed
  base64 encoding, so merging across workers and machines is exact (`merge`: counts add,
  histogram buckets add).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TypedDict

from hdrh.histogram import HdrHistogram
from tslic.protocol.codec import Unvalidated

from .errors import UsageError

METRICS = ("service", "lag", "response", "dispatch")
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    """An empty histogram with the shared range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT)


def clamp_us(seconds: float) -> int:
    """`seconds` as whole microseconds inside the trackable range."""
    return min(HIGHEST_US, max(LOWEST_US, round(seconds * 1_000_000)))


def encode(hist: HdrHistogram) -> str:
    """HdrHistogram's compressed base64 form as text."""
    data: bytes = hist.encode()
    return data.decode("ascii")


def decode(text: str) -> HdrHistogram:
    """The inverse of `encode`.

    Raises:
        UsageError: the text is not an encoded histogram (a damaged results file).
    """
    try:
        hist: HdrHistogram = HdrHistogram.decode(text.encode("ascii"))
    except Exception as exc:  # the library raises assorted zlib/struct/value errors
        raise UsageError(f"a histogram in the results is damaged ({exc})") from None
    return hist


def summarize(hist: HdrHistogram, *, with_mean: bool = True) -> dict[str, float]:
    """Percentiles, max, min and (unless `with_mean` is false) mean in milliseconds, and the
    count.

    The percentiles come from one pass (`get_percentile_to_value_dict`, <1 ms) and the mean
    from the non-zero buckets (~3 ms), because the library's `get_mean_value` walks every
    bucket up to the max in Python (~30 ms: run once a second in the generator's loop, it
    stalled the dispatcher and showed as ~25 ms of schedule lag at p99)."""
    count = hist.get_total_count()
    out: dict[str, float] = {"count": float(count)}
    values = hist.get_percentile_to_value_dict(list(PERCENTILES)) if count else {}
    for p in PERCENTILES:
        out[percentile_key(p)] = values[p] / 1000 if count else 0.0
    out["max"] = hist.get_max_value() / 1000 if count else 0.0
    out["min"] = hist.get_min_value() / 1000 if count else 0.0
    if with_mean:
        out["mean"] = mean_us(hist) / 1000
    return out


def mean_us(hist: HdrHistogram) -> float:
    """The mean of the recorded values, each taken at its bucket's median equivalent value
    (as HdrHistogram's own mean does), in microseconds."""
    count: int = hist.get_total_count()
    if not count:
        return 0.0
    total = 0
    for index, n in enumerate(hist.counts):
        if n:
            value = hist.get_value_from_index(index)
            low = hist.get_lowest_equivalent_value(value)
            size = hist.get_highest_equivalent_value(value) + 1 - low
            total += int(n) * (int(low) + (int(size) >> 1))
    return total / count


def percentile_key(p: float) -> str:
    """50.0 -> "p50", 99.9 -> "p99.9"."""
    return "p" + (f"{p:g}")


class IntervalWire(TypedDict):
    """`Interval.to_wire`: one second of one generator, as it travels and is stored."""

    second: int
    scheduled: int
    completed: int
    ok: int
    errors: dict[str, int]  # wire error code (as text) -> count
    ops: dict[str, int]
    histograms: dict[str, str]  # metric -> compressed HdrHistogram


class Interval:
    """One second (or a whole run, when merged) of measurements."""

    __slots__ = ("completed", "errors", "hists", "ok", "ops", "scheduled", "second")

    def __init__(self, second: int) -> None:
        self.second = second
        self.hists: dict[str, HdrHistogram] = {m: new_histogram() for m in METRICS}
        self.scheduled = 0  # operations whose intended send fell in this second
        self.completed = 0  # operations that finished (with a reply or an error) in it
        self.ok = 0
        self.errors: Counter[int] = Counter()
        self.ops: Counter[str] = Counter()

    def record(
        self,
        op: str,
        *,
        service: float,
        lag: float,
        response: float,
        dispatch: float,
        error: int | None = None,
    ) -> None:
        """Count one finished operation; times in seconds."""
        self.hists["service"].record_value(clamp_us(service))
        self.hists["lag"].record_value(clamp_us(lag))
        self.hists["response"].record_value(clamp_us(response))
        self.hists["dispatch"].record_value(clamp_us(dispatch))
        self.completed += 1
        self.ops[op] += 1
        if error is None:
            self.ok += 1
        else:
            self.errors[error] += 1

    def merge(self, other: Interval) -> None:
        """Add `other` into this interval, exactly."""
        for m in METRICS:
            self.hists[m].add(other.hists[m])
        self.scheduled += other.scheduled
        self.completed += other.completed
        self.ok += other.ok
        self.errors.update(other.errors)
        self.ops.update(other.ops)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def is_empty(self) -> bool:
        return self.completed == 0 and self.scheduled == 0

    def to_wire(self) -> IntervalWire:
        """A JSON-able dict (histograms compressed)."""
        return {
            "second": self.second,
            "scheduled": self.scheduled,
            "completed": self.completed,
            "ok": self.ok,
            "errors": {str(code): n for code, n in sorted(self.errors.items())},
            "ops": dict(sorted(self.ops.items())),
            "histograms": {m: encode(self.hists[m]) for m in METRICS},
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Unvalidated]) -> Interval:
        """The inverse of `to_wire`.

        Raises:
            UsageError: the dict is not an interval.
        """
        try:
            interval = cls(int(data["second"]))
            interval.scheduled = int(data["scheduled"])
            interval.completed = int(data["completed"])
            interval.ok = int(data["ok"])
            interval.errors = Counter({int(k): int(v) for k, v in data["errors"].items()})
            interval.ops = Counter({str(k): int(v) for k, v in data["ops"].items()})
            encoded = data["histograms"]
            interval.hists = {m: decode(str(encoded[m])) for m in METRICS}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(f"a results interval is malformed (missing or bad {exc})") from None
        return interval


class Timeline:
    """Intervals by second, merged as they arrive, plus the whole-run total.

    Per-second intervals are kept in their compressed wire form (a few hundred bytes each),
    so a long run costs a little memory per second and none per sample."""

    def __init__(self) -> None:
        self._seconds: dict[int, IntervalWire] = {}
        self.total = Interval(-1)

    def add(self, interval: Interval) -> None:
        """Merge one generator's second into the timeline and the total."""
        self.total.merge(interval)
        known = self._seconds.get(interval.second)
        if known is None:
            self._seconds[interval.second] = interval.to_wire()
            return
        merged = Interval.from_wire(known)
        merged.merge(interval)
        self._seconds[interval.second] = merged.to_wire()

    def add_wire(self, data: dict[str, Unvalidated]) -> None:
        self.add(Interval.from_wire(data))

    def seconds(self) -> list[Interval]:
        """Every second, in order, decoded."""
        return [Interval.from_wire(self._seconds[s]) for s in sorted(self._seconds)]

    def wire_seconds(self) -> list[IntervalWire]:
        return [self._seconds[s] for s in sorted(self._seconds)]

    def get(self, second: int) -> Interval | None:
        """One second, merged over every generator so far (None if nothing was measured)."""
        known = self._seconds.get(second)
        return None if known is None else Interval.from_wire(known)

    def last(self) -> Interval | None:
        if not self._seconds:
            return None
        return Interval.from_wire(self._seconds[max(self._seconds)])
