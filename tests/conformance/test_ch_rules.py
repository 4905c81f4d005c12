"""The Clearinghouse cases that need registered purchases, its web pages and its clock (the
manifest of `tslic conformance prepare --role clearinghouse`), against tslic's Clearinghouse
and against it with one rule broken by monkeypatching: each must get `fail` on its rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.client.conformance.basics import Role
from tslic.client.conformance.catalogue import all_cases, load_spec
from tslic.client.conformance.manifest import Purchases
from tslic.client.conformance.model import Result, Verdict
from tslic.client.conformance.prepare import prepare
from tslic.client.conformance.runner import SuiteConfig, run_suite
from tslic.protocol.clock import parse_date
from tslic.protocol.domain import CalProduct, Program
from tslic.runtime.clock import FileClock
from tslic.runtime.service import Server
from tslic.server.clearinghouse.core import Clearinghouse

from tests.conformance.timing import HANDSHAKE, TARGET_LIMITS

RULES = load_spec()
CH_RULES = ["CH-*", "ACT-12", "ACT-13"]


def register(ch: Clearinghouse, purchases: Purchases, now: int) -> None:
    """What the manifest's target_setup commands do (tslic clearinghouse add-*)."""
    from tslic.server.clearinghouse import purchases as buy

    product = CalProduct(purchases["product"])
    op, ag = purchases["open_license"], purchases["agreement"]
    buy.add_open(ch, product=product, count=op["count"], now=now,
                 license_number=op["license_number"],
                 authorization_number=op["authorization_number"])  # fmt: skip
    buy.add_agreement(ch, program=Program(ag["program"]), product=product, count=ag["count"],
                      now=now, agreement_number=ag["number"])  # fmt: skip
    buy.add_retail(ch, product=product, count=purchases["retail"]["count"], now=now,
                   code=purchases["retail"]["code"])  # fmt: skip
    for key in purchases["xp_eligible"]:
        buy.add_xp(ch, product_key=key, acquired_at=parse_date("2003-04-23"), channel="retail")
    buy.add_xp(ch, product_key=purchases["xp_ineligible"],
               acquired_at=parse_date("2003-04-24"), channel="retail")  # fmt: skip


async def run_ch(tmp_path: Path, only: Sequence[str]) -> dict[str, Result]:
    from tslic.server.clearinghouse.service import ClearinghouseService
    from tslic.server.clearinghouse.web import WebApp, serve_web

    manifest = prepare(Role.CLEARINGHOUSE, tmp_path / "prep")
    clock = FileClock(manifest["clock_file"], poll=0.01)
    service = ClearinghouseService(tmp_path / "ch", clock)
    register(service.ch, manifest["purchases"], clock.now())
    server = Server(service, key=Ed25519PrivateKey.generate(), clock=clock,
                    limits=TARGET_LIMITS)  # fmt: skip
    stop = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(clock.watch)
            address = await nursery.start(server.serve)
            web = await nursery.start(serve_web, WebApp(service.ch, clock), "127.0.0.1", 0,
                                      stop.wait)  # fmt: skip
            cfg = SuiteConfig(target=address, role=Role.CLEARINGHOUSE, timeout=2.0,
                              handshake_timeout=HANDSHAKE, manifest=tmp_path / "prep" /
                              "manifest.json", web=web, only=only)  # fmt: skip
            report = await run_suite(cfg, all_cases(RULES))
            stop.set()
            server.shutdown()
            nursery.cancel_scope.cancel()
    finally:
        service.close()
    return {r.case.id: r for r in report.results}


async def test_clearinghouse_passes_its_rule_cases(tmp_path: Path) -> None:
    results = await run_ch(tmp_path, CH_RULES)
    bad = [f"{i}: {r.verdict} {r.actual} {r.notes}" for i, r in results.items()
           if r.verdict is not Verdict.PASS and not r.case.untestable]  # fmt: skip
    assert not bad, "\n".join(bad)
    assert len([r for r in results.values() if not r.case.untestable]) >= 12


def _takes_14_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Open License authorization numbers checked and matched on 14 characters only (a
    Clearinghouse that takes a 14-character number for the 15-character one)."""
    from tslic.protocol import codes
    from tslic.server.clearinghouse import catalogue, installation

    def lax(number: str, authorization: str) -> tuple[str, str]:
        auth = codes.normalize_code(authorization)
        if len(auth) == codes.OPEN_AUTHORIZATION_LENGTH - 1:
            return codes.check_open_license(number, auth + "B")[0], auth
        return codes.check_open_license(number, auth)

    def prefix(self: Any, number: str, authorization: str) -> list[Any]:
        found: list[Any] = self._entitlements(
            "WHERE program = ? AND license_number = ? AND substr(authorization_number, 1, 14)"
            " = ?", (str(Program.OPEN_LICENSE), number, authorization[:14]))  # fmt: skip
        return found

    monkeypatch.setattr(installation, "check_open_license", lax)
    monkeypatch.setattr(catalogue.Catalogue, "open_license", prefix)


def _xp_on_24_april(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows XP licenses acquired on 24 April 2003 counted as eligible (off by one day)."""
    from tslic.server.clearinghouse import installation, transition

    def lax(acquired_at: int) -> bool:
        return acquired_at <= parse_date("2003-04-24")

    monkeypatch.setattr(transition, "xp_eligible", lax)
    monkeypatch.setattr(installation, "xp_eligible", lax)


@pytest.mark.parametrize(
    ("patch", "only", "case_id"),
    [
        (_takes_14_characters, ["CH-2"], "CH-2:program-number-formats"),
        (_xp_on_24_april, ["CH-5"], "CH-5:xp-acquired-2003-04-24"),
    ],
    ids=["takes a 14-character authorization number", "takes an XP license of 24 April 2003"],
)
async def test_broken_clearinghouse_fails_its_rule(
    patch: Any, only: list[str], case_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch(monkeypatch)
    results = await run_ch(tmp_path, only)
    assert results[case_id].verdict is Verdict.FAIL, results[case_id]
