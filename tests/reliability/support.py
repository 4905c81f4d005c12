"""Shared pieces of the reliability tests: a prepared license-server data directory, the
terminal-server and device peers that drive it, and the invariant checks on its database.

Contract:
- `prepare(tmp, ...)` runs a real Clearinghouse and license server in-process on the wall
  clock (the clock the child processes use too), activates the server, installs a Device CAL
  key pack and enrols terminal servers; it returns a `Site` naming the data directory, the
  terminal servers' keys and certificate chains, and the root certificate.
- `Ledger` records every license a client was told it got (the acknowledgements);
  `check_database(path, ledger)` opens the database read-only-in-spirit (its own connection,
  no writes) and returns the list of broken invariants (empty: all hold).
- `until(count, target)` waits for a count of events (licenses acknowledged, requests answered)
  rather than for a span of time, so a test drives the same work on a slow machine as on a
  fast one; its `limit` is a hang guard only. Fault moments are then drawn after the event.
- Wall-clock bounds here (`wait_ready`, `until`) are hang guards, generous on purpose: a
  loaded machine is slow, not wrong. Speeds are measured in bench/, not asserted here.
Tests import it as `from tests.reliability import support as rs`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, Unpack

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import Conversation
from tslic.protocol.domain import (
    ActivationMethod,
    CalProduct,
    ClientOS,
    LicenseKind,
    LicensingMode,
    PeerRole,
    Program,
    ServerRole,
    WindowsVersion,
)
from tslic.protocol.messages import Message
from tslic.protocol.messages.admin import (
    ActivationAction,
    AdminActivate,
    AdminInstallKeyPack,
    AdminSetProperties,
)
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    MarkLicense,
    RequestTermServCert,
    TermServCert,
    UpgradeLicenseRequest,
)
from tslic.protocol.messages.records import ContactInfo
from tslic.protocol.pki import raw_public_key
from tslic.runtime.clock import Clock, WallClock
from tslic.runtime.files import load_key
from tslic.runtime.peer import PeerStream, open_peer
from tslic.runtime.service import Server
from tslic.server.clearinghouse.purchases import add_retail
from tslic.server.clearinghouse.service import ClearinghouseService
from tslic.server.license_server.config import Config
from tslic.server.license_server.daemon import LicenseServer

from tests.reliability.conftest import Zygote

CONTACT = ContactInfo(
    first_name="Rel", last_name="Iability", company="Contoso", country="US", email="r@contoso.com"
)
PRODUCT = CalProduct.W2003_DEVICE_CAL
LS_NAME = "LSREL"


@dataclass
class TermServ:
    """An enrolled terminal server: its key and the chain its license server issued."""

    name: str
    key: Ed25519PrivateKey
    chain: tuple[bytes, ...] = ()


@dataclass
class Site:
    data_dir: Path
    terminal_servers: list[TermServ]
    root_der: bytes
    pack_total: int
    admin_key_path: Path


class ConfigOverrides(TypedDict, total=False):
    """The `Config` fields the reliability tests change."""

    clearinghouse: str
    security_group: bool | None
    sweep_interval_ms: int
    store_threads: bool


def ls_config(data_dir: Path, **kw: Unpack[ConfigOverrides]) -> Config:
    return Config(
        name=LS_NAME,
        version=WindowsVersion.W2003,
        role=ServerRole.DOMAIN,
        data_dir=data_dir,
        **kw,
    )


async def admin_request(ls_address: str, key_path: Path, clock: Clock, msg: Message) -> Message:
    async with open_peer(
        ls_address,
        conversation=Conversation.ADMIN,
        key=load_key(key_path),
        clock=clock,
        role=PeerRole.ADMINISTRATOR,
        name="ADMIN",
    ) as adm:
        return await adm.request(msg)


@asynccontextmanager
async def ts_stream(address: str, ts: TermServ, clock: Clock) -> AsyncIterator[PeerStream]:
    async with open_peer(
        address,
        conversation=Conversation.LICENSING,
        key=ts.key,
        clock=clock,
        role=PeerRole.TERMINAL_SERVER,
        name=ts.name,
        version=2003,
        cert_chain=ts.chain,
    ) as stream:
        yield stream


async def enrol(address: str, ts: TermServ, clock: Clock) -> None:
    async with ts_stream(address, ts, clock) as s:
        reply = await s.request(
            RequestTermServCert(
                name=ts.name,
                domain="CONTOSO",
                site="S1",
                version=WindowsVersion.W2003,
                public_key=raw_public_key(ts.key),
            )
        )
    assert isinstance(reply, TermServCert)
    ts.chain = reply.cert_chain


async def prepare(
    tmp: Path,
    *,
    pack: int = 5000,
    terminal_servers: int = 4,
    clock: Clock | None = None,
    security_group: bool | None = None,
) -> Site:
    """An activated license server's data directory with one Device CAL pack (see module)."""
    clock = clock or WallClock()
    ch = ClearinghouseService(tmp / "ch", clock)
    try:
        ch_server = Server(ch, key=Ed25519PrivateKey.generate(), clock=clock)
        async with trio.open_nursery() as nursery:
            ch_address = await nursery.start(ch_server.serve)
            ls = LicenseServer(
                ls_config(tmp / "ls", clearinghouse=ch_address, security_group=security_group),
                clock,
            )
            await nursery.start(ls.serve)
            key_path = ls.admin_key_path
            await admin_request(
                ls.address,
                key_path,
                clock,
                AdminSetProperties(contact=CONTACT, method=ActivationMethod.AUTOMATIC),
            )
            await admin_request(
                ls.address,
                key_path,
                clock,
                AdminActivate(action=ActivationAction.ACTIVATE, method=ActivationMethod.AUTOMATIC),
            )
            code = add_retail(ch.ch, product=PRODUCT, count=pack, now=clock.now()).retail_code
            assert code is not None
            await admin_request(
                ls.address,
                key_path,
                clock,
                AdminInstallKeyPack(
                    program=Program.RETAIL, product=PRODUCT, count=pack, retail_code=code
                ),
            )
            tss = [
                TermServ(f"TS{i}", Ed25519PrivateKey.generate()) for i in range(terminal_servers)
            ]
            for ts in tss:
                await enrol(ls.address, ts, clock)
            ls.shutdown()
            ch_server.shutdown()
        return Site(tmp / "ls", tss, ch.root_der, pack, key_path)
    finally:
        ch.close()


