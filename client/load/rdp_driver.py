"""Full-stack mode: emulated RDP client logons through real terminal-server agents.

Contract:
- `RdpDriver.run(...)` runs a generator's share of the schedule as logons, a task per logon,
  and hands each one's times to the worker's `record`.
- `RdpDriver.logon(k)` performs request k of the schedule as one RDP logon (a fresh TCP
  connection, Conversation.RDP, client side) through the agent `agents[k % len(agents)]`,
  using the RDP client of `tslic.client.rdp.client` with an in-memory license store (a load
  run must not create a directory per device). The mix decides the device: `new` is a new
  device (a fresh hardware id, so the agent asks its license server for a license); the other
  kinds reuse a device that already holds a license (so the agent upgrades, renews or marks
  it), falling back to a new device while none exists. Devices kept are bounded.
- The result is (operation label, error code or None). The client reports outcomes, not
  exceptions; they map to wire codes: a network or protocol failure -> CONNECTION_LOST, a
  licensing refusal (ErrorAlert that disconnects) -> NO_LICENSE_AVAILABLE, our own abort on
  an untrusted server certificate -> UNTRUSTED_CERTIFICATE, a failed logon -> ACCESS_DENIED.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.client.rdp.client import connect as rdp_connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol import raw_public
from tslic.protocol.domain import ClientOS
from tslic.protocol.errors import ErrorCode
from tslic.protocol.messages.records import ProductInfo
from tslic.runtime.clock import Clock

from .config import LoadConfig
from .fleet import derive_key, pick, unit
from .schedule import ClosedSchedule, OpenSchedule, Share


class MemoryStore(LicenseStore):
    """A device's license store that lives in memory only."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        super().__init__(Path("/nonexistent-tslic-load-store"))
        self._device_key = key
        self._licenses: dict[tuple[str, str, str], bytes] = {}

    def key(self) -> Ed25519PrivateKey:
        return self._device_key

    def hwid(self) -> bytes:
        return raw_public(self._device_key)

    def load(self, product: ProductInfo, scope: str) -> bytes | None:
        return self._licenses.get((product.company, product.product_id, scope))

    def save(self, product: ProductInfo, scope: str, blob: bytes) -> None:
        self._licenses[(product.company, product.product_id, scope)] = blob

    def licenses(self) -> list[Path]:
        return []

    def reset(self) -> bool:
        had = bool(self._licenses)
        self._licenses.clear()
        return had


_STATUS_CODES = {
    "error": ErrorCode.CONNECTION_LOST,
    "disconnected": ErrorCode.NO_LICENSE_AVAILABLE,
    "aborted": ErrorCode.UNTRUSTED_CERTIFICATE,
}


class RdpDriver:
    """Logons of synthetic devices through a list of agents."""

    def __init__(self, config: LoadConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.seed = config.seed or 0
        self._devices: deque[tuple[str, MemoryStore, ClientOS, str]] = deque()

    async def run(
        self,
        schedule: OpenSchedule | ClosedSchedule,
        share: Share,
        start: float,
        scheduled: Callable[[], None],
        record: Callable[[str, float, float, float, float, int | None], None],
    ) -> None:
        """Run this generator's share of the schedule from trio time `start`, a task per
        logon. `scheduled()` counts each logon when it is due; `record(op, intended,
        dispatched, sent, done, error)` measures it once it ends."""

        async def timed_logon(k: int, intended: float, dispatched: float) -> None:
            sent = trio.current_time()
            op, code = await self.logon(k)
            record(op, intended, dispatched, sent, trio.current_time(), code)

        async def closed_loop(loop: int) -> None:
            end = start + self.config.duration
            n = 0
            while trio.current_time() < end:
                now = trio.current_time()
                scheduled()
                await timed_logon(loop + n * self.config.concurrency, now, now)
                n += 1

        async with trio.open_nursery() as logons:
            if isinstance(schedule, OpenSchedule):
                for k, t in schedule.times(share):
                    intended = start + t
                    if trio.current_time() < intended:
                        await trio.sleep_until(intended)
                    scheduled()
                    logons.start_soon(timed_logon, k, intended, trio.current_time())
            else:
                for loop in schedule.loops(share):
                    logons.start_soon(closed_loop, loop)

    async def logon(self, k: int) -> tuple[str, int | None]:
        """Run logon k; return (operation label, error code or None)."""
        agents = self.config.rdp_agents
        address = agents[k % len(agents)]
        op = pick(self.config.mix, unit(self.seed, k, 3))
        if op != "new" and self._devices:
            device, store, client_os, user = self._devices.popleft()
        else:
            op = "new"
            store = MemoryStore(derive_key(self.config.seed, "rdp-device", k))
            client_os = ClientOS(pick(self.config.clients, unit(self.seed, k, 4)))
            device = f"RDP{k:08d}"
            user = f"user{int(unit(self.seed, k, 5) * 10_000):04d}"
        outcome = await rdp_connect(
            address,
            store=store,
            device=device,
            user=user,
            client_os=client_os,
            clock=self.clock,
            domain=self.config.domain,
            timeout=self.config.timeout,
        )
        code: int | None = None
        if outcome.status in _STATUS_CODES:
            code = int(_STATUS_CODES[outcome.status])
        elif not outcome.logged_on:
            code = int(ErrorCode.ACCESS_DENIED)
        if outcome.license is not None and op != "return":
            self._devices.append((device, store, client_os, user))
            while len(self._devices) > 32 * self.config.devices_kept:
                self._devices.popleft()
        return op, code
