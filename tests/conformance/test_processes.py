"""End to end, as an operator would: `tslic conformance prepare` writes the manifest, the
target is started as a process with the command line it prints (after the data set-up it
prints, for a Clearinghouse), and `tslic conformance --manifest` runs as a process against it.
Every case must pass (or be unsupported with its reason). Wall times are printed (-s)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

TSLIC = [sys.executable, "-m", "tslic.cli"]


def _argv(command: list[str]) -> list[str]:
    """A manifest command ("tslic ...") as this interpreter runs it."""
    assert command[0] == "tslic"
    return [*TSLIC, *command[1:]]


def _prepare(tmp_path: Path, role: str, *extra: str) -> dict[str, Any]:
    done = subprocess.run([*TSLIC, "conformance", "prepare", "--role", role, "--out",
                           str(tmp_path / "prep"), *extra],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    manifest: dict[str, Any] = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    assert "start the target with" in done.stdout
    return manifest


def _run(tmp_path: Path, manifest: dict[str, Any], ready: dict[str, str], *extra: str) -> (
    dict[str, Any]
):  # fmt: skip
    argv = _argv(manifest["suite_command"])
    argv[argv.index("TARGET")] = ready["address"]
    here = " ".join(TSLIC)  # the commands the suite runs, as this interpreter runs them
    argv = [a.replace("tslic ", here + " ", 1) if a.startswith("tslic ") else a for a in argv]
    started = time.monotonic()
    suite = subprocess.run([*argv, "--timeout", "3", "--flood", "20", "--exclude", "LIMIT-2:*",
                            *extra, "--json", str(tmp_path / "report.json")],
                           capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    took = time.monotonic() - started
    path = tmp_path / "report.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    failed = [f"{r['id']}: {r['verdict']} {r['actual']} {r['notes']}"
              for r in report.get("results", []) if r["status"] in ("failed", "xpass")]  # fmt: skip
    assert suite.returncode == 0, "\n".join(failed) or suite.stderr[-2000:]
    print(f"{manifest['role']}: {len(report['results'])} cases in {took:.1f} s")
    return report


def _start(argv: list[str]) -> tuple[subprocess.Popen[str], dict[str, str]]:
    daemon = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert daemon.stdout is not None
    line = daemon.stdout.readline()  # the readiness line; blocks until bound
    assert line, daemon.communicate(timeout=10)[1][-2000:]
    ready: dict[str, str] = json.loads(line)
    return daemon, ready


def _stop(daemon: subprocess.Popen[str]) -> str:
    """Stop the daemon gracefully; return what it wrote to stderr."""
    daemon.terminate()
    _, err = daemon.communicate(timeout=10)
    assert daemon.returncode == 0, err[-2000:]
    return err


def _passed(report: dict[str, Any], ids: list[str]) -> None:
    results = {r["id"]: r for r in report["results"]}
    for case_id in ids:
        assert results[case_id]["verdict"] == "pass", results[case_id]


@pytest.mark.parametrize("version", ["2003", "2000"])
def test_agent_process(version: str, tmp_path: Path) -> None:
    manifest = _prepare(tmp_path, "agent", "--agent-version", version)
    daemon, ready = _start(_argv(manifest["target_command"]))
    try:
        report = _run(tmp_path, manifest, ready)
    finally:
        err = _stop(daemon)
    # DISC-6: the manifest configures a source of the other version; it is kept and ignored
    ignored = "--default-license-server" if version == "2003" else "--license-server"
    assert f"warning: {ignored}" in err, err[-2000:]
    order = "DISC-1:order-2003" if version == "2003" else "DISC-3:order-2000"
    workgroup = (
        "DISC-2:workgroup-order-2003" if version == "2003" else "DISC-4:workgroup-order-2000"
    )
    _passed(report, ["GRACE-2:grace-starts-at-first-client", "GRACE-1:grace-length",
                     "EVT-1:event-1008", "TEMP-5:agent-marks-after-logon",
                     "LEASE-7:expired-permanent-disconnected", order,
                     "RDP-4:new-license-path", "GRACE-9:grace-plus-one-temporary",
                     "DISC-5:member-server-not-found", "DISC-6:foreign-source-ignored",
                     "GRACE-4:first-permanent-cal-ends-grace", workgroup,
                     "CAL-12:agent-follows-referral", "SEC-12:agent-passes-on-chained-license",
                     "SEC-12:agent-refuses-bad-signature", "SEC-12:agent-refuses-foreign-root",
                     "SEC-12:agent-refuses-unactivated-permanent"])  # fmt: skip
    # SEC-12: the agent was started with the suite's Clearinghouse root
    assert "--trust-root" in manifest["target_command"]
    assert "--trust-root" in manifest["fresh_agent_command"]


def test_clearinghouse_process(tmp_path: Path) -> None:
    manifest = _prepare(tmp_path, "clearinghouse")
    for command in manifest["target_setup"]:
        subprocess.run(_argv(command), capture_output=True, timeout=60, check=True)
    daemon, ready = _start(_argv(manifest["target_command"]))
    try:
        report = _run(tmp_path, manifest, ready, "--web", ready["web"])
    finally:
        _stop(daemon)
    _passed(report, ["CH-2:program-number-formats", "CH-3:already-redeemed-and-retry",
                     "CH-5:xp-acquired-2003-04-24", "CH-6:transition-offer-ended",
                     "ACT-13:mistyped-license-server-id"])  # fmt: skip


def test_license_server_process_with_the_suites_clearinghouse(tmp_path: Path) -> None:
    manifest = _prepare(tmp_path, "license-server")
    daemon, ready = _start(_argv(manifest["target_command"]))
    try:
        report = _run(tmp_path, manifest, ready)
    finally:
        _stop(daemon)
    _passed(report, ["CAL-2:license-upgrade", "CAL-7:user-cal-uncounted", "CH-8:bad-grant-refused",
                     "ACT-11:telephone-two-steps", "LEASE-5:deactivated-refuses-renewal",
                     "SEC-12:expired-ts-certificate"])  # fmt: skip
