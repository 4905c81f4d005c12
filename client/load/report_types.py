"""The shapes of the load generator's documents: the JSON report and a worker's summary.

Contract: types only (TypedDicts), so that `report`, `thresholds`, `html_report` and
`coordinator` read the same keys without importing each other. docs/LOAD.md describes every
key of `LoadReport`; `report.REPORT_SCHEMA` checks a report against the same description at
run time.
"""

from __future__ import annotations

from typing import TypedDict


class WorkerJson(TypedDict):
    """`summary.WorkerSummary.to_wire`: what one generator says about itself at the end."""

    worker: int
    agents: int
    connected: int
    connect_errors: dict[str, int]  # wire error code (as text) -> agents refused with it
    cpu_share: float
    cpu_seconds: float
    cpu_system_seconds: float
    dispatch_p99_ms: float
    inconclusive: list[str]


class TimelineRow(TypedDict):
    """One second of the run (a row of timeline.csv)."""

    second: int
    scheduled: int
    completed: int
    ok: int
    errors: int
    target_rate: float | None
    service_p50_ms: float
    service_p99_ms: float
    service_max_ms: float
    lag_p99_ms: float
    response_p50_ms: float
    response_p99_ms: float
    response_max_ms: float


class AgentsJson(TypedDict):
    planned: int
    connected: int
    connect_errors: dict[str, int]  # error code name -> agents refused with it


class RequestsJson(TypedDict):
    scheduled: int
    completed: int
    ok: int
    failed: int
    by_operation: dict[str, int]


class RateJson(TypedDict):
    target: float | None
    achieved: float


class ErrorCount(TypedDict):
    code: int
    name: str
    count: int


class ErrorsJson(TypedDict):
    count: int
    ratio: float
    by_code: list[ErrorCount]


class ThresholdResult(TypedDict):
    """`thresholds.evaluate`: one threshold, its measured value and whether it held."""

    threshold: str
    actual: float
    passed: bool


class VerdictJson(TypedDict):
    status: str  # pass | thresholds-failed | inconclusive
    exit_code: int
    inconclusive: list[str]
    thresholds: list[ThresholdResult]


class Measured(TypedDict):
    """The report before its verdict: what the thresholds are evaluated against."""

    schema: str
    target: str
    model: str
    model_description: str
    started_at: float
    duration_s: float
    shards: list[str]
    workers: int
    agents: AgentsJson
    requests: RequestsJson
    rate: RateJson
    latency_ms: dict[str, dict[str, float]]  # metric -> statistic (p50 ... count) -> ms
    distribution_ms: dict[str, list[list[float]]]  # metric -> [percentile, ms] pairs
    errors: ErrorsJson
    timeline: list[TimelineRow]


class LoadReport(Measured):
    """The JSON report (schema tslic-load-report/1)."""

    verdict: VerdictJson
