"""The instruments of the reliability tests can fail: the database checker finds a lost
license, a doubled one and an unbalanced key pack; and the serving loop's per-peer rate
state forgets idle peers (the memory a flood of fresh keys can hold is bounded)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trio.testing import MockClock
from tslic.protocol import Conversation
from tslic.protocol.domain import LicenseKind
from tslic.protocol.messages import Message, Welcome
from tslic.runtime.clock import TrioClock, WallClock
from tslic.runtime.service import Limits, Peer, Server
from tslic.server.license_server.daemon import LicenseServer

from tests.reliability import support as rs


async def test_the_database_checker_finds_each_kind_of_damage(tmp_path: Path) -> None:
    site = await rs.prepare(tmp_path, pack=10, terminal_servers=1)
    ts = site.terminal_servers[0]
    ledger = rs.Ledger()
    ls = LicenseServer(rs.ls_config(site.data_dir), WallClock())
    async with trio.open_nursery() as nursery:
        await nursery.start(ls.serve)
        async with rs.ts_stream(ls.address, ts, WallClock()) as s:
            await rs.device_cycle(s, ts, ledger, 1)
        ls.shutdown()
    db_path = site.data_dir / "licenses.db"
    assert rs.check_database(db_path, ledger) == []

    def damaged(sql: str) -> list[str]:
        copy = tmp_path / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(site.data_dir, copy)
        db = sqlite3.connect(copy / "licenses.db")
        db.execute(sql)
        db.commit()
        db.close()
        return rs.check_database(copy / "licenses.db", ledger)

    permanent = next(a for a in ledger.acks if a.kind is LicenseKind.PERMANENT)
    assert any(
        "missing" in p for p in damaged(f"DELETE FROM licenses WHERE id = {permanent.license_id}")
    )
    assert any("issued" in p for p in damaged("UPDATE keypacks SET issued = issued + 1"))
    doubled = damaged(
        "INSERT INTO licenses (keypack_id, product, kind, status, hwid, machine, user, client_os,"
        " mode, terminal_server, issued_at, expires_at)"
        " SELECT keypack_id, product, kind, status, hwid, machine, user, client_os, mode,"
        f" terminal_server, issued_at, expires_at FROM licenses WHERE id = {permanent.license_id}"
    )
    assert any("live" in p for p in doubled)
    assert any("issued" in p for p in doubled)  # the second copy holds no CAL of its own


async def test_rate_state_forgets_idle_peers(autojump_clock: MockClock) -> None:
    class Idle:
        """A service that is never asked anything: only the rate state is exercised."""

        conversation = Conversation.LICENSING

        async def on_hello(self, peer: Peer) -> Welcome:
            raise AssertionError("no connection is made")

        async def handle(self, peer: Peer, request: Message) -> Message:
            raise AssertionError("no connection is made")

    server = Server(
        Idle(),
        key=Ed25519PrivateKey.generate(),
        clock=TrioClock(1_054_540_800_000),
        limits=Limits(rate_per_second=10.0, rate_burst=10.0),
    )
    for i in range(12_000):
        assert server.rate.take(i.to_bytes(4, "big"))
    assert len(server.rate) == 12_000  # all active within one refill period: all kept
    await trio.sleep(1.5)  # longer than burst / rate: every bucket has refilled
    assert server.rate.take(b"new peer")
    assert len(server.rate) == 1
    # A peer that was limited stays limited: pruning never forgets a bucket still refilling.
    for _ in range(10):
        assert server.rate.take(b"busy")
    assert not server.rate.take(b"busy")
