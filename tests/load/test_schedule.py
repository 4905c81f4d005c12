"""Workload models: duration and stage parsing, the intended-send-time math, shares."""

from __future__ import annotations

import itertools
import math

import pytest
from tslic.client.load.errors import UsageError
from tslic.client.load.schedule import (
    ClosedSchedule,
    OpenSchedule,
    Share,
    Stage,
    parse_duration,
    parse_shard,
    parse_stages,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("1m30s", 90.0), ("2.5", 2.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "s30", "1m 30s", "-5"])
def test_parse_duration_rejects_with_a_readable_message(text: str) -> None:
    with pytest.raises(UsageError, match="duration"):
        parse_duration(text)


def test_parse_stages() -> None:
    assert parse_stages("30s:100,60s:2000,30s:0") == (
        Stage(30.0, 100.0),
        Stage(60.0, 2000.0),
        Stage(30.0, 0.0),
    )
    for bad, needle in [("30s", "DURATION:RATE"), ("30s:x", "not a rate"), ("0s:5", "no time")]:
        with pytest.raises(UsageError, match=needle):
            parse_stages(bad)


def test_constant_rate_is_evenly_spaced_and_exact() -> None:
    schedule = OpenSchedule.constant(100, 2.0)
    times = list(schedule.times())
    assert schedule.total() == 200
    assert len(times) == 200
    assert [k for k, _ in times] == list(range(200))
    for k, t in times:
        assert t == pytest.approx(k / 100)
    assert schedule.target_in(0) == pytest.approx(100)


def test_linear_ramp_follows_the_integral_of_the_rate() -> None:
    # 0 -> 100/s over 10 s: N(t) = 5 t^2, 500 requests, request k at sqrt(k / 5).
    schedule = OpenSchedule((Stage(10.0, 100.0),))
    times = list(schedule.times())
    assert schedule.total() == 500
    for k, t in times:
        assert t == pytest.approx(math.sqrt(k / 5), abs=1e-9)
    assert schedule.rate_at(5.0) == pytest.approx(50.0)
    # Over each second the count matches the target (the ramp's integral).
    per_second = [sum(1 for _, t in times if s <= t < s + 1) for s in range(10)]
    assert per_second == [math.ceil(5 * (s + 1) ** 2) - math.ceil(5 * s**2) for s in range(10)]


def test_up_hold_down_stages() -> None:
    schedule = OpenSchedule(parse_stages("2s:100,2s:100,2s:0"))
    times = list(schedule.times())
    assert schedule.total() == 100 + 200 + 100
    intended = [t for _, t in times]
    assert intended == sorted(intended)
    assert intended[-1] < 6.0
    # in the flat part the spacing is exactly 1/100 s
    flat = [t for t in intended if 2.0 <= t < 4.0]
    assert len(flat) == 200
    assert all(b - a == pytest.approx(0.01) for a, b in itertools.pairwise(flat))


def test_shares_partition_the_schedule_exactly() -> None:
    schedule = OpenSchedule(parse_stages("3s:70,2s:10"))
    whole = dict(schedule.times())
    for shard in Share().split(3):
        parts = shard.split(2)
        got: dict[int, float] = {}
        for part in parts:
            mine = dict(schedule.times(part))
            assert not set(mine) & set(got)
            got.update(mine)
            assert part.count_of(schedule.total()) == len(mine)
        assert got == {k: t for k, t in whole.items() if shard.owns(k)}
    assert sum(len(dict(schedule.times(s))) for s in Share().split(5)) == len(whole)


def test_parse_shard_and_closed_model() -> None:
    assert parse_shard("1/3") == Share(1, 3)
    for bad in ["3/3", "a/2", "1", "1/0"]:
        with pytest.raises(UsageError, match="--shard"):
            parse_shard(bad)
    closed = ClosedSchedule(5, 1.0)
    assert closed.loops(Share(1, 2)) == [1, 3]
    with pytest.raises(UsageError, match="concurrency"):
        ClosedSchedule(0, 1.0)
