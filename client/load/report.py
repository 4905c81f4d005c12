"""What a run shows: the JSON report (stable schema), console table, CSV and HTML files.

Contract:
- `build_report(result, thresholds)` returns the JSON report, schema `REPORT_SCHEMA_ID`,
  described key by key in docs/LOAD.md and by `REPORT_SCHEMA` (key -> type), which a test
  checks. Latencies are milliseconds; the achieved rate is printed next to the target rate.
- `write_reports(report, directory)` writes report.json, timeline.csv (one row per second)
  and report.html (self-contained: inline SVG plots of latency over time and of the
  percentile distribution; no external scripts or styles).
- `console_table(report)` renders the end-of-run table with rich (the live line while a run
  goes on is `progress.Progress`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TypeAlias

from rich.console import Console
from rich.table import Table
from tslic.protocol.errors import ErrorCode

from .coordinator import RunResult, expected_total
from .histograms import METRICS, PERCENTILES, percentile_key, summarize
from .html_report import render_html
from .report_types import LoadReport, Measured, TimelineRow
from .thresholds import Threshold, evaluate, exit_code

REPORT_SCHEMA_ID = "tslic-load-report/1"
DISTRIBUTION = (0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0)
_STAT_KEYS = (*[percentile_key(p) for p in PERCENTILES], "max", "min", "mean", "count")

SchemaEntry: TypeAlias = type | tuple[type, ...] | dict[str, "SchemaEntry"]
"""The type(s) a key's value may have; a nested dict describes a nested object."""

# key -> type(s) for the JSON report; nested dicts are described by nested schemas.
_LATENCY_SCHEMA: SchemaEntry = dict.fromkeys(_STAT_KEYS, (int, float))
REPORT_SCHEMA: dict[str, SchemaEntry] = {
    "schema": str,
    "target": str,
    "model": str,
    "model_description": str,
    "started_at": (int, float),
    "duration_s": (int, float),
    "shards": list,
    "workers": int,
    "agents": {"planned": int, "connected": int, "connect_errors": dict},
    "requests": {
        "scheduled": int,
        "completed": int,
        "ok": int,
        "failed": int,
        "by_operation": dict,
    },
    "rate": {"target": (int, float, type(None)), "achieved": (int, float)},
    "latency_ms": dict.fromkeys(METRICS, _LATENCY_SCHEMA),
    "distribution_ms": {"service": list, "response": list},
    "errors": {"count": int, "ratio": (int, float), "by_code": list},
    "verdict": {"status": str, "exit_code": int, "inconclusive": list, "thresholds": list},
    "timeline": list,
}
TIMELINE_COLUMNS = (
    "second",
    "scheduled",
    "completed",
    "ok",
    "errors",
    "target_rate",
    "service_p50_ms",
    "service_p99_ms",
    "service_max_ms",
    "lag_p99_ms",
    "response_p50_ms",
    "response_p99_ms",
    "response_max_ms",
)


def _round(value: float) -> float:
    return round(value, 3)


def build_report(result: RunResult, thresholds: list[Threshold] | None = None) -> LoadReport:
    """The JSON report of a run (see docs/LOAD.md for every key)."""
    config = result.config
    total = result.timeline.total
    schedule = config.schedule()
    planned = expected_total(config)
    duration = config.duration
    target_rate = planned / duration if planned is not None and duration > 0 else None
    failed = total.error_count
    timeline: list[TimelineRow] = []
    for interval in result.timeline.seconds():
        service = summarize(interval.hists["service"], with_mean=False)
        response = summarize(interval.hists["response"], with_mean=False)
        lag = summarize(interval.hists["lag"], with_mean=False)
        target = schedule.target_in(interval.second) if hasattr(schedule, "target_in") else None
        timeline.append(
            {
                "second": interval.second,
                "scheduled": interval.scheduled,
                "completed": interval.completed,
                "ok": interval.ok,
                "errors": interval.error_count,
                "target_rate": None if target is None else _round(target),
                "service_p50_ms": _round(service["p50"]),
                "service_p99_ms": _round(service["p99"]),
                "service_max_ms": _round(service["max"]),
                "lag_p99_ms": _round(lag["p99"]),
                "response_p50_ms": _round(response["p50"]),
                "response_p99_ms": _round(response["p99"]),
                "response_max_ms": _round(response["max"]),
            }
        )
    measured: Measured = {
        "schema": REPORT_SCHEMA_ID,
        "target": config.target,
        "model": config.model,
        "model_description": config.describe_model(),
        "started_at": result.started_at,
        "duration_s": duration,
        "shards": list(result.shards),
        "workers": len(result.workers),
        "agents": {
            "planned": config.agents,
            "connected": result.connected,
            "connect_errors": {_code_name(c): n for c, n in sorted(result.connect_errors.items())},
        },
        "requests": {
            "scheduled": total.scheduled,
            "completed": total.completed,
            "ok": total.ok,
            "failed": failed,
            "by_operation": dict(sorted(total.ops.items())),
        },
        "rate": {
            "target": None if target_rate is None else _round(target_rate),
            "achieved": _round(total.completed / duration if duration > 0 else 0.0),
        },
        "latency_ms": {
            m: {
                k: (int(v) if k == "count" else _round(v))
                for k, v in summarize(total.hists[m]).items()
            }
            for m in METRICS
        },
        "distribution_ms": {
            m: [
                [p, _round(total.hists[m].get_value_at_percentile(p) / 1000)]
                for p in DISTRIBUTION
                if total.hists[m].get_total_count()
            ]
            for m in ("service", "response")
        },
        "errors": {
            "count": failed,
            "ratio": failed / total.completed if total.completed else 0.0,
            "by_code": [
                {"code": c, "name": _code_name(c), "count": n}
                for c, n in sorted(total.errors.items())
            ],
        },
        "timeline": timeline,
    }
    results = evaluate(measured, thresholds or [])
    reasons = result.inconclusive
    code = exit_code(reasons, results)
    status = {0: "pass", 1: "thresholds-failed", 3: "inconclusive"}[code]
    return {
        **measured,
        "verdict": {
            "status": status,
            "exit_code": code,
            "inconclusive": reasons,
            "thresholds": results,
        },
    }


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


