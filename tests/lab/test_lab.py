"""The lab as a test: the README's first command plays every scenario as documented.

The lab starts real daemons as separate processes, so this test runs it as a user would
(`python -m tslic.cli lab`) and reads its JSON report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tslic.cli.lab.catalogue import CATALOGUE
from tslic.protocol.rules import load_rules

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


def lab(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:  # hang guard
    return subprocess.run(
        [sys.executable, "-m", "tslic.cli", "lab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_every_scenario_behaves_as_documented(tmp_path: Path) -> None:
    report_path = tmp_path / "lab.json"
    result = lab("--data", str(tmp_path / "data"), "--json", str(report_path), "--quiet")
    report = json.loads(report_path.read_text())
    deviations = {
        s["name"]: [c for c in s["checks"] if not c["ok"]] or s["error"]
        for s in report["scenarios"]
        if s["verdict"] != "as documented"
    }
    assert deviations == {}, result.stdout[-3000:]
    assert result.returncode == 0
    assert [s["name"] for s in report["scenarios"]] == list(CATALOGUE)
    assert len(report["scenarios"]) >= 13
    assert "scenarios as documented" in result.stdout
    # Every daemon was stopped: nothing of the deployment outlives the lab.
    assert leftover_processes(str(tmp_path / "data")) == []


def leftover_processes(marker: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text:
            found.append(text)
    return found


def test_scenarios_cite_rules_that_exist() -> None:
    known = {rule.id for rule in load_rules(DOC.read_text())}
    for item in CATALOGUE.values():
        assert item.rules, item.name
        assert set(item.rules) <= known, (item.name, set(item.rules) - known)


def test_list_and_unknown_scenario() -> None:
    listed = lab("--list")
    assert listed.returncode == 0
    for name in CATALOGUE:
        assert name in listed.stdout
    unknown = lab("--scenario", "no-such-scenario")
    assert unknown.returncode == 2
    assert "unknown scenario" in unknown.stdout
