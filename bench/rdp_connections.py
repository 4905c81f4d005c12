"""RDP connections licensed per second through one agent, against the msgpack path, same run.

Contract: `python bench/rdp_connections.py [--connections N] [--json]` starts, in this
process, one 2003 agent (`Agent`, no license server: every client is a valid client of the
grace period, so the figures are the terminal server's own work, not a license server's) and
its real-RDP front end (`serve_rdp_connection` with `AgentDecider`, `hold` 0: the session
ends right after the outcome bitmap). It then runs N sequential connections of each kind:
1. msgpack: the emulated client of `tslic connect` (client/rdp) against the agent;
2. RDP, Standard RDP Security: a scripted sans-IO client (tests/rdp/wire/peer.py plus the
   licensing client side written here): X.224, MCS/GCC, channel joins, Security Exchange,
   Client Info, New License Request, Platform Challenge Response, then the session up to
   the outcome bitmap and the disconnect;
3. RDP over TLS: the same with PROTOCOL_SSL and no RDP encryption.
For each it prints connections per second and the CPU per connection of this process (client
and server share it), and, for the RDP kinds, the server-side CPU spent in TLS (the server's
SSLObject), in RDP security (client random decryption, session keys, RC4 and MACs of the
server's SecureChannel) and in licensing cryptography (premaster, licensing keys, RC4 and
MACs of MS-RDPELE). A benchmark: figures, never assertions; ratios are within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio
from tslic.client.agent import rdp_exchange
from tslic.client.agent.config import AgentConfig
from tslic.client.agent.rdp_decisions import AgentDecider
from tslic.client.agent.rdp_link import ListenerConfig
from tslic.client.agent.rdp_listener import serve_rdp_connection
from tslic.client.agent.rdp_tls import server_context
from tslic.client.agent.service import Agent
from tslic.client.rdp.client import connect as msgpack_connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol.domain import ClientOS, WindowsVersion
from tslic.protocol.rdp import connection as rdp_connection
from tslic.protocol.rdp import mcs, share, x224
from tslic.protocol.rdp.info import ClientInfo
from tslic.protocol.rdp.keys import generate_rsa_key, parse_proprietary_certificate
from tslic.protocol.rdp.license_crypto import (
    LicensingKeys,
    derive_licensing_keys,
    encrypt_premaster,
    licensing_mac,
)
from tslic.protocol.rdp.licensing import (
    Blob,
    BlobType,
    LicenseRequest,
    NewLicenseRequest,
    PlatformChallenge,
    PlatformChallengeResponse,
)
from tslic.protocol.rdp.security import SecureChannel, rc4_once
from tslic.runtime.clock import WallClock

from tests.rdp.wire.peer import ClientPeer, connect_initial, domain, parse_connect_response

CPU: dict[str, float] = defaultdict(float)
# one client context for the run, as a real client has (loading the CA store costs ~30 ms)
CLIENT_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
CLIENT_TLS.check_hostname = False
CLIENT_TLS.verify_mode = ssl.CERT_NONE


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kw: Any) -> Any:
        start = time.thread_time()
        try:
            return fn(*args, **kw)
        finally:
            CPU[name] += time.thread_time() - start

    return wrapper


def instrument() -> None:
    """Wrap the server's synchronous crypto so its CPU is counted by layer."""
    for name in ("decrypt_client_random", "derive_session_keys"):
        setattr(rdp_connection, name, _timed("rdp security", getattr(rdp_connection, name)))

    class TimedChannel(SecureChannel):
        protect = _timed("rdp security", SecureChannel.protect)
        unprotect = _timed("rdp security", SecureChannel.unprotect)

    setattr(rdp_connection, "SecureChannel", TimedChannel)  # noqa: B010 (the server's only)
    for name in ("decrypt_premaster", "derive_licensing_keys"):
        setattr(rdp_exchange, name, _timed("licensing crypto", getattr(rdp_exchange, name)))
    for name in ("seal", "decrypt", "check_mac", "open"):
        setattr(LicensingKeys, name, _timed("licensing crypto", getattr(LicensingKeys, name)))


class TimedSSLObject(ssl.SSLObject):
    do_handshake = _timed("tls", ssl.SSLObject.do_handshake)
    read = _timed("tls", ssl.SSLObject.read)
    write = _timed("tls", ssl.SSLObject.write)


