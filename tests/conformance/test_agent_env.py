"""The agent cases that need the suite to play the agent's license servers (the manifest of
`tslic conformance prepare --role agent`), against tslic's own agent and against the agent with
one rule broken by monkeypatching: each broken agent must get `fail` on its rule."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from tslic.client.conformance.basics import Role
from tslic.client.conformance.catalogue import all_cases, load_spec
from tslic.client.conformance.model import Result, Verdict
from tslic.client.conformance.prepare import prepare
from tslic.client.conformance.runner import SuiteConfig, run_suite
from tslic.protocol.domain import WindowsVersion
from tslic.runtime.clock import FileClock

from tests.conformance.timing import HANDSHAKE, TARGET_LIMITS

RULES = load_spec()
AGENT_GAPS: tuple[str, ...] = ()
ENV_RULES = [
    "GRACE-*",
    "EVT-*",
    "COMPAT-1",
    "DISC-*",
    "TEMP-*",
    "LEASE-*",
    "RDP-7",
    "RDP-8",
    "SEC-4",
    "CAL-12",
]


async def run_agent(
    tmp_path: Path, only: Sequence[str], version: int = 2003, fresh_break: str = ""
) -> dict[str, Result]:
    """Run the cases `only` against tslic's agent in-process, prepared as the manifest says;
    `fresh_break` names a break of tests/conformance/broken_agent.py for the second terminal
    server the suite starts itself (the manifest's fresh_agent_command)."""
    from tslic.client.agent.cli import add_arguments, build_config
    from tslic.client.agent.service import Agent

    manifest = prepare(Role.AGENT, tmp_path / "prep", start_ms=1_100_000_000_000, version=version)
    clock = FileClock(manifest["clock_file"], poll=0.01)
    if fresh_break:
        path = tmp_path / "prep" / "manifest.json"
        command = manifest["fresh_agent_command"]
        manifest["fresh_agent_command"] = [sys.executable, "-m", "tests.conformance.broken_agent",
                                           fresh_break, *command[1:]]  # fmt: skip
        path.write_text(json.dumps(manifest))
    # The agent the manifest describes, configured by the command line it gives (in-process,
    # so a test may break one rule of it by monkeypatching).
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(manifest["target_command"][2:])
    config = build_config(args)
    data = args.data
    agent = Agent(config, data, clock, limits=TARGET_LIMITS)
    events = f"{sys.executable} -m tslic.cli agent events --data {data} --json"
    state = (f"{sys.executable} -m tslic.cli agent status --data {data} --json"
             f" --clock-file {manifest['clock_file']}")  # fmt: skip
    async with trio.open_nursery() as nursery:
        nursery.start_soon(clock.watch)
        address = await nursery.start(agent.serve)
        cfg = SuiteConfig(target=address, role=Role.AGENT, timeout=2.0, handshake_timeout=HANDSHAKE,
                          manifest=tmp_path / "prep" / "manifest.json", events_command=events,
                          status_command=state,
                          expect_fail=AGENT_GAPS,
                          only=only)  # fmt: skip
        report = await run_suite(cfg, all_cases(RULES))
        agent.shutdown()
        nursery.cancel_scope.cancel()
    return {r.case.id: r for r in report.results}


@pytest.mark.parametrize("version", [2003, 2000])
async def test_agent_passes_the_environment_cases(version: int, tmp_path: Path) -> None:
    results = await run_agent(tmp_path, ENV_RULES, version)
    other = {2003: ("DISC-3", "DISC-4"), 2000: ("DISC-1", "DISC-2", "DISC-7", "COMPAT-1")}[version]
    bad = [f"{i}: {r.verdict} {r.actual} {r.notes}" for i, r in results.items()
           if r.verdict is not Verdict.PASS and not r.case.untestable
           and r.case.rule not in other and r.status != "xfail"]  # fmt: skip
    assert not bad, "\n".join(bad)
    assert not [r for r in results.values() if r.status not in ("ok", "xfail")]


def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent whose grace period lasts 30 days whatever its version."""
    monkeypatch.setattr(WindowsVersion, "grace_days", property(lambda self: 30))


def _accepts_2000_ls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2003 agent that uses a Windows 2000 license server which welcomed it."""
    from tslic.client.agent import discovery

    real = discovery.LicenseServers._after_hello

    async def lax(self: Any, entry: Any, stream: Any, *, need_cert: bool) -> Any:
        if stream.welcome.version == 2000:
            entry.version = 2003  # forget that the server is a Windows 2000 one
            object.__setattr__(stream.welcome, "version", 2003)
        return await real(self, entry, stream, need_cert=need_cert)

    monkeypatch.setattr(discovery.LicenseServers, "_after_hello", lax)


def _skips_enterprise(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that never tries the enterprise license servers of its site."""
    from tslic.client.agent import discovery
    from tslic.protocol.discovery import discovery_order as real  # what the agent imported

    def without(**kw: Any) -> Any:
        return real(**{**kw, "enterprise": ()})

    monkeypatch.setattr(discovery, "discovery_order", without)


def _echoes_expired_temporary(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that never sees a presented license as expired: when the license server
    refuses, it hands the client's expired temporary license back as still valid."""
    from tslic.client.agent import licensing

    monkeypatch.setattr(licensing, "is_expired", lambda expires, now: False)


def _broadcasts_in_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent in a domain that also tries the servers answering a broadcast (last)."""
    from tslic.client.agent import discovery
    from tslic.protocol.discovery import Candidate
    from tslic.protocol.domain import HowDiscovered

    real = discovery.LicenseServers._gather

    async def wider(self: Any) -> Any:
        found = await real(self)
        return [*found, *((Candidate(name=n.name, how=HowDiscovered.WORKGROUP), n.address)
                          for n in self.config.subnet_servers)]  # fmt: skip

    monkeypatch.setattr(discovery.LicenseServers, "_gather", wider)


def _honours_default_license_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2003 agent that also tries a DefaultLicenseServer value (a 2000 setting), last."""
    from tslic.client.agent import discovery
    from tslic.protocol.discovery import Candidate
    from tslic.protocol.domain import HowDiscovered

    real = discovery.LicenseServers._gather

    async def wider(self: Any) -> Any:
        found = await real(self)
        old = self.config.default_license_server
        extra = [(Candidate(name=old.name, how=HowDiscovered.REGISTRY), old.address)] if old else []
        return [*found, *extra]

    monkeypatch.setattr(discovery.LicenseServers, "_gather", wider)


@pytest.mark.parametrize(
    ("patch", "only", "case_id"),
    [
        (_short_grace, ["GRACE-1"], "GRACE-1:grace-length"),
        (_skips_enterprise, ["DISC-1"], "DISC-1:order-2003"),
        (_accepts_2000_ls, ["GRACE-3", "GRACE-1", "COMPAT-1"], "COMPAT-1:agent-refuses-2000-ls"),
        (_echoes_expired_temporary, ["GRACE-2", "GRACE-9"], "GRACE-9:grace-plus-one-temporary"),
        (_broadcasts_in_domain, ["DISC-5"], "DISC-5:member-server-not-found"),
        (_honours_default_license_server, ["DISC-6"], "DISC-6:foreign-source-ignored"),
    ],
    ids=[
        "30-day grace",
        "skips the enterprise server of its site",
        "2003 agent accepts a 2000 license server",
        "works past grace plus one temporary",
        "broadcasts in a domain",
        "uses a DefaultLicenseServer on 2003",
    ],
)
async def test_broken_agent_fails_its_rule(
    patch: Any, only: list[str], case_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch(monkeypatch)
    results = await run_agent(tmp_path, only)
    assert results[case_id].verdict is Verdict.FAIL, results[case_id]


@pytest.mark.parametrize(
    ("fresh_break", "only", "version", "case_id"),
    [
        ("grace-never-ends-early", ["GRACE-4"], 2003, "GRACE-4:first-permanent-cal-ends-grace"),
        ("alternative-grace-end", ["GRACE-4"], 2003, "GRACE-4:first-permanent-cal-ends-grace"),
        ("fixed-broadcast-order", ["DISC-2"], 2003, "DISC-2:workgroup-order-2003"),
        ("fixed-broadcast-order", ["DISC-4"], 2000, "DISC-4:workgroup-order-2000"),
    ],
    ids=[
        "grace not ended by a permanent CAL",
        "grace-ends first-license-server (the switch's alternative)",
        "fixed broadcast order 2003",
        "fixed order 2000",
    ],
)
async def test_broken_fresh_agent_fails_its_rule(
    fresh_break: str, only: list[str], version: int, case_id: str, tmp_path: Path
) -> None:
    """The second terminal server the suite starts itself, run with one rule broken."""
    results = await run_agent(tmp_path, only, version, fresh_break)
    assert results[case_id].verdict is Verdict.FAIL, results[case_id]


SEC12 = [
    "SEC-12:agent-passes-on-chained-license",
    "SEC-12:agent-refuses-bad-signature",
    "SEC-12:agent-refuses-foreign-root",
    "SEC-12:agent-refuses-unactivated-permanent",
]


@pytest.mark.parametrize("version", [2003, 2000])
async def test_agent_checks_the_licenses_of_its_license_server(
    version: int, tmp_path: Path
) -> None:
    """SEC-12 alone (the agent in its grace period, its second license server made valid)."""
    results = await run_agent(tmp_path, ["SEC-12"], version)
    for case_id in SEC12:
        assert results[case_id].verdict is Verdict.PASS, results[case_id]


def _skips_license_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that hands a client whatever license its license server issued, reading it
    without checking its signature or its issuer's chain."""
    from tslic.client.agent import licensing
    from tslic.protocol import licenses
    from tslic.protocol.certs import cert_from_der, identity_of

    def unchecked(blob: bytes, *_: Any) -> licenses.SignedLicense:
        encoded, chain, _signature = licenses._split(blob)
        issuer = identity_of(cert_from_der(chain[-1]))
        return licenses.SignedLicense(licenses._decode_body(encoded), chain, issuer)

    monkeypatch.setattr(licensing, "open_license", unchecked)
    monkeypatch.setattr(licensing, "verify_license", unchecked)


def _skips_chain_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that checks a license's signature but not its issuer's chain."""
    from tslic.client.agent import licensing
    from tslic.protocol.licenses import open_license

    monkeypatch.setattr(licensing, "verify_license", lambda blob, root, now: open_license(blob))


@pytest.mark.parametrize(
    ("patch", "failing"),
    [(_skips_license_check, SEC12[1:]), (_skips_chain_check, SEC12[2:])],
    ids=["hands on any license", "checks the signature, not the chain"],
)
async def test_agent_skipping_the_license_check_fails_sec_12(
    patch: Any, failing: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch(monkeypatch)
    results = await run_agent(tmp_path, ["SEC-12"])
    assert results[SEC12[0]].verdict is Verdict.PASS, results[SEC12[0]]
    for case_id in failing:
        assert results[case_id].verdict is Verdict.FAIL, results[case_id]
