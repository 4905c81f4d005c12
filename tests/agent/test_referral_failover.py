"""The agent with real, activated license servers (and a real Clearinghouse): a referral to a
server that has the CALs ends in a permanent CAL from it (CAL-11, CAL-12), and a license
server that stops answering is replaced by the next one listed (DISC-8, §2.3), both when a
client's request finds it gone and when the liveness check does first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Unpack

import pytest
import trio
from trio.testing import MockClock
from tslic.client.agent.config import AgentConfig, NamedAddress
from tslic.client.agent.service import Agent
from tslic.client.rdp.client import Outcome, connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol.domain import CalProduct, ClientOS, Connectivity, WindowsVersion
from tslic.protocol.grace import DiscoveryIntervals
from tslic.server.license_server.config import PeerServer
from tslic.server.license_server.daemon import LicenseServer

from tests.license_server import harness as h

DEVICE_CAL = CalProduct.W2003_DEVICE_CAL


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[h.Lab]:
    async with trio.open_nursery() as nursery:
        the_lab = h.Lab(nursery, tmp_path)
        await the_lab.start_clearinghouse()
        yield the_lab
        nursery.cancel_scope.cancel()
    if the_lab.ch is not None:
        the_lab.ch.close()


async def ready(lab: h.Lab, name: str, cals: int = 0, **kw: Unpack[h.Overrides]) -> LicenseServer:
    ls = await lab.start_ls(lab.config(name, 2003, **kw))
    await lab.activate(ls)
    if cals:
        await lab.install(ls, DEVICE_CAL, cals)
    return ls


async def start_agent(
    lab: h.Lab, name: str, *servers: LicenseServer, intervals: DiscoveryIntervals | None = None
) -> tuple[Agent, str]:
    config = AgentConfig(
        name=name,
        version=WindowsVersion.W2003,
        registry_servers=tuple(
            NamedAddress(name=s.config.name, address=s.address) for s in servers
        ),
        intervals=intervals or DiscoveryIntervals(),
    )
    agent = Agent(config, lab.tmp / "agents" / name, lab.clock)
    address = await lab.nursery.start(agent.serve)
    return agent, address


async def rdp(lab: h.Lab, address: str, device: str) -> Outcome:
    store = LicenseStore(lab.tmp / "clients" / device)
    with trio.fail_after(60):
        return await connect(
            address,
            store=store,
            device=device,
            user="alice",
            client_os=ClientOS.XP_PRO,
            clock=lab.clock,
        )


def held(outcome: Outcome) -> tuple[str, str]:
    assert outcome.status == "licensed", (outcome.status, outcome.text)
    assert outcome.license is not None
    return outcome.license.issuer, outcome.license.kind


async def test_referral_gives_the_validated_device_a_permanent_cal(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls3 = await ready(lab, "LS3", cals=2)
    ls7 = await ready(lab, "LS7", peers=(PeerServer.parse(f"LS3={ls3.address}"),))
    agent, address = await start_agent(lab, "TS131", ls7)
    # First connection: LS7 has no CALs; a first-time device gets its temporary (§3.2).
    assert held(await rdp(lab, address, "PC131")) == ("LS7", "temporary")
    assert agent.state.counts["marked_validated"] == 1
    # Second connection: LS7 refers the validated device to LS3, which upgrades it.
    assert held(await rdp(lab, address, "PC131")) == ("LS3", "permanent")
    assert agent.state.counts["upgraded"] == 1
    assert agent.state.counts.get("echoed", 0) == 0
    target = agent.state.entry("LS3")
    assert target is not None
    assert (target.connectivity, target.detail) == (
        Connectivity.VALID_LS,
        "found through a referral",
    )
    # LS3 accepted the certificate LS7 issued (SEC-9): it did not issue one of its own.
    assert agent.state.cert_issuer == "LS7"
    count = await ls3.store.run_op(
        lambda db: db.execute("SELECT COUNT(*) FROM ts_certs").fetchone()[0]
    )
    assert count == 0
    # A third connection keeps the permanent CAL (STATUS_VALID_CLIENT, nothing new stored).
    third = await rdp(lab, address, "PC131")
    assert (third.status, third.received) == ("licensed", "")
    assert held(third) == ("LS3", "permanent")
    agent.shutdown()


async def test_referral_before_any_logon_keeps_the_temporary(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    # Without a validating logon the referral carries no such statement, and LS3 (which never
    # saw this device) gives no permanent CAL: the device keeps LS7's temporary.
    ls3 = await ready(lab, "LS3", cals=2)
    ls7 = await ready(lab, "LS7", peers=(PeerServer.parse(f"LS3={ls3.address}"),))
    agent, address = await start_agent(lab, "TS131", ls7)
    store = LicenseStore(lab.tmp / "clients" / "PC9")
    for _ in range(2):
        with trio.fail_after(60):
            got = await connect(
                address,
                store=store,
                device="PC9",
                user="alice",
                client_os=ClientOS.XP_PRO,
                clock=lab.clock,
                password_ok=False,  # the logon fails: nothing is marked validated
            )
        assert got.license is not None
        assert (got.license.issuer, got.license.kind) == ("LS7", "temporary")
    assert agent.state.counts.get("marked_validated", 0) == 0
    assert await h_available(lab, ls3) == 2
    agent.shutdown()


async def h_available(lab: h.Lab, ls: LicenseServer) -> int:
    from tslic.protocol.messages.admin import AdminKeyPacks, AdminListKeyPacks

    async with lab.admin(ls) as adm:
        reply = await adm.request(AdminListKeyPacks())
    assert isinstance(reply, AdminKeyPacks)
    return sum(k.available for k in reply.keypacks if k.product is DEVICE_CAL)


async def _stop(ls: LicenseServer) -> None:
    ls.shutdown()
    host, port = ls.address.rsplit(":", 1)
    # Let it close its listener: a connection to its port is then refused.
    with trio.fail_after(30):
        while True:
            try:
                tcp = await trio.open_tcp_stream(host, int(port))
            except OSError:
                return
            await tcp.aclose()
            await trio.sleep(0.1)


async def test_failover_when_a_client_finds_the_server_gone(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls8 = await ready(lab, "LS8", cals=5)
    ls3 = await ready(lab, "LS3", cals=5)
    agent, address = await start_agent(lab, "TS132", ls8, ls3)
    assert held(await rdp(lab, address, "PC132")) == ("LS8", "temporary")
    assert agent.state.current == "LS8"
    await _stop(ls8)
    # The cache still says LS8 is valid (no liveness check yet): the request fails over.
    assert held(await rdp(lab, address, "PC133")) == ("LS3", "temporary")
    assert held(await rdp(lab, address, "PC133")) == ("LS3", "permanent")
    assert agent.state.current == "LS3"
    gone = agent.state.entry("LS8")
    assert gone is not None
    assert (gone.connectivity, gone.reachable) == (Connectivity.NOT_CONNECTABLE, False)
    assert agent.state.counts.get("valid_client", 0) == 0
    agent.shutdown()


async def test_failover_when_the_liveness_check_finds_the_server_gone(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    ls8 = await ready(lab, "LS8", cals=5)
    ls3 = await ready(lab, "LS3", cals=5)
    # A liveness check (10 min) well before the next full discovery (1 day).
    intervals = DiscoveryIntervals(
        retry_when_none_found=timedelta(minutes=15),
        rediscovery=timedelta(days=1),
        liveness_check=timedelta(minutes=10),
    )
    agent, address = await start_agent(lab, "TS132", ls8, ls3, intervals=intervals)
    assert held(await rdp(lab, address, "PC132")) == ("LS8", "temporary")
    await _stop(ls8)
    # Just past the liveness check and within the 15-minute "none found" retry: the agent
    # has already moved to LS3 instead of waiting (a client now would get no license).
    await trio.sleep(11 * 60 / lab.clock.speed)
    assert agent.state.current == "LS3"
    assert held(await rdp(lab, address, "PC133")) == ("LS3", "temporary")
    assert held(await rdp(lab, address, "PC133")) == ("LS3", "permanent")
    # The first device presents LS8's temporary; LS8 is gone and no Referral vouches for it,
    # so LS3 treats another server's license as a new request: a temporary of its own.
    assert held(await rdp(lab, address, "PC132")) == ("LS3", "temporary")
    assert agent.state.counts.get("valid_client", 0) == 0
    agent.shutdown()


async def test_failover_from_an_unactivated_server_gets_a_certificate_there(
    lab: h.Lab, autojump_clock: MockClock
) -> None:
    # LS8 is not activated: the certificate it gives the terminal server chains to its own
    # temporary certificate, which LS3 cannot trust (SEC-9). LS3 refuses the first request
    # with ACCESS_DENIED; the agent asks LS3 for a certificate of its own and asks again.
    ls8 = await lab.start_ls(lab.config("LS8", 2003))
    ls3 = await ready(lab, "LS3", cals=5)
    agent, address = await start_agent(lab, "TS132", ls8, ls3)
    assert held(await rdp(lab, address, "PC132")) == ("LS8", "temporary")
    assert agent.state.cert_issuer == "LS8"
    await _stop(ls8)
    assert held(await rdp(lab, address, "PC134")) == ("LS3", "temporary")
    assert held(await rdp(lab, address, "PC134")) == ("LS3", "permanent")
    assert agent.state.cert_issuer == "LS3"
    assert agent.state.counts.get("valid_client", 0) == 0
    agent.shutdown()
