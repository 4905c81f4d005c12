"""HdrHistogram intervals: exact merging across workers and through the wire form."""

from __future__ import annotations

import random

import pytest
from tslic.client.load.errors import UsageError
from tslic.client.load.histograms import (
    METRICS,
    PERCENTILES,
    Interval,
    Timeline,
    decode,
    encode,
    new_histogram,
    percentile_key,
    summarize,
)


def _same(a: object, b: object) -> None:
    from hdrh.histogram import HdrHistogram

    assert isinstance(a, HdrHistogram)
    assert isinstance(b, HdrHistogram)
    assert a.get_total_count() == b.get_total_count()
    assert a.get_max_value() == b.get_max_value()
    assert a.get_min_value() == b.get_min_value()
    for p in (1, 10, 50, 90, 99, 99.9, 99.99, 100):
        assert a.get_value_at_percentile(p) == b.get_value_at_percentile(p)
    assert [
        (i.value_iterated_to, i.count_at_value_iterated_to) for i in a.get_recorded_iterator()
    ] == [(i.value_iterated_to, i.count_at_value_iterated_to) for i in b.get_recorded_iterator()]


def test_merging_worker_histograms_equals_one_histogram_of_all_values() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(7, 2)) + 1 for _ in range(20_000)]
    whole = new_histogram()
    parts = [new_histogram() for _ in range(4)]
    for i, v in enumerate(values):
        whole.record_value(v)
        parts[i % 4].record_value(v)
    merged = new_histogram()
    for part in parts:
        # through the wire form, as between processes and machines
        merged.add(decode(encode(part)))
    _same(merged, whole)


def test_interval_wire_round_trip_and_merge() -> None:
    a, b, both = Interval(3), Interval(3), Interval(3)
    rng = random.Random(1)
    for n in range(500):
        kwargs = {m: rng.random() / 10 for m in METRICS}
        error = 3002 if n % 50 == 0 else None
        target = a if n % 3 else b
        target.record("new", error=error, **kwargs)
        both.record("new", error=error, **kwargs)
        target.scheduled += 1
        both.scheduled += 1
    a2 = Interval.from_wire(a.to_wire())
    a2.merge(Interval.from_wire(b.to_wire()))
    assert a2.to_wire() == both.to_wire()
    assert a2.errors == {3002: 10}
    assert a2.completed == a2.ok + a2.error_count == 500


def test_timeline_merges_the_same_second_from_several_workers() -> None:
    timeline = Timeline()
    for worker in range(3):
        for second in range(2):
            interval = Interval(second)
            interval.record("mark", service=0.001 * (worker + 1), lag=0, response=0.002, dispatch=0)
            timeline.add(interval)
    seconds = timeline.seconds()
    assert [s.second for s in seconds] == [0, 1]
    assert all(s.completed == 3 for s in seconds)
    assert timeline.total.completed == 6
    assert timeline.total.hists["service"].get_max_value() == pytest.approx(3000, rel=1e-3)


def test_a_damaged_interval_is_a_usage_error() -> None:
    wire = Interval(0).to_wire()
    histograms = wire["histograms"]
    assert isinstance(histograms, dict)
    histograms["service"] = "not base64 at all"
    with pytest.raises(UsageError, match="damaged"):
        Interval.from_wire(wire)
    with pytest.raises(UsageError, match="malformed"):
        Interval.from_wire({"second": 1})


def test_the_summary_matches_the_library() -> None:
    """The mean from the non-zero buckets equals HdrHistogram's own (which walks every
    bucket in Python and took ~30 ms, stalling the generator's loop once a second)."""
    hist = new_histogram()
    for i in range(1, 2000):
        hist.record_value(i * 997 % 1_500_000 + 1)
    summary = summarize(hist)
    assert summary["mean"] == pytest.approx(hist.get_mean_value() / 1000, rel=1e-12)
    for p in PERCENTILES:
        assert summary[percentile_key(p)] == hist.get_value_at_percentile(p) / 1000
    assert "mean" not in summarize(hist, with_mean=False)
    assert summarize(new_histogram())["mean"] == 0.0
