"""Tests of tslic.protocol.grace: the terminal-server grace period and its events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tslic.protocol.domain import WindowsVersion
from tslic.protocol.events import TermsrvEvent
from tslic.protocol.grace import (
    GRACE_WARNING_DAYS,
    DiscoveryIntervals,
    GracePeriod,
)
from tslic.protocol.policy import GraceEnd

T0 = datetime(2004, 1, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)


def started(version: WindowsVersion) -> GracePeriod:
    return GracePeriod(version=version).start(T0)


def test_not_started() -> None:
    g = GracePeriod(version=WindowsVersion.W2003)
    assert g.started_at is None
    assert g.expires_at is None
    assert g.in_grace(T0)
    assert g.days_left(T0) == 120
    assert g.due_events(T0 + 365 * DAY) == ()


def test_start_is_idempotent() -> None:
    g = started(WindowsVersion.W2000)
    assert g.started_at == T0
    assert g.start(T0 + DAY) is g
    assert g.expires_at == T0 + 90 * DAY


@pytest.mark.parametrize(
    ("version", "days"), [(WindowsVersion.W2000, 90), (WindowsVersion.W2003, 120)]
)
def test_length_boundary(version: WindowsVersion, days: int) -> None:
    g = started(version)
    assert g.days_left(T0) == days
    assert g.days_left(T0 + days * DAY - TICK) == 1
    assert g.in_grace(T0 + days * DAY - TICK)
    assert g.days_left(T0 + days * DAY) == 0
    assert not g.in_grace(T0 + days * DAY)
    assert g.days_left(T0 + 1000 * DAY) == 0


def test_90_days_is_still_grace_on_2003_only() -> None:
    at = T0 + 90 * DAY
    assert not started(WindowsVersion.W2000).in_grace(at)
    assert started(WindowsVersion.W2003).in_grace(at)
    assert started(WindowsVersion.W2003).days_left(at) == 30


def test_days_left_rounds_up() -> None:
    g = started(WindowsVersion.W2003)
    assert g.days_left(T0 + TICK) == 120
    assert g.days_left(T0 + DAY) == 119


def test_first_permanent_cal_ends_grace_by_default() -> None:
    g = started(WindowsVersion.W2003)
    assert g.end(T0 + DAY, GraceEnd.FIRST_LICENSE_SERVER) is g  # not the default rule
    ended = g.end(T0 + 10 * DAY, GraceEnd.FIRST_PERMANENT_CAL)
    assert ended.ended_at == T0 + 10 * DAY
    assert ended.end_reason is GraceEnd.FIRST_PERMANENT_CAL
    assert not ended.in_grace(T0 + 10 * DAY)
    assert ended.days_left(T0 + 11 * DAY) == 0
    assert ended.in_grace(T0 + 5 * DAY)  # asked about an earlier time
    assert ended.end(T0 + 20 * DAY, GraceEnd.FIRST_PERMANENT_CAL) is ended  # first end wins


def test_first_license_server_rule_before_any_client_leaves_no_grace() -> None:
    g = GracePeriod(version=WindowsVersion.W2003, end_rule=GraceEnd.FIRST_LICENSE_SERVER)
    g = g.end(T0, GraceEnd.FIRST_PERMANENT_CAL)
    assert g.ended_at is None
    g = g.end(T0, GraceEnd.FIRST_LICENSE_SERVER).start(T0 + DAY)
    assert not g.in_grace(T0 + DAY)
    assert g.due_events(T0 + 200 * DAY) == ()


def test_warning_then_expired_events_at_boundaries() -> None:
    g = started(WindowsVersion.W2003)
    warn_from = g.expires_at
    assert warn_from is not None
    warn_from -= GRACE_WARNING_DAYS * DAY
    assert GRACE_WARNING_DAYS == 15
    assert g.due_events(warn_from) == ()
    assert g.due_events(warn_from + TICK) == (1009,)
    assert g.due_events(warn_from + TICK, frozenset({1009})) == ()
    assert g.due_events(T0 + 120 * DAY - TICK, frozenset({1009})) == ()
    assert g.due_events(T0 + 120 * DAY, frozenset({1009})) == (TermsrvEvent.GRACE_EXPIRED,)
    assert g.due_events(T0 + 121 * DAY, frozenset({1009, 1008})) == ()


def test_skipped_warning_window_logs_only_1008() -> None:
    g = started(WindowsVersion.W2000)
    assert g.due_events(T0 + 200 * DAY) == (1008,)


def test_no_events_once_licensed() -> None:
    g = started(WindowsVersion.W2003).end(T0 + 110 * DAY, GraceEnd.FIRST_PERMANENT_CAL)
    assert g.due_events(T0 + 111 * DAY) == ()
    assert g.due_events(T0 + 130 * DAY) == ()


@given(
    version=st.sampled_from(WindowsVersion),
    steps=st.lists(st.integers(1, 30 * 24), min_size=1, max_size=60),
)
def test_each_event_logged_once_in_order(version: WindowsVersion, steps: list[int]) -> None:
    g = started(version)
    logged: list[int] = []
    now = T0
    for hours in [*steps, 200 * 24]:
        now += timedelta(hours=hours)
        logged.extend(g.due_events(now, frozenset(logged)))
    assert logged.count(1008) == 1
    assert logged.count(1009) <= 1
    assert logged[-1] == 1008


def test_validation() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        GracePeriod(version=WindowsVersion.W2003).start(datetime(2004, 1, 1))
    with pytest.raises(ValueError, match="started_at"):
        GracePeriod(version=WindowsVersion.W2003, started_at=datetime(2004, 1, 1))
    with pytest.raises(ValueError, match="together"):
        GracePeriod(version=WindowsVersion.W2003, ended_at=T0)


def test_discovery_intervals() -> None:
    d = DiscoveryIntervals()
    assert d.retry_when_none_found == timedelta(minutes=15)
    assert d.rediscovery == timedelta(hours=1)
    assert d.liveness_check == timedelta(hours=2)
    assert DiscoveryIntervals(rediscovery=timedelta(minutes=5)).rediscovery.seconds == 300
    with pytest.raises(ValueError, match="liveness_check"):
        DiscoveryIntervals(liveness_check=timedelta(0))
