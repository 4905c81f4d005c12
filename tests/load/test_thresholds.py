"""Threshold parsing, evaluation and the exit codes."""

from __future__ import annotations

import pytest
from tslic.client.load.errors import EXIT_INCONCLUSIVE, EXIT_PASS, EXIT_THRESHOLDS, UsageError
from tslic.client.load.report_types import Measured
from tslic.client.load.thresholds import evaluate, exit_code, parse_threshold


@pytest.mark.parametrize(
    ("text", "which", "op", "value"),
    [
        ("p99<20ms", "response.p99", "<", 20.0),
        ("p99.9 <= 1s", "response.p99.9", "<=", 1000.0),
        ("service.p50<500us", "service.p50", "<", 0.5),
        ("lag.max<100", "lag.max", "<", 100.0),
        ("dispatch.p99<5ms", "dispatch.p99", "<", 5.0),
    ],
)
def test_latency_thresholds(text: str, which: str, op: str, value: float) -> None:
    t = parse_threshold(text)
    assert (t.metric, t.which, t.op) == ("latency", which, op)
    assert t.value == pytest.approx(value)


def test_error_and_rate_thresholds() -> None:
    ratio = parse_threshold("errors<0.1%")
    assert ratio.metric == "errors_ratio"
    assert ratio.value == pytest.approx(0.001)
    count = parse_threshold("errors<=10")
    assert (count.metric, count.value) == ("errors_count", 10.0)
    rate = parse_threshold("rate>900")
    assert (rate.metric, rate.op, rate.value) == ("rate", ">", 900.0)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("p99", "METRIC OP VALUE"),
        ("p98<5ms", "unknown metric"),
        ("service.p99<5kg", "not a time unit"),
        ("errors<5ms", "% or a plain count"),
        ("rate>5ms", "requests per second"),
        ("latency=5", "METRIC OP VALUE"),
    ],
)
def test_bad_thresholds_say_what_is_accepted(text: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        parse_threshold(text)


def _report(p99: float, ratio: float, achieved: float) -> Measured:
    latency = {k: p99 for k in ("p50", "p90", "p99", "p99.9", "max", "mean")}
    return {
        "schema": "tslic-load-report/1",
        "target": "127.0.0.1:1",
        "model": "open",
        "model_description": "open model",
        "started_at": 0.0,
        "duration_s": 1.0,
        "shards": ["0/1"],
        "workers": 1,
        "agents": {"planned": 1, "connected": 1, "connect_errors": {}},
        "requests": {"scheduled": 1, "completed": 1, "ok": 1, "failed": 0, "by_operation": {}},
        "latency_ms": {m: latency for m in ("service", "lag", "response", "dispatch")},
        "distribution_ms": {},
        "errors": {"ratio": ratio, "count": 3, "by_code": []},
        "rate": {"target": None, "achieved": achieved},
        "timeline": [],
    }


def test_evaluate_and_exit_codes() -> None:
    thresholds = [parse_threshold(t) for t in ("p99<20ms", "errors<0.1%", "rate>=900")]
    good = evaluate(_report(10.0, 0.0005, 950.0), thresholds)
    assert all(r["passed"] for r in good)
    assert exit_code([], good) == EXIT_PASS == 0
    slow = evaluate(_report(25.0, 0.0005, 950.0), thresholds)
    assert [r["passed"] for r in slow] == [False, True, True]
    assert slow[0]["actual"] == 25.0
    assert exit_code([], slow) == EXIT_THRESHOLDS == 1
    # an inconclusive run is never blamed on the target, whatever the thresholds say
    assert exit_code(["worker 0 fell behind"], slow) == EXIT_INCONCLUSIVE == 3
    assert exit_code(["worker 0 fell behind"], good) == 3
    assert exit_code([], []) == 0
