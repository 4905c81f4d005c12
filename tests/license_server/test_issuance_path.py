"""The issuance path's shortcuts (bench/README.md, issue 7) keep the decisions unchanged: the
Clearinghouse root is parsed once per chain and follows activation; the pool figures a
decision reports are those it read, less one when it took a CAL from a pool (the database
agrees), and it reads them only where they could change it; a new license row is written
whole (its blob in the INSERT) under an id counted in memory."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import trio
from trio.testing import MockClock
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind
from tslic.protocol.licenses import open_license
from tslic.protocol.pki import CertRole, identity_of
from tslic.server.license_server.daemon import LicenseServer
from tslic.server.license_server.db import keypacks

from tests.license_server import harness as h

DEVICE_CAL = CalProduct.W2003_DEVICE_CAL


def pool_gauge(ls: LicenseServer, product: CalProduct) -> float:
    # As a scraper reads it: the exposed sample, not the collector's internals.
    value = ls.metrics.registry.get_sample_value("tslic_pool_available", {"product": product})
    assert value is not None, f"no pool figure for {product}"
    return value


async def test_trusted_root_is_parsed_once_and_follows_activation(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LSROOT", 2003))
    assert ls.activation.trusted_root is None  # a temporary self-signed chain: no root
    before = ls.activation.chain
    await lab.activate(ls)
    assert ls.activation.chain != before
    root = ls.activation.trusted_root
    assert root is not None
    assert identity_of(root).role == CertRole.CLEARINGHOUSE
    assert ls.activation.trusted_root is root  # cached: the same parsed object


async def test_pool_figures_track_only_decisions_that_take_a_cal(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls = await lab.start_ls(lab.config("LSPOOL", 2003))
    await lab.activate(ls)
    await lab.install(ls, DEVICE_CAL, 3)
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1", ClientOS.XP_PRO)
    async with ts.connect(ls) as s:
        first = await dev.connect(s)
        assert first.kind is LicenseKind.TEMPORARY
        assert pool_gauge(ls, DEVICE_CAL) == 3  # a temporary takes nothing
        await dev.logon(s)
        second = await dev.connect(s)
        assert second.kind is LicenseKind.PERMANENT
        assert pool_gauge(ls, DEVICE_CAL) == 2  # the pools read before, less the CAL taken
        now = lab.clock.now()
        stored = await ls.store.run_op(lambda db: keypacks.available_by_product(db, now))
        assert stored[DEVICE_CAL] == 2  # what the database itself now says
        other = h.Device("PC2", ClientOS.XP_PRO)
        assert (await other.connect(s)).kind is LicenseKind.TEMPORARY
        assert pool_gauge(ls, DEVICE_CAL) == 2


async def test_pools_are_read_only_for_decisions_that_depend_on_them(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    """An unactivated server issues a temporary whatever its pools hold: it does not read
    them. Activated, the decision on a validated temporary (a permanent CAL if one is left)
    reads them."""
    ls = await lab.start_ls(lab.config("LSREAD", 2003))
    statements: list[str] = []
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    dev = h.Device("PC1", ClientOS.XP_PRO)
    async with ts.connect(ls) as s:
        ls.store._db.set_trace_callback(statements.append)
        first = await dev.connect(s)
        ls.store._db.set_trace_callback(None)
        assert first.kind is LicenseKind.TEMPORARY
        assert any("INSERT INTO licenses" in sql for sql in statements)
        assert not [sql for sql in statements if "keypacks" in sql]
        await lab.activate(ls)
        await lab.install(ls, DEVICE_CAL, 3)
        await dev.logon(s)
        statements.clear()
        ls.store._db.set_trace_callback(statements.append)
        second = await dev.connect(s)
        ls.store._db.set_trace_callback(None)
        assert second.kind is LicenseKind.PERMANENT
        assert [sql for sql in statements if "FROM keypacks" in sql]
        assert pool_gauge(ls, DEVICE_CAL) == 2


def license_rows(ls: LicenseServer) -> Awaitable[list[Any]]:
    return ls.store.run_op(
        lambda db: db.execute("SELECT id, blob FROM licenses ORDER BY id").fetchall()
    )


async def test_new_license_rows_are_written_whole_with_unique_ids(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    """A new row carries its signed blob from its INSERT; the id the blob names is the row's,
    ids stay unique after a row inserted behind the server's back and after a restart."""
    cfg = lab.config("LSIDS", 2003)
    ls = await lab.start_ls(cfg)
    ts = h.TerminalServerPeer(lab, "TS1", 2003)
    await ts.enrol(ls)
    got = []
    async with ts.connect(ls) as s:
        for n in range(3):
            got.append((await h.Device(f"PC{n}", ClientOS.XP_PRO).connect(s)).license_id)
        taken = got[-1] + 1  # the id the server would choose next, taken by another writer
        await ls.store.run_op(
            lambda db: db.execute(
                "INSERT INTO licenses (id, product, kind, status, hwid, machine, user, client_os,"
                " mode, terminal_server, issued_at, expires_at) SELECT ?, product, kind, status,"
                " hwid, 'OTHER', user, client_os, mode, terminal_server, issued_at, expires_at"
                " FROM licenses WHERE id = ?",
                (taken, got[0]),
            )
        )
        got.append((await h.Device("PC3", ClientOS.XP_PRO).connect(s)).license_id)
    assert got == sorted(set(got))  # unique and increasing
    assert taken not in got  # no collision with the other writer's row
    ls.shutdown()
    await trio.sleep(10)
    again = await lab.start_ls(cfg)
    async with ts.connect(again) as s:
        got.append((await h.Device("PC4", ClientOS.XP_PRO).connect(s)).license_id)
    assert got[-1] > max([*got[:-1], taken])
    rows = await license_rows(again)
    assert [i for i, _ in rows] == sorted([*got, taken])
    for row_id, blob in rows:
        if row_id != taken:
            assert open_license(bytes(blob)).body.license_id == row_id
