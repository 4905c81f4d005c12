"""The agent keeps its license-server connections (client/agent/links.py) and returns to a
restarted license server the way Windows did: on its discovery timer once it has seen the
server fail (docs/AGENT.md "Connections to license servers"). Virtual time: autojump_clock,
one real second is one virtual hour (conftest.SPEED)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.client.agent.config import AgentConfig, NamedAddress
from tslic.client.agent.links import Links
from tslic.client.agent.service import Agent
from tslic.client.agent.state import ServerEntry
from tslic.client.rdp.client import Outcome
from tslic.protocol import ConnectionLost, Message
from tslic.protocol.domain import CalProduct, Connectivity, WindowsVersion
from tslic.protocol.grace import DiscoveryIntervals
from tslic.protocol.messages.licensing import ReturnLicense
from tslic.runtime.clock import TrioClock
from tslic.runtime.peer import PeerStream
from tslic.runtime.service import Peer, Server, Service

from tests.agent import fakes

CALS = {CalProduct.W2003_DEVICE_CAL: 50}
# A graceful stop of a fake takes a virtual hour (its Goodbye waits up to 1 s real for the
# peer to close): the periodic checks are set far apart unless a test is about them.
QUIET = DiscoveryIntervals(
    retry_when_none_found=timedelta(minutes=15),
    rediscovery=timedelta(days=2),
    liveness_check=timedelta(days=4),
)
WINDOWS = DiscoveryIntervals(
    retry_when_none_found=timedelta(minutes=15),
    rediscovery=timedelta(minutes=60),
    liveness_check=timedelta(minutes=120),
)


class Restartable:
    """A fake license server on a fixed port that can stop (gracefully) and start again."""

    def __init__(self, service: Service, clock: TrioClock, nursery: trio.Nursery) -> None:
        self.service, self.clock, self.nursery = service, clock, nursery
        self.key = Ed25519PrivateKey.generate()
        self.port = 0
        self.server: Server | None = None
        self.done = trio.Event()

    async def start(self) -> str:
        self.server = Server(self.service, key=self.key, clock=self.clock)
        self.done = trio.Event()
        address: str = await self.nursery.start(self._serve, self.server)
        self.port = int(address.rsplit(":", 1)[1])
        return address

    async def _serve(self, server: Server, task_status: trio.TaskStatus[str]) -> None:
        try:
            await server.serve("127.0.0.1", self.port, task_status=task_status)
        finally:
            self.done.set()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()  # Goodbye to idle peers, as a restarting service does
        await self.done.wait()


@asynccontextmanager
async def license_server(
    clock: TrioClock, name: str = "LS1"
) -> AsyncIterator[tuple[fakes.FakeLicenseServer, Restartable, str]]:
    ls = fakes.FakeLicenseServer(
        name=name, version=WindowsVersion.W2003, clock=clock, root=None, available=CALS
    )
    async with trio.open_nursery() as nursery:
        running = Restartable(ls, clock, nursery)
        address = await running.start()
        yield ls, running, address
        nursery.cancel_scope.cancel()


def entry(agent: Agent, name: str) -> ServerEntry:
    found = agent.state.entry(name)
    assert found is not None, f"{name} not in the discovery cache"
    return found


def config(
    *servers: tuple[str, str], per_server: int = 8, intervals: DiscoveryIntervals = QUIET
) -> AgentConfig:
    return AgentConfig(
        name="TS1",
        version=WindowsVersion.W2003,
        registry_servers=tuple(NamedAddress(name=n, address=a) for n, a in servers),
        intervals=intervals,
        connections_per_server=per_server,
    )


async def test_clients_cost_requests_not_connections(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, clock: TrioClock
) -> None:
    async with license_server(clock) as (ls, _, address):
        cfg = config(("LS1", address), per_server=1)
        async with fakes.run_agent(cfg, tmp_path / "a", clock) as (agent, rdp):
            for i in range(5):
                outcome = await fakes.rdp(rdp, tmp_path / f"pc{i}", clock, device=f"PC{i}")
                assert outcome.status == "licensed"
            # Discovery's probe (which obtained the certificate) and one connection that
            # presents it; then every IssueLicense and MarkLicense on that one.
            assert ls.calls.count("Hello") == 2
            assert ls.calls.count("IssueLicense") == 5
            assert ls.calls.count("MarkLicense") == 5
            stats = agent.servers.links.stats
            assert (stats.opened, stats.requests) == (2, 10)


async def test_concurrent_clients_use_a_bounded_pool(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, clock: TrioClock
) -> None:
    async with license_server(clock) as (ls, _, address):
        cfg = config(("LS1", address), per_server=3)
        async with fakes.run_agent(cfg, tmp_path / "a", clock) as (agent, rdp):
            async with trio.open_nursery() as nursery:
                for i in range(12):
                    nursery.start_soon(fakes.rdp, rdp, tmp_path / f"pc{i}", clock)
            assert ls.calls.count("IssueLicense") == 12
            assert agent.servers.links.stats.opened <= 1 + 3  # the probe's, then the pool


async def test_a_restart_between_requests_is_not_a_failure(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, clock: TrioClock
) -> None:
    async with license_server(clock) as (_, running, address):
        cfg = config(("LS1", address))
        async with fakes.run_agent(cfg, tmp_path / "a", clock) as (agent, rdp):
            assert (await fakes.rdp(rdp, tmp_path / "pc0", clock, device="PC0")).received
            await running.stop()  # the kept connection hears Goodbye
            await running.start()  # back before any client needed it
            outcome = await fakes.rdp(rdp, tmp_path / "pc1", clock, device="PC1")
            assert outcome.status == "licensed"
            assert entry(agent, "LS1").connectivity is Connectivity.VALID_LS
            assert agent.servers.links.stats.failed_dials == 0


async def test_a_failed_server_is_used_again_on_the_discovery_timer(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, clock: TrioClock
) -> None:
    async with license_server(clock) as (ls, running, address):
        cfg = config(("LS1", address))
        async with fakes.run_agent(cfg, tmp_path / "a", clock) as (agent, rdp):
            assert (await fakes.rdp(rdp, tmp_path / "pc0", clock, device="PC0")).received
            await running.stop()
            # A client while the server is down: the request fails, the server is marked
            # NOT_CONNECTABLE, and (in grace) the client is let in without a license.
            down = await fakes.rdp(rdp, tmp_path / "pc1", clock, device="PC1")
            assert down.status == "valid-client"
            assert entry(agent, "LS1").connectivity is Connectivity.NOT_CONNECTABLE
            failed_at = clock.now()
            await running.start()
            hellos = ls.calls.count("Hello")
            # Back at once, but the agent does not know: until the 15-minute retry, clients
            # get no license (JSI Tip 8634: "up to 15 minutes").
            before = await fakes.rdp(rdp, tmp_path / "pc2", clock, device="PC2")
            assert before.status == "valid-client"
            assert ls.calls.count("Hello") == hellos
            await clock.sleep_until(failed_at + 15 * 60_000 + 1_000)
            after = await fakes.rdp(rdp, tmp_path / "pc3", clock, device="PC3")
            assert after.status == "licensed"
            assert entry(agent, "LS1").connectivity is Connectivity.VALID_LS


async def test_the_preferred_server_is_taken_back_at_rediscovery(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, clock: TrioClock
) -> None:
    async with (
        license_server(clock, "LS1") as (ls1, first, a1),
        license_server(clock, "LS2") as (_, _, a2),
    ):
        cfg = config(("LS1", a1), ("LS2", a2), intervals=WINDOWS)
        async with fakes.run_agent(cfg, tmp_path / "a", clock) as (agent, rdp):
            assert (await fakes.rdp(rdp, tmp_path / "pc0", clock, device="P0")).received
            assert agent.state.current == "LS1"
            await first.stop()
            await fakes.rdp(rdp, tmp_path / "pc1", clock, device="P1")
            assert agent.state.current == "LS2"  # failover at once (DISC-8)
            await first.start()
            back = clock.now()
            await clock.sleep_until(back + 60_000)
            assert agent.state.current == "LS2"  # not at once: on the discovery timer
            await clock.sleep_until(back + 61 * 60_000)
            assert agent.state.current == "LS1"  # the first in discovery order again
            issued = ls1.calls.count("IssueLicense")
            assert (await fakes.rdp(rdp, tmp_path / "pc2", clock, device="P2")).received
            assert ls1.calls.count("IssueLicense") == issued + 1


async def test_a_dead_address_is_not_redialled_before_its_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    dials: list[float] = []

    def opener(address: str, chain: tuple[bytes, ...]) -> AbstractAsyncContextManager[PeerStream]:
        @asynccontextmanager
        async def refused() -> AsyncIterator[PeerStream]:
            dials.append(trio.current_time())
            raise ConnectionLost(f"cannot connect to {address}")
            yield  # pragma: no cover

        return refused()

    links = Links(opener, lambda: 0)
    request = ReturnLicense(license_id=1, hwid=bytes(32))
    for expected_dials in (1, 1, 2, 2, 2, 3):
        with pytest.raises(ConnectionLost):
            await links.request("127.0.0.1:9", (), request, timeout=10.0)
        assert len(dials) == expected_dials
        await trio.sleep(0.9)
    # Dialled at 0, then not before 1 s, then not before 2 s more: the backoff doubles.
    assert [round(t - dials[0], 1) for t in dials] == [0.0, 1.8, 4.5]
    assert links.stats.held_off == 3


async def test_waiting_for_a_busy_connection_is_not_a_server_failure(
    tmp_path: Path,
    autojump_clock: trio.testing.MockClock,
    clock: TrioClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One connection, a license server taking 6 s per license: the third of three clients
    waits 12 s in the queue, longer than the 10 s network timeout, and is still served."""
    ls = fakes.FakeLicenseServer(
        name="LS1", version=WindowsVersion.W2003, clock=clock, root=None, available=CALS
    )
    answer = ls.handle

    async def slow(peer: Peer, request: Message) -> Message:
        if type(request).__name__ == "IssueLicense":
            await trio.sleep(6)
        return await answer(peer, request)

    monkeypatch.setattr(ls, "handle", slow)  # this one server answers slowly
    async with fakes.serve(ls, clock) as served:
        cfg = config(("LS1", served.address), per_server=1)
        async with fakes.run_agent(cfg, tmp_path / "a", clock) as (agent, rdp):
            outcomes: list[Outcome] = []

            async def one(i: int) -> None:
                outcomes.append(await fakes.rdp(rdp, tmp_path / f"pc{i}", clock, device=f"P{i}"))

            async with trio.open_nursery() as nursery:
                for i in range(3):
                    nursery.start_soon(one, i)
            assert [o.status for o in outcomes] == ["licensed"] * 3
            assert entry(agent, "LS1").connectivity is Connectivity.VALID_LS
            assert ls.calls.count("IssueLicense") == 3
