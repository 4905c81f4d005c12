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
from tslic.protocol import Conversation
from tslic.protocol.domain import WindowsVersion
from tslic.runtime.clock import FileClock, WallClock, write_clock_file
from tslic.runtime.service import Server

from tests.conformance.doubles import Double
from tests.conformance.test_agent_env import run_agent
from tests.conformance.test_ch_rules import run_ch
from tests.conformance.test_ls_rules import run_with_suite_clearinghouse
from tests.conformance.timing import HANDSHAKE, TARGET_LIMITS

RULES = load_spec()
FAST = TARGET_LIMITS
MINE = ["MSG-12", "ACT-14", "ENV-14", "ENV-16", "STATE-1", "STATE-4", "CLOCK-1", "CAL-5", "EVT-12"]


def _config(address: str, role: Role, only: Sequence[str], **kw: Any) -> SuiteConfig:
    values: dict[str, Any] = {"timeout": 2.0, "handshake_timeout": HANDSHAKE, **kw}
    return SuiteConfig(target=address, role=role, only=list(only), **values)


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
    assert results["CAL-5:unactivated-no-built-in"].verdict is Verdict.PASS


async def test_license_server_as_a_client_never_pipelines(tmp_path: Path) -> None:
    results = await run_with_suite_clearinghouse(tmp_path, ["STATE-4"])
    assert results["STATE-4:target-never-pipelines"].verdict is Verdict.PASS, results


async def test_directory_passes(tmp_path: Path) -> None:
    _all_pass(await run_dir(tmp_path, MINE), 5)


async def test_clearinghouse_passes(tmp_path: Path) -> None:
    _all_pass(await run_ch(tmp_path, MINE), 5)


async def test_agent_passes(tmp_path: Path) -> None:
    # The grace cases run first: they make the agent log the events EVT-12 reads.
    results = await run_agent(tmp_path, [*MINE, "GRACE-*", "EVT-*"])
    _all_pass({i: r for i, r in results.items() if r.case.rule in MINE}, 5)
    assert results["EVT-12:event-wording"].verdict is Verdict.PASS


# ---- broken targets fail on the rule ------------------------------------------------------


async def run_double(behaviour: str, only: Sequence[str]) -> dict[str, Result]:
    double = Double(behaviour, Conversation.DIRECTORY, WallClock.starting(None))
    async with trio.open_nursery() as nursery:
        address = await nursery.start(double.serve)
        cfg = _config(address, Role.DIRECTORY, only, timeout=0.5)
        report = await run_suite(cfg, all_cases(RULES))
        nursery.cancel_scope.cancel()
    return _by_id(report.results)


@pytest.mark.parametrize(
    ("behaviour", "case_id"),
    [
        ("version-first", "ENV-14:bad-signature-and-version"),
        ("bad-signature", "ENV-14:bad-signature-and-stale"),
        ("rehello", "STATE-1:second-conversation"),
        ("unordered-fields", "ENV-16:target-encoding"),
    ],
    ids=[
        "checks the version before the signature",
        "accepts a bad signature",
        "welcomes a second Hello",
        "writes fields out of table order",
    ],
)
async def test_broken_double_fails_its_rule(behaviour: str, case_id: str) -> None:
    results = await run_double(behaviour, [case_id])
    assert results[case_id].verdict is Verdict.FAIL, results[case_id]


async def test_good_double_passes_the_same_cases() -> None:
    ids = ["ENV-14:bad-signature-and-version", "STATE-1:second-conversation",
           "ENV-16:target-encoding"]  # fmt: skip
    results = await run_double("good", ids)
    assert {i: r.verdict for i, r in results.items()} == dict.fromkeys(ids, Verdict.PASS)


def _lax_directory_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory that takes any computer, site, domain or group name."""
    from tslic.protocol.messages import base

    monkeypatch.setattr(base, "problem", lambda kind, value: None)


def _agent_takes_long_machine_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that takes a client's machine name of up to 100 characters."""
    from tslic.protocol.messages import rdp

    monkeypatch.setattr(rdp, "REMOTE_NAME_MAX", 100)


def _unbound_license_server_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Clearinghouse that lets any license server claim a web License Server ID."""
    from tslic.server.clearinghouse import core

    monkeypatch.setattr(core, "_check_bound", lambda code, named, public_key: None)


def _modern_event_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent whose grace-period event speaks of Remote Desktop Licensing (later words)."""
    from tslic.client.agent import events

    templates = dict(events._TEMPLATES)
    templates[events.EventId.GRACE_EXPIRED] = (
        "error", "The Remote Desktop licensing grace period has expired.")  # fmt: skip
    monkeypatch.setattr(events, "_TEMPLATES", templates)