class Wire:
    """The client's byte stream with TPKT framing."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buf = bytearray()

    async def frame(self) -> bytes:
        while True:
            length = x224.tpkt_length(self.buf)
            if length is not None and len(self.buf) >= length:
                out = bytes(self.buf[:length])
                del self.buf[:length]
                return out
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError("server closed")
            self.buf += data


async def rdp_client(address: tuple[str, int], number: int, tls: bool) -> None:
    stream: trio.abc.Stream = await trio.open_tcp_stream(*address)
    wire = Wire(stream)
    await stream.send_all(x224.ConnectionRequest(requested_protocols=1 if tls else 0).build())
    await wire.frame()
    if tls:
        stream = trio.SSLStream(stream, CLIENT_TLS, server_hostname="bench")
        await stream.do_handshake()
        wire.stream = stream
    await stream.send_all(connect_initial(name=f"B{number}", methods=0 if tls else 0x2))
    settings = parse_connect_response(await wire.frame())
    await stream.send_all(domain(mcs.ErectDomainRequest()))
    await stream.send_all(domain(mcs.AttachUserRequest()))
    confirm = mcs.parse_domain_pdu(x224.unwrap_data(await wire.frame()))
    assert isinstance(confirm, mcs.AttachUserConfirm)
    assert confirm.initiator is not None
    user = confirm.initiator
    peer = ClientPeer(settings, user)
    for channel in (user, 1003, 1004, 1005, 1006):
        await stream.send_all(domain(mcs.ChannelJoinRequest(initiator=user, channel_id=channel)))
        await wire.frame()
    if not tls:
        await stream.send_all(peer.security_exchange(flags=0x0001))
    await stream.send_all(peer.client_info(ClientInfo(user_name="bench", password="pw")))
    request = peer.read_licensing(await wire.frame())
    assert isinstance(request, LicenseRequest)
    server_key = parse_proprietary_certificate(request.certificate.data).key
    client_random, premaster = os.urandom(32), os.urandom(48)
    new = NewLicenseRequest(
        client_random=client_random,
        encrypted_premaster=Blob(
            kind=BlobType.RANDOM, data=encrypt_premaster(premaster, server_key)
        ),
        user_name=Blob(kind=BlobType.CLIENT_USER_NAME, data=b"bench\x00"),
        machine_name=Blob(kind=BlobType.CLIENT_MACHINE_NAME, data=f"B{number}\x00".encode()),
        platform_id=0xFF010000,
    )
    await stream.send_all(peer.licensing(new, encrypt=False))
    challenge = peer.read_licensing(await wire.frame())
    assert isinstance(challenge, PlatformChallenge)
    keys = derive_licensing_keys(premaster, client_random, request.server_random)
    # the client's own crypto calls the module functions, so only the server's is counted
    plain = rc4_once(keys.encryption_key, challenge.encrypted_challenge.data)
    hwid = (2).to_bytes(4, "little") + f"B{number}".encode().ljust(16, b"\0")
    response = PlatformChallengeResponse(
        encrypted_response=Blob(kind=BlobType.DATA, data=rc4_once(keys.encryption_key, plain)),
        encrypted_hwid=Blob(kind=BlobType.ENCRYPTED_DATA, data=rc4_once(keys.encryption_key, hwid)),
        mac=licensing_mac(keys.mac_salt_key, plain + hwid),
    )
    await stream.send_all(peer.licensing(response, encrypt=False))
    await wire.frame()  # New License or "valid client"
    await wire.frame()  # Demand Active

    async def send_share(pdu: bytes) -> None:
        await stream.send_all(peer.send_data(pdu) if tls else peer.protected(0, pdu))

    await send_share(share.share_control(share.PduType.CONFIRM_ACTIVE, user, bytes(16)))
    await send_share(share.synchronize(1002, source=user))
    await send_share(share.control(share.ControlAction.COOPERATE, source=user))
    await send_share(share.control(share.ControlAction.REQUEST_CONTROL, source=user))
    fonts = share.share_data(share.PduType2.FONT_LIST, user, b"\x00\x00\x00\x00\x03\x00\x32\x00")
    await send_share(fonts)
    while True:  # sync, cooperate, granted, font map, bitmaps, deactivate, then the DPUM
        payload = x224.unwrap_data(await wire.frame())
        if isinstance(mcs.parse_domain_pdu(payload), mcs.DisconnectProviderUltimatum):
            break
    await stream.aclose()


async def run(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tslic-bench-rdp-") as tmp:
        data = Path(tmp)
        clock = WallClock()
        agent = Agent(AgentConfig(name="BENCHTS", version=WindowsVersion.W2003), data, clock)
        results: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            address = await nursery.start(agent.serve, "127.0.0.1", 0)
            tls = server_context(data)
            tls.sslobject_class = TimedSSLObject
            config = ListenerConfig(
                server_key=generate_rsa_key(os.urandom),
                decider=AgentDecider(address, data, clock),
                tls=tls,
                hold=0.0,
            )
            listeners = await nursery.start(
                partial(trio.serve_tcp, partial(serve_rdp_connection, config=config), 0)
            )
            rdp_address = listeners[0].socket.getsockname()[:2]

            async def msgpack(i: int) -> None:
                store = LicenseStore(data / "clients" / str(i))
                await msgpack_connect(
                    address, store=store, device=f"M{i}", user="bench",
                    client_os=ClientOS.NON_WINDOWS, clock=clock,
                )  # fmt: skip

            kinds: dict[str, Callable[[int], Any]] = {
                "msgpack": msgpack,
                "rdp standard security": partial(_rdp, rdp_address, tls=False),
                "rdp tls": partial(_rdp, rdp_address, tls=True),
            }
            for name, fn in kinds.items():
                await fn(-1)  # warm up
                CPU.clear()
                wall, cpu = time.perf_counter(), time.process_time()
                for i in range(n):
                    await fn(i)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results[name] = {
                    "per_second": round(n / wall, 1),
                    "cpu_ms_per_connection": round(1000 * cpu / n, 2),
                    **{
                        f"server_{k.replace(' ', '_')}_ms": round(1000 * v / n, 3)
                        for k, v in sorted(CPU.items())
                    },
                }
            agent.shutdown()
            nursery.cancel_scope.cancel()
        base = results["msgpack"]["cpu_ms_per_connection"]
        for r in results.values():
            r["cpu_vs_msgpack"] = round(r["cpu_ms_per_connection"] / base, 2)
        return results


async def _rdp(address: tuple[str, int], i: int, *, tls: bool) -> None:
    await rdp_client(address, i, tls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    instrument()
    results = trio.run(run, args.connections)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name, r in results.items():
        parts = ", ".join(f"{k} {v}" for k, v in r.items())
        print(f"{name:24} {parts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
