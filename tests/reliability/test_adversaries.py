"""Adversaries against a live license server: each is refused with its documented code
(docs/PROTOCOL.md: SEC-5, SEC-7, SEC-8, SEC-9, the envelope rules) and counted in the
daemon's Prometheus metrics (`tslic_errors_total{code=...}`), while the server stays up.

The server runs in-process on 127.0.0.1 port 0 under a trio MockClock (autojump after 20 ms
idle) with a TrioClock, so the expired-certificate case can jump five years of virtual time.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trio.testing import MockClock
from tslic.protocol import Connection, Conversation, Direction, ErrorCode
from tslic.protocol.clock import MS_PER_DAY
from tslic.protocol.domain import (
    ActivationMethod,
    ClientOS,
    LicensingMode,
    PeerRole,
    Program,
    WindowsVersion,
)
from tslic.protocol.errors import RemoteProtocolError, ServiceError
from tslic.protocol.messages import Hello
from tslic.protocol.messages.admin import ActivationAction, AdminGetStatus
from tslic.protocol.messages.clearinghouse import (
    ChActivate,
    ChActivated,
    ChDeactivate,
    ChInstallKeyPack,
)
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    MarkLicense,
    RequestTermServCert,
    UpgradeLicenseRequest,
)
from tslic.protocol.names import product_id_for
from tslic.protocol.pki import raw_public_key
from tslic.runtime.clock import TrioClock
from tslic.runtime.peer import connect, open_peer
from tslic.runtime.service import Server
from tslic.runtime.stream import MessageStream
from tslic.server.clearinghouse.purchases import add_retail
from tslic.server.clearinghouse.service import ClearinghouseService
from tslic.server.license_server.daemon import LicenseServer

from tests.reliability import support as rs
from tools.reliability_report import Figures

START = 1_054_540_800_000  # 2003-06-02


@pytest.fixture
def jump_clock() -> trio.testing.MockClock:
    """Virtual time that jumps only once the loop has been idle 20 real ms: the license
    server's database work runs in a worker thread, and a zero-threshold autojump would
    leap over request timeouts while a thread is busy."""
    return trio.testing.MockClock(autojump_threshold=0.02)


@dataclass
class Live:
    ls: LicenseServer
    site: rs.Site
    clock: TrioClock

    def errors(self, code: ErrorCode) -> float:
        value = self.ls.metrics.registry.get_sample_value("tslic_errors_total", {"code": code.name})
        return value or 0.0


@asynccontextmanager
async def live_server(tmp: Path, **config: Unpack[rs.ConfigOverrides]) -> AsyncIterator[Live]:
    clock = TrioClock(START)
    site = await rs.prepare(tmp, clock=clock, terminal_servers=3, pack=50)
    overrides: rs.ConfigOverrides = {"sweep_interval_ms": 400 * MS_PER_DAY, **config}
    cfg = rs.ls_config(site.data_dir, **overrides)
    ls = LicenseServer(cfg, clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(ls.serve)
        yield Live(ls, site, clock)
        ls.shutdown()


def hello_frame(conn: Connection, live: Live, ts: rs.TermServ) -> bytes:
    hello = Hello(
        role=PeerRole.TERMINAL_SERVER,
        name=ts.name,
        version=2003,
        conversation=Conversation.LICENSING,
        cert_chain=ts.chain,
    )
    return conn.send(hello, now=live.clock.now())


def raw_conn(key: Ed25519PrivateKey) -> Connection:
    return Connection(
        conversation=Conversation.LICENSING,
        our_role=Direction.CLIENT,
        key=key,
        nonce_source=lambda: os.urandom(16),
    )


async def send_raw(live: Live, conn: Connection, frame: bytes) -> ErrorCode | None:
    """Write `frame`; return the code of the fatal Error the server answers (None: Welcome)."""
    stream = MessageStream(await connect(live.ls.address), conn, live.clock.now)
    try:
        await stream.stream.send_all(frame)
        try:
            await stream.receive()
        except RemoteProtocolError as exc:
            return exc.code
        return None
    finally:
        await stream.aclose()


async def refused(
    live: Live,
    kind: str,
    code: ErrorCode,
    attempt: Callable[[], Awaitable[ErrorCode | None]],
    figures: Figures,
) -> None:
    """Run `attempt()` (which returns the code it was refused with) and check the metrics."""
    before = live.errors(code)
    got = await attempt()
    assert got is code, f"{kind}: refused with {got}, not {code.name}"
    counted = live.errors(code) - before
    assert counted == 1, f"{kind}: metrics counted {counted} {code.name}"
    figures.attack(kind, code=code.name, refused=1, counted=True)


async def service_code(coro: Awaitable[object]) -> ErrorCode:
    with pytest.raises(ServiceError) as info:
        await coro
    return info.value.code


def issue(hwid: bytes | None = None) -> IssueLicense:
    return IssueLicense(
        hwid=hwid or rs.new_hwid(),
        machine="PC",
        user="u",
        client_os=ClientOS.XP_PRO,
        mode=LicensingMode.PER_DEVICE,
    )


async def license_for(live: Live, ts: rs.TermServ) -> tuple[LicenseGranted, bytes]:
    hwid = rs.new_hwid()
    async with rs.ts_stream(live.ls.address, ts, live.clock) as s:
        reply = await s.request(issue(hwid))
    assert isinstance(reply, LicenseGranted)
    return reply, hwid


async def test_adversaries_are_refused_and_counted(
    tmp_path: Path, jump_clock: MockClock, figures: Figures
) -> None:
    async with live_server(tmp_path) as live:
        ts0, ts1, _ = live.site.terminal_servers

        async def forged() -> ErrorCode | None:
            conn = raw_conn(ts0.key)
            frame = bytearray(hello_frame(conn, live, ts0))
            frame[-5] ^= 0x01  # inside the 64-byte signature
            return await send_raw(live, conn, bytes(frame))

        await refused(live, "forged signature", ErrorCode.BAD_SIGNATURE, forged, figures)

        async def impersonation() -> ErrorCode | None:
            # Claims to be ts0 (its public key as sender) but signs with another key.
            conn = raw_conn(Ed25519PrivateKey.generate())
            conn.our_key = raw_public_key(ts0.key)
            return await send_raw(live, conn, hello_frame(conn, live, ts0))

        await refused(
            live, "impersonated sender key", ErrorCode.BAD_SIGNATURE, impersonation, figures
        )

        async def replay() -> ErrorCode | None:
            conn = raw_conn(ts0.key)
            frame = hello_frame(conn, live, ts0)
            assert await send_raw(live, conn, frame) is None  # the original is welcome
            return await send_raw(live, raw_conn(ts0.key), frame)

        await refused(live, "replayed message", ErrorCode.REPLAYED_MESSAGE, replay, figures)

        async def stolen_chain() -> ErrorCode:
            # ts1 presents ts0's certificate chain: the leaf's key is not the sender's, so the
            # Hello is refused (SEC-7) and nothing can be asked on that connection.
            thief = rs.TermServ(ts1.name, ts1.key, ts0.chain)

            async def attempt() -> None:
                async with rs.ts_stream(live.ls.address, thief, live.clock) as s:
                    await s.request(issue())

            return await service_code(attempt())

        await refused(
            live,
            "another terminal server's certificate",
            ErrorCode.UNTRUSTED_CERTIFICATE,
            stolen_chain,
            figures,
        )

        other = await rs.prepare(tmp_path / "other", clock=live.clock, terminal_servers=1, pack=1)

        async def other_root() -> ErrorCode:
            async def attempt() -> None:
                async with rs.ts_stream(
                    live.ls.address, other.terminal_servers[0], live.clock
                ) as s:
                    await s.request(issue())

            return await service_code(attempt())

        # SEC-13: refused at Hello, not welcomed and refused request by request.
        await refused(
            live, "certificate from another root", ErrorCode.UNTRUSTED_CERTIFICATE, other_root,
            figures,
        )  # fmt: skip

        async def no_admin_credential() -> ErrorCode:
            async def attempt() -> None:
                async with open_peer(
                    live.ls.address, conversation=Conversation.ADMIN,
                    key=Ed25519PrivateKey.generate(), clock=live.clock,
                    role=PeerRole.ADMINISTRATOR, name="MALLORY",
                ) as adm:  # fmt: skip
                    await adm.request(AdminGetStatus())

            return await service_code(attempt())

        await refused(
            live,
            "admin without the credential",
            ErrorCode.ACCESS_DENIED,
            no_admin_credential,
            figures,
        )

        granted, hwid = await license_for(live, ts0)
        other_hwid = rs.new_hwid()

        async def other_device_mark() -> ErrorCode:
            async with rs.ts_stream(live.ls.address, ts0, live.clock) as s:
                return await service_code(
                    s.request(MarkLicense(license_id=granted.license_id, hwid=other_hwid))
                )

        await refused(
            live,
            "another device's hardware id",
            ErrorCode.HWID_MISMATCH,
            other_device_mark,
            figures,
        )

        async def other_device_license() -> ErrorCode:
            async with rs.ts_stream(live.ls.address, ts0, live.clock) as s:
                return await service_code(
                    s.request(
                        UpgradeLicenseRequest(
                            license=granted.license, hwid=other_hwid, machine="THIEF", user="u",
                            client_os=ClientOS.XP_PRO, mode=LicensingMode.PER_DEVICE,
                        )
                    )
                )  # fmt: skip

        await refused(
            live, "another device's license", ErrorCode.HWID_MISMATCH, other_device_license, figures
        )

        async def for_another_ts() -> ErrorCode:
            async with rs.ts_stream(live.ls.address, ts1, live.clock) as s:
                return await service_code(
                    s.request(MarkLicense(license_id=granted.license_id, hwid=hwid))
                )

        await refused(
            live,
            "licenses for another terminal server",
            ErrorCode.WRONG_TERMINAL_SERVER,
            for_another_ts,
            figures,
        )

        async def cert_for_another_key() -> ErrorCode:
            async with rs.ts_stream(live.ls.address, ts1, live.clock) as s:
                return await service_code(
                    s.request(
                        RequestTermServCert(
                            name=ts0.name, domain="CONTOSO", site="S1",
                            version=WindowsVersion.W2003, public_key=raw_public_key(ts0.key),
                        )
                    )
                )  # fmt: skip

        await refused(
            live,
            "certificate for another terminal server's key",
            ErrorCode.ACCESS_DENIED,
            cert_for_another_key,
            figures,
        )

        # After all that, an honest terminal server is still served.
        again, _ = await license_for(live, ts0)
        assert again.license_id > granted.license_id


async def test_outside_the_security_group(
    tmp_path: Path, jump_clock: MockClock, figures: Figures
) -> None:
    async with live_server(tmp_path, security_group=True) as live:
        ts = live.site.terminal_servers[0]

        async def attempt() -> ErrorCode:
            async with rs.ts_stream(live.ls.address, ts, live.clock) as s:
                return await service_code(s.request(issue()))

        await refused(
            live,
            "terminal server outside the security group",
            ErrorCode.NOT_IN_SECURITY_GROUP,
            attempt,
            figures,
        )


async def test_expired_terminal_server_certificate(
    tmp_path: Path, jump_clock: MockClock, figures: Figures
) -> None:
    async with live_server(tmp_path) as live:
        ts = live.site.terminal_servers[0]
        await license_for(live, ts)  # valid today
        await trio.sleep(5 * 366 * 86_400)  # five years of (virtual) time later

        async def attempt() -> ErrorCode:
            # The Hello that presents the expired chain is refused (§10.1), before any request.
            try:
                async with rs.ts_stream(live.ls.address, ts, live.clock) as s:
                    return await service_code(s.request(issue()))
            except ServiceError as exc:
                return exc.code

        await refused(live, "expired certificate", ErrorCode.CERTIFICATE_EXPIRED, attempt, figures)


async def test_deactivated_license_server_gets_no_more_cals(
    tmp_path: Path, jump_clock: MockClock, figures: Figures
) -> None:
    """A license server whose certificate the Clearinghouse revoked on deactivation keeps its
    old License Server ID and key, and asks for CALs anyway."""
    clock = TrioClock(START)
    service = ClearinghouseService(tmp_path / "ch", clock)
    try:
        server = Server(service, key=service.ch.root_key, clock=clock)
        key = Ed25519PrivateKey.generate()
        public = raw_public_key(key)
        code = add_retail(service.ch, product=rs.PRODUCT, count=5, now=clock.now()).retail_code
        assert code is not None
        async with trio.open_nursery() as nursery:
            address = await nursery.start(server.serve)
            async with open_peer(
                address, conversation=Conversation.CLEARINGHOUSE, key=key, clock=clock,
                role=PeerRole.LICENSE_SERVER, name="LSREL", version=2003,
            ) as s:  # fmt: skip
                activated = await s.request(
                    ChActivate(
                        action=ActivationAction.ACTIVATE, method=ActivationMethod.AUTOMATIC,
                        product_id=product_id_for(public), name="LSREL",
                        version=WindowsVersion.W2003, public_key=public, contact=rs.CONTACT,
                    )
                )  # fmt: skip
                assert isinstance(activated, ChActivated)
                lsid = activated.license_server_id
                await s.request(
                    ChDeactivate(
                        license_server_id=lsid, method=ActivationMethod.AUTOMATIC,
                        contact=rs.CONTACT,
                    )
                )  # fmt: skip
                before = server.counters.errors.get(int(ErrorCode.UNKNOWN_LICENSE_SERVER), 0)
                with pytest.raises(ServiceError) as info:
                    await s.request(
                        ChInstallKeyPack(
                            license_server_id=lsid, program=Program.RETAIL, product=rs.PRODUCT,
                            count=5, retail_code=code,
                        )
                    )  # fmt: skip
                assert info.value.code is ErrorCode.UNKNOWN_LICENSE_SERVER
                assert "deactivated" in info.value.message
                after = server.counters.errors.get(int(ErrorCode.UNKNOWN_LICENSE_SERVER), 0)
                assert after - before == 1
            status = service.status(lsid)
            server.shutdown()
    finally:
        service.close()
    assert "revoked" in str(status).lower()
    figures.attack(
        "deactivated (revoked) certificate asking for CALs",
        code="UNKNOWN_LICENSE_SERVER",
        refused=1,
        counted=True,
    )