# ---- daemon processes (zygote.py) -----------------------------------------------------------


HANG_GUARD = 120.0  # seconds; only a test that is stuck ever reaches it


async def until(count: Callable[[], int], target: int, limit: float = HANG_GUARD) -> None:
    """Return once `count()` reaches `target` (polled every 5 ms); fail after `limit` seconds."""
    with trio.fail_after(limit):
        while count() < target:  # noqa: ASYNC110 (counts kept by other tasks, no event)
            await trio.sleep(0.005)


async def wait_ready(path: Path, limit: float = HANG_GUARD) -> str:
    """The address in a daemon's ready file (polled: the file appears atomically)."""
    with trio.fail_after(limit):
        while not os.path.exists(path):  # noqa: ASYNC110, ASYNC240 (another process writes it)
            await trio.sleep(0.005)
    return str(json.loads(await trio.Path(path).read_text())["address"])


async def spawn(
    zygote: Zygote, data_dir: Path, tmp: Path, tag: str, role: str = "server", **limits: float | str
) -> tuple[int, str]:
    """Fork a license-server (or Clearinghouse) process on `data_dir`; return its pid and
    address."""
    ready = tmp / f"ready-{tag}.json"
    reply = await zygote.call(
        op="spawn",
        data_dir=str(data_dir),
        ready=str(ready),
        log=str(tmp / "children.log"),
        limits=limits,
        role=role,
    )
    return int(reply["pid"]), await wait_ready(ready)


