"""Thresholds as SLOs (`--threshold 'p99<20ms'`) and the exit code they set.

Contract:
- A threshold is `METRIC OP VALUE`. OP is one of <, <=, >, >=. METRIC is
  - a latency statistic: `p50`, `p90`, `p99`, `p99.9`, `max`, `mean`, of response time (the
    honest, intended-to-reply figure) unless qualified: `service.p99`, `lag.p99`,
    `response.p99`, `dispatch.p99`; VALUE takes `us`, `ms` (the default) or `s`;
  - `errors`: the failed share of completed requests with `%` (`errors<0.1%`), else a count;
  - `rate`: the achieved rate in requests per second (`rate>900`, `/s` optional).
- `parse_threshold` raises `UsageError` with a message that shows the accepted forms.
- `evaluate(report, thresholds)` checks them against a JSON report (report.build_report).
- `exit_code(inconclusive, results)`: `EXIT_INCONCLUSIVE` (3) if the run is invalid or
  inconclusive, whatever the thresholds say; else `EXIT_THRESHOLDS` (1) if one failed; else 0.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import EXIT_INCONCLUSIVE, EXIT_PASS, EXIT_THRESHOLDS, UsageError
from .report_types import Measured, ThresholdResult

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_STATS = ("p50", "p90", "p99", "p99.9", "max", "mean")
_LATENCY_METRICS = ("service", "lag", "response", "dispatch")
_PATTERN = re.compile(r"^\s*([a-z][a-z0-9.]*)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+)\s*([a-z%/]*)\s*$")
_TIME_UNITS = {"us": 0.001, "µs": 0.001, "ms": 1.0, "s": 1000.0, "": 1.0}
HELP = (
    "write thresholds like 'p99<20ms', 'service.p99.9<=50ms', 'lag.max<100ms', "
    "'errors<0.1%', 'errors<=10' or 'rate>900'"
)


@dataclass(frozen=True, slots=True)
class Threshold:
    """One parsed threshold."""

    text: str
    metric: str  # "latency", "errors_ratio", "errors_count" or "rate"
    which: str  # for latency: "response.p99"; else ""
    op: str
    value: float  # ms for latency, a fraction for errors_ratio

    def check(self, actual: float) -> bool:
        return _OPS[self.op](actual, self.value)


def parse_threshold(text: str) -> Threshold:
    """Parse one `--threshold`.

    Raises:
        UsageError: the text is not a threshold we know.
    """
    match = _PATTERN.match(text.lower().replace("µs", "us"))
    if match is None:
        raise UsageError(f"--threshold {text!r} is not METRIC OP VALUE; {HELP}")
    name, op, raw, unit = match.groups()
    value = float(raw)
    if name == "errors":
        if unit == "%":
            return Threshold(text, "errors_ratio", "", op, value / 100)
        if unit:
            raise UsageError(f"--threshold {text!r}: errors take a % or a plain count")
        return Threshold(text, "errors_count", "", op, value)
    if name == "rate":
        if unit not in ("", "/s", "rps"):
            raise UsageError(f"--threshold {text!r}: a rate is in requests per second")
        return Threshold(text, "rate", "", op, value)
    head, dot, rest = name.partition(".")
    metric, stat = (head, rest) if dot and head in _LATENCY_METRICS else ("response", name)
    if metric not in _LATENCY_METRICS or stat not in _STATS:
        raise UsageError(f"--threshold {text!r}: unknown metric {name!r}; {HELP}")
    if unit not in _TIME_UNITS:
        raise UsageError(f"--threshold {text!r}: {unit!r} is not a time unit (us, ms, s)")
    return Threshold(text, "latency", f"{metric}.{stat}", op, value * _TIME_UNITS[unit])


def actual_value(report: Measured, threshold: Threshold) -> float:
    """The measured value a threshold is compared with."""
    if threshold.metric == "errors_ratio":
        return float(report["errors"]["ratio"])
    if threshold.metric == "errors_count":
        return float(report["errors"]["count"])
    if threshold.metric == "rate":
        return float(report["rate"]["achieved"])
    metric, _, stat = threshold.which.partition(".")
    return float(report["latency_ms"][metric][stat])


def evaluate(report: Measured, thresholds: list[Threshold]) -> list[ThresholdResult]:
    """Each threshold with its measured value and whether it held."""
    out: list[ThresholdResult] = []
    for threshold in thresholds:
        actual = actual_value(report, threshold)
        out.append(
            {"threshold": threshold.text, "actual": actual, "passed": threshold.check(actual)}
        )
    return out


def exit_code(inconclusive: list[str], results: list[ThresholdResult]) -> int:
    """0 pass, 1 thresholds failed, 3 run invalid or inconclusive."""
    if inconclusive:
        return EXIT_INCONCLUSIVE
    if any(not r["passed"] for r in results):
        return EXIT_THRESHOLDS
    return EXIT_PASS
