"""Crash safety of the Clearinghouse's redemptions: SIGKILL at random moments (seeded).

Retail license codes (one CAL each) are added to a Clearinghouse data directory; each cycle
forks the Clearinghouse (zygote.py), lets a few license servers redeem codes as fast as it
answers (ChInstallKeyPack), and SIGKILLs it after 50-250 ms. After every restart: every
code whose key pack grant was acknowledged is used up, with exactly one grant recorded for
it; no code has more grants than its entitlement; and asking again for an acknowledged code
returns the same grant to the server that redeemed it (a retry after a lost reply) and is
refused ALREADY_REDEEMED to any other, never a second grant.

TSLIC_CRASH_CYCLES and TSLIC_CRASH_SEED apply here too.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation
from tslic.protocol.domain import ActivationMethod, CalProduct, PeerRole, Program, WindowsVersion
from tslic.protocol.errors import ConnectionLost, ErrorCode, ProtocolError, ServiceError
from tslic.protocol.messages.admin import ActivationAction
from tslic.protocol.messages.clearinghouse import (
    ChActivate,
    ChActivated,
    ChInstallKeyPack,
    ChKeyPack,
)
from tslic.protocol.names import product_id_for
from tslic.protocol.pki import raw_public_key
from tslic.runtime.clock import WallClock
from tslic.runtime.peer import PeerStream, open_peer
from tslic.server.clearinghouse.purchases import add_retail
from tslic.server.clearinghouse.service import ClearinghouseService

from tests.reliability import support as rs
from tests.reliability.conftest import Zygote
from tools.reliability_report import Figures

CYCLES = int(os.environ.get("TSLIC_CRASH_CYCLES", "50"))
SEED = int(os.environ.get("TSLIC_CRASH_SEED", "9"))
PRODUCT = CalProduct.W2003_DEVICE_CAL
SERVERS = 3


def ch_peer(address: str, key: Ed25519PrivateKey) -> AbstractAsyncContextManager[PeerStream]:
    return open_peer(
        address,
        conversation=Conversation.CLEARINGHOUSE,
        key=key,
        clock=WallClock(),
        role=PeerRole.LICENSE_SERVER,
        name="LSREL",
        version=2003,
    )


async def activate(address: str, key: Ed25519PrivateKey) -> str:
    public = raw_public_key(key)
    async with ch_peer(address, key) as s:
        reply = await s.request(
            ChActivate(
                action=ActivationAction.ACTIVATE,
                method=ActivationMethod.AUTOMATIC,
                product_id=product_id_for(public),
                name="LSREL",
                version=WindowsVersion.W2003,
                public_key=public,
                contact=rs.CONTACT,
            )
        )
    assert isinstance(reply, ChActivated)
    return reply.license_server_id


def install(lsid: str, code: str) -> ChInstallKeyPack:
    return ChInstallKeyPack(
        license_server_id=lsid, program=Program.RETAIL, product=PRODUCT, count=1, retail_code=code
    )


async def redeem(
    address: str,
    key: Ed25519PrivateKey,
    lsid: str,
    codes: list[str],
    acked: dict[str, tuple[str, bytes]],
) -> None:
    """Redeem codes one after another until the Clearinghouse dies under us."""
    try:
        async with ch_peer(address, key) as s:
            while codes:
                code = codes.pop()
                reply = await s.request(install(lsid, code))
                assert isinstance(reply, ChKeyPack)
                acked[code] = (lsid, reply.grant)
    except (ConnectionLost, ProtocolError):
        pass
    except ServiceError as exc:
        # A code taken in flight by the previous (killed) process may already be used.
        if exc.code is not ErrorCode.ALREADY_REDEEMED:
            raise


def check(db_path: Path, acked: dict[str, tuple[str, bytes]]) -> list[str]:
    problems = []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        if (ok := db.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
            problems.append(f"integrity_check: {ok}")
        grants: dict[str, tuple[int, int]] = {
            source: (n, total)
            for source, n, total in db.execute(
                "SELECT source, COUNT(*), SUM(count) FROM grants GROUP BY source"
            )
        }
        for code, total, used in db.execute(
            "SELECT retail_code, total, used FROM entitlements WHERE retail_code IS NOT NULL"
        ):
            n, granted = grants.get(f"retail:{code}", (0, 0))
            if granted != used or granted > total:
                problems.append(f"code {code}: used {used}, granted {granted} of {total}")
            if code in acked and (used != total or n != 1):
                problems.append(f"acknowledged code {code}: used {used}, {n} grants")
    finally:
        db.close()
    return problems


async def test_sigkill_cycles_never_lose_or_double_a_redemption(
    tmp_path: Path, zygote: Zygote, figures: Figures
) -> None:
    data = tmp_path / "ch"
    service = ClearinghouseService(data, WallClock())
    try:
        now = WallClock().now()
        codes = [
            str(add_retail(service.ch, product=PRODUCT, count=1, now=now).retail_code)
            for _ in range(CYCLES * 40)
        ]
    finally:
        service.close()
    rng = random.Random(SEED)
    rng.shuffle(codes)
    keys = [Ed25519PrivateKey.generate() for _ in range(SERVERS)]
    lsids: list[str] = []
    acked: dict[str, tuple[str, bytes]] = {}
    db_path = data / "clearinghouse.db"
    for cycle in range(CYCLES):
        pid, address = await rs.spawn(zygote, data, tmp_path, f"ch{cycle}", role="clearinghouse")
        assert check(db_path, acked) == [], f"after restart {cycle}"
        if not lsids:
            lsids = [await activate(address, key) for key in keys]
        async with trio.open_nursery() as nursery:
            for key, lsid in zip(keys, lsids, strict=True):
                nursery.start_soon(redeem, address, key, lsid, codes, acked)
            # Killed after a drawn number of new acknowledged redemptions, then at a drawn
            # moment: counted events, not a time window (see test_crash.py).
            target = len(acked) + rng.randint(1, 4)
            await rs.until(lambda: len(acked), target)
            await trio.sleep(rng.uniform(0.0, 0.05))
            os.kill(pid, signal.SIGKILL)
        status = (await zygote.call(op="wait", pid=pid))["status"]
        assert os.WIFSIGNALED(status)
        assert os.WTERMSIG(status) == signal.SIGKILL
    pid, address = await rs.spawn(zygote, data, tmp_path, "ch-final", role="clearinghouse")
    try:
        # Asking again for an acknowledged code never yields a second grant: the server
        # that redeemed it gets the same grant back, any other is refused.
        key_of = dict(zip(lsids, keys, strict=True))
        for code in sorted(acked)[:20]:
            owner, blob = acked[code]
            async with ch_peer(address, key_of[owner]) as s:
                again = await s.request(install(owner, code))
            assert isinstance(again, ChKeyPack)
            assert again.grant == blob
            other = next(x for x in lsids if x != owner)
            async with ch_peer(address, key_of[other]) as s:
                with pytest.raises(ServiceError) as info:
                    await s.request(install(other, code))
            assert info.value.code is ErrorCode.ALREADY_REDEEMED
    finally:
        os.kill(pid, signal.SIGTERM)
        await zygote.call(op="wait", pid=pid)
    problems = check(db_path, acked)
    assert problems == []
    assert len(acked) > CYCLES
    figures.add("crash_cycles_clearinghouse", CYCLES)
    figures.add("redemptions_acknowledged", len(acked))
    figures.add("redemptions_lost", sum("acknowledged" in p for p in problems))
    figures.note(
        "crash (Clearinghouse)",
        f"{CYCLES} SIGKILL cycles, seed {SEED}, {len(acked)} retail redemptions acknowledged; "
        "each recorded once after every restart; re-asking returns the same grant to its"
        " server and is ALREADY_REDEEMED for any other",
    )