def check_schema(
    report: Mapping[str, object], schema: Mapping[str, SchemaEntry] = REPORT_SCHEMA
) -> list[str]:
    """Differences between `report` and the documented schema (empty: it conforms)."""
    problems = []
    for key, expected in schema.items():
        if key not in report:
            problems.append(f"missing key {key!r}")
            continue
        value = report[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                problems.append(f"{key!r} is not an object")
            else:
                problems.extend(f"{key}.{p}" for p in check_schema(value, expected))
        elif not isinstance(value, expected) or isinstance(value, bool):
            problems.append(f"{key!r} has type {type(value).__name__}")
    problems.extend(f"unexpected key {k!r}" for k in report if k not in schema)
    return problems


# ---- files ---------------------------------------------------------------------------------


def write_reports(report: LoadReport, directory: Path) -> list[Path]:
    """Write report.json, timeline.csv and report.html into `directory` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "report.json", directory / "timeline.csv", directory / "report.html"]
    paths[0].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    with paths[1].open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=TIMELINE_COLUMNS)
        writer.writeheader()
        for row in report["timeline"]:
            cells: Mapping[str, object] = row
            writer.writerow({k: "" if cells[k] is None else cells[k] for k in TIMELINE_COLUMNS})
    paths[2].write_text(render_html(report), encoding="utf-8")
    return paths


# ---- console -------------------------------------------------------------------------------


def console_table(report: LoadReport, console: Console) -> None:
    """Print the end-of-run summary."""
    rate = report["rate"]
    target = "—" if rate["target"] is None else f"{rate['target']:g}/s"
    console.print(
        f"[bold]{report['target']}[/]: {report['model_description']}, {report['duration_s']:g} s, "
        f"{report['agents']['connected']}/{report['agents']['planned']} terminal servers, "
        f"{report['workers']} generator(s)"
    )
    console.print(
        f"rate achieved [bold]{rate['achieved']:g}/s[/] (target {target}); "
        f"{report['requests']['completed']} completed, {report['requests']['failed']} failed"
    )
    table = Table(title="latency (ms)")
    table.add_column("metric")
    for key in ("p50", "p90", "p99", "p99.9", "max"):
        table.add_column(key, justify="right")
    for metric, label in (
        ("service", "service time"),
        ("lag", "schedule lag"),
        ("response", "response time"),
    ):
        stats = report["latency_ms"][metric]
        table.add_row(label, *(f"{stats[k]:.3f}" for k in ("p50", "p90", "p99", "p99.9", "max")))
    console.print(table)
    if report["errors"]["by_code"]:
        errors = Table(title="errors by code")
        for column in ("code", "name", "count"):
            errors.add_column(column)
        for e in report["errors"]["by_code"]:
            errors.add_row(str(e["code"]), e["name"], str(e["count"]))
        console.print(errors)
    verdict = report["verdict"]
    for t in verdict["thresholds"]:
        mark = "[green]ok[/]" if t["passed"] else "[red]FAILED[/]"
        console.print(f"threshold {t['threshold']}: {t['actual']:.4g} {mark}")
    for reason in verdict["inconclusive"]:
        console.print(f"[yellow]inconclusive:[/] {reason}")
    console.print(f"verdict: [bold]{verdict['status']}[/] (exit code {verdict['exit_code']})")
