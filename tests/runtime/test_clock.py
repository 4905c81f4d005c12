"""Clocks: runtime.clock (TrioClock, ManualClock, WallClock) and protocol.clock (ClockSpec,
dates). Virtual time under `autojump_clock`; no real sleeping."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from tslic.protocol.clock import (
    MS_PER_DAY,
    ClockSpec,
    format_date,
    from_datetime,
    parse_date,
    to_datetime,
)
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.runtime.clock import ManualClock, TrioClock, WallClock, real_seconds_for

START = 1_051_747_200_000  # 2003-05-01 00:00 UTC


async def test_trio_clock_months_in_seconds(autojump_clock: trio.testing.MockClock) -> None:
    clock = TrioClock(START, speed=86_400)  # one virtual day per real (virtual-trio) second
    assert clock.now() == START
    t0 = trio.current_time()
    target = START + 120 * MS_PER_DAY  # the end of a Windows Server 2003 grace period
    await clock.sleep_until(target)
    assert target <= clock.now() < target + 1000  # not early, and late by under a second
    assert trio.current_time() - t0 == pytest.approx(120.0, abs=1e-3)
    assert format_date(clock.now()) == "2003-08-29 00:00"


async def test_trio_clock_speed_one_and_past_targets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = TrioClock(START)
    t0 = trio.current_time()
    await clock.sleep_until(START + 5_000)
    assert trio.current_time() - t0 == pytest.approx(5.0)
    assert clock.now() == START + 5_000
    await clock.sleep_until(START)  # already past: returns without sleeping
    assert trio.current_time() - t0 == pytest.approx(5.0)


async def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(START)
    woke: list[int] = []

    async def sleeper() -> None:
        await clock.sleep_until(START + MS_PER_DAY)
        woke.append(clock.now())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await trio.testing.wait_all_tasks_blocked()
        assert woke == []
        clock.advance(ms=MS_PER_DAY - 1)
        await trio.testing.wait_all_tasks_blocked()
        assert woke == []  # one millisecond short
        clock.advance(ms=1)
    assert woke == [START + MS_PER_DAY]
    clock.advance(days=1.5)
    assert clock.now() == START + MS_PER_DAY + MS_PER_DAY * 3 // 2
    assert clock.speed == 1.0


def test_wall_clock_with_a_spec() -> None:
    anchor = time.time()
    clock = WallClock(ClockSpec(start=START, anchor=anchor, speed=10.0))
    assert clock.speed == 10.0
    first = clock.now()
    # At most a minute of real time passes in this test, so at most 10 virtual minutes.
    assert START <= first < START + 600_000
    assert clock.now() >= first  # monotone enough for a wall clock
    assert real_seconds_for(clock, 10_000) == pytest.approx(1.0)
    assert real_seconds_for(clock, -5) == 0.0


def test_wall_clock_real_time_and_starting() -> None:
    real = WallClock()
    assert abs(real.now() - time.time() * 1000) < 60_000
    assert WallClock.starting(None).spec == ClockSpec(speed=1.0)
    fast = WallClock.starting(START, 3600.0)
    assert fast.spec.start == START
    assert fast.speed == 3600.0
    assert START <= fast.now() < START + 3600 * 60_000


async def test_wall_clock_sleep_until_is_never_early() -> None:
    # At a million virtual seconds per real second, 500 virtual ms is half a real µs: the
    # loop must still not return before the wall clock says so.
    clock = WallClock(ClockSpec(start=START, anchor=time.time(), speed=1_000_000.0))
    target = clock.now() + 500
    await clock.sleep_until(target)
    assert clock.now() >= target


# ---- ClockSpec ------------------------------------------------------------------------------


def test_clock_spec_arithmetic() -> None:
    spec = ClockSpec(start=1000, anchor=10.0, speed=2.0)
    assert spec.at(10.0) == 1000
    assert spec.at(11.5) == 1000 + 3000
    assert spec.real_seconds(4000) == 2.0
    assert ClockSpec().at(12.345) == 12345
    assert ClockSpec(start=START, anchor=0.0, speed=86_400).real_seconds(MS_PER_DAY) == 1.0


@given(
    start=st.integers(min_value=0, max_value=2**53),
    anchor=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    speed=st.floats(min_value=1e-6, max_value=10_000_000, allow_nan=False),
)
def test_clock_spec_arg_round_trip(start: int, anchor: float, speed: float) -> None:
    spec = ClockSpec(start=start, anchor=anchor, speed=speed)
    again = ClockSpec.from_arg(spec.to_arg())
    assert again == spec
    assert again.at(anchor + 1.0) == spec.at(anchor + 1.0)


def test_real_time_spec_round_trip() -> None:
    assert ClockSpec().to_arg() == "real"
    assert ClockSpec.from_arg("real") == ClockSpec()


@pytest.mark.parametrize(
    "text",
    ["", "fast", "yesterday@1x2", "1@2", "1x2", "1@2x3x4", "1.5@2x3", "1@2xfast", "1@nanx2"],
)
def test_clock_spec_bad_args(text: str) -> None:
    with pytest.raises(ServiceError) as info:
        ClockSpec.from_arg(text)
    assert info.value.code is ErrorCode.INVALID_FIELD


@pytest.mark.parametrize("speed", [0.0, -1.0, 10_000_001.0, math.inf, math.nan])
def test_clock_spec_speed_limits(speed: float) -> None:
    with pytest.raises(ServiceError) as info:
        ClockSpec(start=START, speed=speed)
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert "speed" in info.value.message


@pytest.mark.parametrize("anchor", [math.nan, math.inf, -math.inf])
def test_clock_spec_anchor_must_be_finite(anchor: float) -> None:
    with pytest.raises(ServiceError) as info:
        ClockSpec(start=START, anchor=anchor)
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert "anchor" in info.value.message


# ---- dates ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2003-05-01", START),
        ("2003-05-01T09:00", START + 9 * 3_600_000),
        ("2003-05-01T09:00+02:00", START + 7 * 3_600_000),
        ("2000-02-29", 951_782_400_000),
    ],
)
def test_parse_date(text: str, ms: int) -> None:
    assert parse_date(text) == ms


@pytest.mark.parametrize("text", ["", "May 1st", "2003-13-01", "2003-02-29", "01/05/2003"])
def test_parse_date_errors(text: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_date(text)
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert "2003-05-01" in info.value.message  # the error shows the expected format


def test_datetime_conversions() -> None:
    assert to_datetime(START) == datetime(2003, 5, 1, tzinfo=UTC)
    assert from_datetime(datetime(2003, 5, 1)) == START  # naive means UTC
    assert format_date(START + 90 * MS_PER_DAY) == "2003-07-30 00:00"
