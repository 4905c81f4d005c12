"""The self-contained HTML report: inline SVG plots, no scripts, no external files.

Contract: `render_html(report)` turns a JSON report (report.build_report) into one HTML page
with the summary, the latency table, a latency-over-time plot (response p99 and max, service
p99, schedule lag p99, per second) and a percentile-distribution plot (response and service
time on HdrHistogram's log percentile axis), and the errors by code.
"""

from __future__ import annotations

import html
import math

from .report_types import LoadReport


def _svg_lines(
    title: str,
    series: dict[str, list[tuple[float, float]]],
    x_label: str,
    *,
    x_ticks: list[tuple[float, str]] | None = None,
) -> str:
    """A small line chart as inline SVG (no scripts)."""
    width, height, pad = 720, 300, 50
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    points = [p for s in series.values() for p in s]
    if not points:
        return f"<p>{html.escape(title)}: no data.</p>"
    x_max = max(x for x, _ in points) or 1.0
    y_max = max(y for _, y in points) or 1.0

    def sx(x: float) -> float:
        return pad + (width - 2 * pad) * x / x_max

    def sy(y: float) -> float:
        return height - pad - (height - 2 * pad) * y / y_max

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">'
        f"{html.escape(title)}</text>",
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#333"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#333"/>',
        f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle" font-size="12">'
        f"{html.escape(x_label)}</text>",
    ]
    for i in range(5):
        y = y_max * i / 4
        parts.append(
            f'<text x="{pad - 4}" y="{sy(y) + 4:.1f}" text-anchor="end" font-size="10">'
            f"{y:.3g} ms</text>"
        )
    for x, label in x_ticks or [(x_max * i / 4, f"{x_max * i / 4:.3g}") for i in range(5)]:
        parts.append(
            f'<text x="{sx(x):.1f}" y="{height - pad + 14}" text-anchor="middle" '
            f'font-size="10">{html.escape(label)}</text>'
        )
    for n, (name, data) in enumerate(series.items()):
        colour = colours[n % len(colours)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in data)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coords}"/>'
        )
        parts.append(
            f'<text x="{width - pad - 150}" y="{pad + 14 * n}" fill="{colour}" font-size="11">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _percentile_x(p: float) -> float:
    """HdrHistogram's percentile axis: log10(1 / (1 - p)), capped at 99.999 %."""
    return math.log10(1 / (1 - min(p, 99.999) / 100))


def render_html(report: LoadReport) -> str:
    """A self-contained HTML report."""
    timeline = report["timeline"]
    over_time = _svg_lines(
        "Latency over time (ms)",
        {
            "response p99": [(r["second"], r["response_p99_ms"]) for r in timeline],
            "response max": [(r["second"], r["response_max_ms"]) for r in timeline],
            "service p99": [(r["second"], r["service_p99_ms"]) for r in timeline],
            "schedule lag p99": [(r["second"], r["lag_p99_ms"]) for r in timeline],
        },
        "seconds since start",
    )
    ticks = [(_percentile_x(p), f"{p:g}%") for p in (0, 90, 99, 99.9, 99.99, 99.999)]
    distribution = _svg_lines(
        "Percentile distribution (ms)",
        {
            f"{m} time": [(_percentile_x(p), v) for p, v in report["distribution_ms"][m]]
            for m in ("response", "service")
        },
        "percentile",
        x_ticks=ticks,
    )
    rows = "".join(
        f"<tr><th>{m}</th>"
        + "".join(
            f"<td>{report['latency_ms'][m][k]}</td>" for k in ("p50", "p90", "p99", "p99.9", "max")
        )
        + "</tr>"
        for m in ("service", "lag", "response")
    )
    errors = (
        "".join(
            f"<tr><td>{e['code']}</td><td>{html.escape(e['name'])}</td><td>{e['count']}</td></tr>"
            for e in report["errors"]["by_code"]
        )
        or "<tr><td colspan='3'>none</td></tr>"
    )
    verdict = report["verdict"]
    checks = "".join(
        f"<li>{html.escape(t['threshold'])}: {t['actual']:.4g} — "
        f"{'passed' if t['passed'] else 'FAILED'}</li>"
        for t in verdict["thresholds"]
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in verdict["inconclusive"])
    rate = report["rate"]
    target = "—" if rate["target"] is None else f"{rate['target']:g}/s"
    shards = html.escape(", ".join(report["shards"]))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tslic load report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>
<h1>tslic load report</h1>
<p>Target <b>{html.escape(report["target"])}</b>; {html.escape(report["model_description"])};
{report["duration_s"]:g} s; {report["agents"]["connected"]} of {report["agents"]["planned"]}
terminal servers connected; {report["workers"]} generator(s), shards {shards}.</p>
<p>Rate: achieved <b>{rate["achieved"]:g}/s</b> against target {target}.
Requests: {report["requests"]["completed"]} completed, {report["requests"]["failed"]} failed.</p>
<p>Verdict: <b>{html.escape(verdict["status"])}</b> (exit code {verdict["exit_code"]})</p>
<ul>{checks}{reasons}</ul>
<h2>Latency (ms)</h2>
<table><tr><th></th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>{rows}</table>
<p>Service time: actual send to reply. Schedule lag: intended to actual send. Response time:
intended send to reply (what a user of the target experiences, coordinated omission included).</p>
{over_time}
{distribution}
<h2>Errors by code</h2>
<table><tr><th>code</th><th>name</th><th>count</th></tr>{errors}</table>
</body></html>
"""
