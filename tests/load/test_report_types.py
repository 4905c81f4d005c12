"""The load report's TypedDicts and its run-time schema describe the same keys."""

from __future__ import annotations

from typing import get_type_hints

from tslic.client.load.report import REPORT_SCHEMA, TIMELINE_COLUMNS
from tslic.client.load.report_types import LoadReport, TimelineRow


def test_report_typeddict_matches_schema() -> None:
    assert set(get_type_hints(LoadReport)) == set(REPORT_SCHEMA)
    for key, hint in get_type_hints(LoadReport).items():
        nested = REPORT_SCHEMA[key]
        if isinstance(nested, dict) and key not in ("latency_ms", "distribution_ms"):
            assert set(get_type_hints(hint)) == set(nested), key


def test_timeline_row_matches_csv_columns() -> None:
    assert tuple(get_type_hints(TimelineRow)) == TIMELINE_COLUMNS