def _built_in_regardless(monkeypatch: pytest.MonkeyPatch) -> None:
    """A license server that issues built-in licenses before it is activated."""
    from tslic.protocol import policy
    from tslic.server.license_server import issuance

    def lax(facts: policy.DecisionFacts) -> policy.IssueDecision:
        return policy.choose_license(
            facts.context(), policy.PolicyOptions(built_in_requires_activation=False)
        )

    monkeypatch.setattr(issuance, "decide", lax)
    # Every decision through `lax`: none answered by the unpatched pool-independent path.
    monkeypatch.setattr(issuance, "decide_whatever_the_pools", lambda facts: None)


def _agent_window_60s(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent whose freshness window is 60 s whatever its clock's speed."""
    from tslic.protocol import envelope

    real = envelope.check_freshness

    def narrow(timestamp: int, now: int, window: int, **kw: Any) -> None:
        real(timestamp, now, 60_000, **kw)

    monkeypatch.setattr(envelope, "check_freshness", narrow)


def _agent_forgets_nonces(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that forgets a nonce as soon as its clock has passed the message's timestamp
    (its replay memory is no longer than the time a frame is in flight)."""
    from tslic.protocol import envelope

    real = envelope.ReplayGuard._expire

    def early(self: envelope.ReplayGuard, now: int) -> None:
        real(self, now + 2 * self.window)

    monkeypatch.setattr(envelope.ReplayGuard, "_expire", early)


def _pipelining_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent that writes each request to its license server twice at once (a resend
    before the answer came): the second copy is a request sent before the first was answered."""
    from tslic.protocol import ServiceError
    from tslic.protocol.messages import Error
    from tslic.runtime.stream import MessageStream

    real = MessageStream.request

    async def twice(self: MessageStream, msg: Any) -> Any:
        if self.conn.conversation != Conversation.LICENSING:
            return await real(self, msg)
        frame = self.conn.send(msg, now=self._now())
        await self.stream.send_all(frame + frame)
        reply = await self.receive()
        if isinstance(reply, Error):
            raise ServiceError(reply.message, code=reply.error_code, detail=reply.detail)
        return reply

    monkeypatch.setattr(MessageStream, "request", twice)


async def _dir_clock_ignored(tmp_path: Path) -> dict[str, Result]:
    """A directory that follows real time although started with a clock file."""
    from tslic.server.directory.service import DirectoryService
    from tslic.server.directory.topology import load_topology

    clock_path = tmp_path / "clock"
    write_clock_file(str(clock_path), WallClock.starting(1_100_000_000_000).spec)
    clock = WallClock.starting(None)
    service = DirectoryService(load_topology(None), tmp_path, clock, "secret")
    server = Server(service, key=Ed25519PrivateKey.generate(), clock=clock, limits=FAST)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve)
        cfg = _config(address, Role.DIRECTORY, ["CLOCK-1"], clock_file=clock_path)
        report = await run_suite(cfg, all_cases(RULES))
        server.shutdown()
    return _by_id(report.results)


async def test_directory_ignoring_its_clock_file_fails_clock_1(tmp_path: Path) -> None:
    result = (await _dir_clock_ignored(tmp_path))["CLOCK-1:follows-the-clock-file"]
    assert result.verdict is Verdict.FAIL, result


@pytest.mark.parametrize(
    ("patch", "runner", "only", "case_id"),
    [
        (_lax_directory_names, run_dir, ["MSG-12"], "MSG-12:directory-names"),
        (_agent_takes_long_machine_names, run_agent, ["MSG-12"],
         "MSG-12:rdp-client-names-bounded"),
        (_unbound_license_server_id, run_ch, ["ACT-14"], "ACT-14:id-bound-to-product-id"),
        (_pipelining_agent, run_agent, ["STATE-4"], "STATE-4:target-never-pipelines"),
        (_modern_event_words, run_agent, ["GRACE-*", "EVT-*"], "EVT-12:event-wording"),
        (_built_in_regardless, run_ls, ["CAL-5"], "CAL-5:unactivated-no-built-in"),
        (_agent_window_60s, run_agent, ["LIMIT-6"], "LIMIT-6:agent-window-follows-speed"),
        (_agent_forgets_nonces, run_agent, ["ENV-12"], "ENV-12:agent-replay-after-half-a-window"),
    ],
    ids=["directory takes bad names", "agent takes a 65-character machine name",
         "License Server ID not bound to its product ID", "agent pipelines its requests",
         "events in later words", "built-in licenses before activation",
         "agent window of 60 s", "agent forgets nonces at once"],
)  # fmt: skip
async def test_broken_daemon_fails_its_rule(
    patch: Any, runner: Any, only: list[str], case_id: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    patch(monkeypatch)
    results = await runner(tmp_path, only)
    assert results[case_id].verdict is Verdict.FAIL, results[case_id]
