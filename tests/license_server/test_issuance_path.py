"""The issuance path's shortcuts (bench/README.md, issue 7) keep the decisions unchanged:
the Clearinghouse root is parsed once per chain and follows activation; the pool figures a
decision reports are re-read only when it took a CAL from a pool."""

from __future__ import annotations

import ls_harness as h
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind
from tslic.protocol.pki import CertRole, identity_of

DEVICE_CAL = CalProduct.W2003_DEVICE_CAL


def pool_gauge(ls, product):
    return ls.metrics.pool.labels(product=product.value)._value.get()


async def test_trusted_root_is_parsed_once_and_follows_activation(lab, autojump_clock):
    ls = await lab.start_ls(lab.config("LSROOT", 2003))
    assert ls.activation.trusted_root is None  # a temporary self-signed chain: no root
    before = ls.activation.chain
    await lab.activate(ls)
    assert ls.activation.chain != before
    root = ls.activation.trusted_root
    assert root is not None
    assert identity_of(root).role == CertRole.CLEARINGHOUSE
    assert ls.activation.trusted_root is root  # cached: the same parsed object


async def test_pool_figures_track_only_decisions_that_take_a_cal(lab, autojump_clock):
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
        assert pool_gauge(ls, DEVICE_CAL) == 2  # re-read after the decrement
        other = h.Device("PC2", ClientOS.XP_PRO)
        assert (await other.connect(s)).kind is LicenseKind.TEMPORARY
        assert pool_gauge(ls, DEVICE_CAL) == 2
