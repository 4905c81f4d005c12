"""Reporting: a live line per case, a summary by rule section, JUnit XML, JSON, coverage.

Contract:
- `progress_line(result)` is the one line printed as each case finishes.
- `summary_table(report)` groups results by rule area (FRAME, ENV, ...) with counts per verdict.
- `to_json(report)` follows the schema documented in docs/CONFORMANCE.md, identified by
  `"schema": "tslic-conformance/1"`; fields are only ever added, never renamed or removed.
- `to_junit(report)`: one <testcase> per case (classname = rule area, name = case id);
  failing verdicts are <failure>, unsupported/informational are <skipped>, non-strict passes
  carry a <properties> note (as the Autobahn test suite reports them).
- `coverage(cases, rules)` lists which MUST and SHOULD rules have cases, and which do not.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from typing import TypedDict

from rich.table import Table
from rich.text import Text

from .coverage import Coverage as Coverage
from .coverage import coverage as coverage
from .coverage import coverage_json as coverage_json
from .coverage import coverage_lines as coverage_lines
from .coverage import coverage_table as coverage_table
from .model import Case, Result, Verdict
from .runner import SuiteReport

SCHEMA = "tslic-conformance/1"

_STYLE = {
    Verdict.PASS: "green",
    Verdict.NON_STRICT: "yellow",
    Verdict.WRONG_CODE: "red",
    Verdict.UNCLEAN: "red",
    Verdict.FAIL: "bold red",
    Verdict.TIMEOUT: "red",
    Verdict.UNSUPPORTED: "dim",
    Verdict.INFORMATIONAL: "cyan",
}


def progress_line(result: Result, index: int, total: int) -> Text:
    """`[ 12/140] pass            FRAME-2:zero-length  3.1 ms  (reject 1.2 ms)`."""
    line = Text(f"[{index:>4}/{total}] ")
    line.append(f"{result.verdict:<16}", style=_STYLE[result.verdict])
    line.append(f" {result.case.id}")
    line.append(f"  {result.duration * 1000:.1f} ms", style="dim")
    if result.time_to_reject is not None:
        line.append(f" (reject {result.time_to_reject * 1000:.1f} ms)", style="dim")
    if result.status in ("failed", "xpass", "xfail"):
        line.append(f"  [{result.status}] {result.actual}", style="red")
    if result.evidence:
        line.append(f"  evidence: {result.evidence}", style="dim")
    return line


def summary_table(report: SuiteReport) -> Table:
    table = Table(title=f"tslic conformance: {report.config.target} as {report.config.role}")
    table.add_column("section")
    for verdict in Verdict:
        table.add_column(str(verdict), justify="right")
    table.add_column("failed", justify="right")
    by_area: dict[str, list[Result]] = {}
    for result in report.results:
        by_area.setdefault(result.case.area, []).append(result)
    for area, results in by_area.items():
        counts = Counter(r.verdict for r in results)
        failed = sum(r.status in ("failed", "xpass") for r in results)
        table.add_row(
            area,
            *(str(counts.get(v, "")) for v in Verdict),
            Text(str(failed or ""), style="bold red" if failed else ""),
        )
    return table


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


class SummaryJson(TypedDict):
    cases: int
    verdicts: dict[str, int]
    failed: int
    exit_status: int


class ReportJson(TypedDict):
    """The --json report of a run (docs/CONFORMANCE.md)."""

    schema: str
    target: str
    role: str
    strict: bool
    seed: int
    timeout_s: float
    started: str
    wall_time_s: float
    summary: SummaryJson
    prepared: list[str]
    results: list[dict[str, object]]


def to_json(report: SuiteReport) -> ReportJson:
    counts = Counter(str(r.verdict) for r in report.results)
    return {
        "schema": SCHEMA,
        "target": report.config.target,
        "role": str(report.config.role),
        "strict": report.config.strict,
        "seed": report.config.seed,
        "timeout_s": report.config.timeout,
        "started": _iso(report.started),
        "wall_time_s": round(report.wall_time, 3),
        "summary": {
            "cases": len(report.results),
            "verdicts": dict(sorted(counts.items())),
            "failed": len(report.failed),
            "exit_status": report.exit_status,
        },
        "prepared": list(report.prepared),
        "results": [r.to_json() for r in report.results],
    }


def to_junit(report: SuiteReport) -> bytes:
    failures = sum(r.status in ("failed", "xpass") for r in report.results)
    skipped = sum(r.verdict in (Verdict.UNSUPPORTED, Verdict.INFORMATIONAL) for r in report.results)
    suite = ET.Element(
        "testsuite",
        name=f"tslic-conformance {report.config.role}",
        tests=str(len(report.results)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
        time=f"{report.wall_time:.3f}",
        timestamp=_iso(report.started),
    )
    for r in report.results:
        tc = ET.SubElement(
            suite, "testcase", classname=r.case.area, name=r.case.id, time=f"{r.duration:.3f}"
        )
        props = ET.SubElement(tc, "properties")
        for name, value in (
            ("rule", r.case.rule),
            ("level", str(r.case.level)),
            ("verdict", str(r.verdict)),
            ("expected", " | ".join(r.case.expected)),
            ("actual", r.actual),
        ):
            ET.SubElement(props, "property", name=name, value=value)
        if r.time_to_reject is not None:
            ET.SubElement(props, "property", name="time_to_reject_ms",
                          value=f"{r.time_to_reject * 1000:.3f}")  # fmt: skip
        if r.verdict is Verdict.NON_STRICT:
            ET.SubElement(props, "property", name="note", value="passed non-strictly")
        if r.status in ("failed", "xpass"):
            what = "expected failure passed" if r.status == "xpass" else str(r.verdict)
            failure = ET.SubElement(tc, "failure", message=f"{what}: {r.actual}", type=what)
            failure.text = "\n".join([f"rule: {r.case.rule_text}", *r.notes])
        elif r.verdict in (Verdict.UNSUPPORTED, Verdict.INFORMATIONAL) or r.status == "xfail":
            ET.SubElement(tc, "skipped", message=f"{r.verdict}: {r.actual}")
    return bytes(ET.tostring(suite, encoding="utf-8", xml_declaration=True))


def list_rows(cases: Sequence[Case]) -> list[dict[str, object]]:
    return [
        {"id": c.id, "rule": c.rule, "level": str(c.level), "roles": sorted(map(str, c.roles)),
         "description": c.description, "expected": list(c.expected), "rule_text": c.rule_text}
        for c in cases
    ]  # fmt: skip