# ---- acknowledged licenses -------------------------------------------------------------------


@dataclass
class Ack:
    license_id: int
    hwid: bytes
    kind: LicenseKind
    terminal_server: str


@dataclass
class Ledger:
    """Every license some client was told it got."""

    acks: list[Ack] = field(default_factory=list)

    def add(self, reply: LicenseGranted, hwid: bytes, ts: str) -> None:
        self.acks.append(Ack(reply.license_id, hwid, reply.kind, ts))


def new_hwid() -> bytes:
    return os.urandom(32)


class DeviceFields(TypedDict):
    """What IssueLicense and UpgradeLicenseRequest say about one device."""

    hwid: bytes
    machine: str
    user: str
    client_os: ClientOS
    mode: LicensingMode


def device_fields(hwid: bytes, machine: str) -> DeviceFields:
    return {
        "hwid": hwid,
        "machine": machine,
        "user": "u",
        "client_os": ClientOS.XP_PRO,
        "mode": LicensingMode.PER_DEVICE,
    }


async def device_cycle(s: PeerStream, ts: TermServ, ledger: Ledger, n: int) -> None:
    """One device's life on a terminal server: a temporary license, the post-logon mark, then
    the permanent CAL on its second connection. Every grant goes into `ledger` as soon as the
    reply has arrived (that is the acknowledgement)."""
    hwid = new_hwid()
    fields = device_fields(hwid, f"{ts.name}-PC{n}")
    first = await s.request(IssueLicense(**fields))
    assert isinstance(first, LicenseGranted)
    ledger.add(first, hwid, ts.name)
    await s.request(MarkLicense(license_id=first.license_id, hwid=hwid))
    second = await s.request(UpgradeLicenseRequest(license=first.license, **fields))
    assert isinstance(second, LicenseGranted)
    ledger.add(second, hwid, ts.name)


# ---- invariants ------------------------------------------------------------------------------


def check_database(path: Path, ledger: Ledger) -> list[str]:
    """The broken invariants of a license database (empty list: all hold). See module."""
    problems: list[str] = []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if (integrity := db.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
            problems.append(f"integrity_check: {integrity}")
        rows = {
            int(r[0]): (bytes(r[1]), r[2], r[3], int(r[4]), r[5])
            for r in db.execute(
                "SELECT id, hwid, kind, terminal_server, keypack_id, product FROM licenses"
            )
        }
        for ack in ledger.acks:
            row = rows.get(ack.license_id)
            if row is None:
                problems.append(f"acknowledged license {ack.license_id} is missing")
            elif row[0] != ack.hwid or row[2] != ack.terminal_server:
                problems.append(f"license {ack.license_id} changed owner")
            elif ack.kind is LicenseKind.PERMANENT and row[1] != LicenseKind.PERMANENT.value:
                problems.append(f"permanent license {ack.license_id} is stored as {row[1]}")
        # None issued twice: one live license of each kind per device.
        for kind, count in db.execute(
            "SELECT kind, MAX(n) FROM (SELECT kind, COUNT(*) AS n FROM licenses"
            " WHERE status IN (1, 2) GROUP BY hwid, kind) GROUP BY kind"
        ):
            if count > 1:
                problems.append(f"a device holds {count} live {kind} licenses")
        for kid, total, issued in db.execute("SELECT id, total, issued FROM keypacks"):
            live = db.execute(
                "SELECT COUNT(*) FROM licenses WHERE keypack_id = ? AND kind = ? AND status = 2",
                (kid, LicenseKind.PERMANENT.value),
            ).fetchone()[0]
            if not 0 <= issued <= total:
                problems.append(f"key pack {kid}: issued {issued} outside 0..{total}")
            if issued != live:
                problems.append(f"key pack {kid}: issued {issued} but {live} licenses hold CALs")
    finally:
        db.close()
    return problems
