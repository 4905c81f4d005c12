"""A first real-RDP listener: drives `tslic.protocol.rdp.RdpServerConnection` over TCP.

Contract (milestone 1 of the "Real RDP clients" issue; the agent's licensing decisions are
not wired in yet):
- `serve_rdp_connection(stream, ...)` runs one connection: X.224 (answering RDP_NEG_RSP with
  PROTOCOL_RDP, i.e. Standard RDP Security; a client that asks only for CredSSP gets
  RDP_NEG_FAILURE), MCS with the GCC blocks, Erect Domain, Attach User, Channel Joins,
  Security Exchange, Client Info. It then sends a License Request and, to exercise the
  licensing cryptography with a real client, a Platform Challenge whose response MAC it
  verifies. No license is issued: the connection ends with a Disconnect Provider Ultimatum.
  It returns an `RdpSessionReport` with what the client sent (clientName, cookie, user,
  domain, licensing user and machine names, the decrypted hardware id).
- Every wait is bounded by `step_timeout` seconds (the caller's policy); protocol errors,
  timeouts and transport errors end only this connection and are recorded in the report.
- Randomness (server key, server random) comes from `random_bytes`; the challenge is the
  fixed 10-byte UTF-16 "TEST" (rdesktop accepts no other length).
- `python -m tslic.client.agent.rdp_listener --port N` serves until interrupted and prints
  one JSON line per connection (the manual try-out of docs/RDP.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import sys
from collections.abc import Callable
from typing import Any

import trio
from tslic.protocol.connection import NEED_DATA, PEER_CLOSED
from tslic.protocol.errors import ProtocolError
from tslic.protocol.rdp import (
    AcceptSettings,
    ClientConnect,
    ClientInfoReceived,
    LicensingReceived,
    RdpServerConnection,
    SecurityEstablished,
    SendLicensing,
    mcs,
    x224,
)
from tslic.protocol.rdp.keys import RsaKey, generate_rsa_key, proprietary_certificate
from tslic.protocol.rdp.license_crypto import (
    LicensingKeys,
    decrypt_premaster,
    derive_licensing_keys,
)
from tslic.protocol.rdp.license_data import ChallengeResponseData, HardwareId
from tslic.protocol.rdp.licensing import (
    Blob,
    BlobType,
    LicenseInformation,
    LicenseRequest,
    NewLicenseRequest,
    PlatformChallenge,
    PlatformChallengeResponse,
)

RandomBytes = Callable[[int], bytes]
CHALLENGE = "TEST".encode("utf-16-le") + b"\x00\x00"  # 10 bytes, as rdesktop requires


@dataclasses.dataclass
class RdpSessionReport:
    """What one client did; `error` is set when the connection ended on a failure."""

    cookie: str | None = None
    requested_protocols: int | None = None
    client_name: str | None = None
    client_build: int | None = None
    encryption_methods: int | None = None
    encryption_method: int | None = None
    user: str | None = None
    domain: str | None = None
    license_message: str | None = None
    license_encrypted: bool | None = None
    license_user: str | None = None
    license_machine: str | None = None
    platform_id: int | None = None
    hwid: str | None = None
    challenge_ok: bool | None = None
    reached: str = "connected"
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Link:
    """The stream plus the sans-IO connection: read events, write replies."""

    def __init__(self, stream: trio.abc.Stream, conn: RdpServerConnection, timeout: float):
        self.stream = stream
        self.conn = conn
        self.timeout = timeout
        self.keys: LicensingKeys | None = None  # licensing keys once the client sent its premaster

    async def next_event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            with trio.fail_after(self.timeout):
                data = await self.stream.receive_some(65536)
            self.conn.receive_data(bytes(data))

    async def send(self, event: object) -> None:
        await self.stream.send_all(self.conn.send(event))


async def serve_rdp_connection(
    stream: trio.abc.Stream,
    *,
    server_key: RsaKey,
    random_bytes: RandomBytes,
    step_timeout: float = 10.0,
) -> RdpSessionReport:
    report = RdpSessionReport()
    link = _Link(stream, RdpServerConnection(server_key=server_key), step_timeout)
    try:
        await _converse(link, report, server_key, random_bytes)
    except ProtocolError as exc:
        report.error = str(exc)
    except trio.TooSlowError:
        report.error = f"client silent for {step_timeout} s in state {link.conn.state.value}"
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        report.error = f"transport: {exc!r}"
    finally:
        with trio.move_on_after(1, shield=True):
            await stream.aclose()
    return report


async def _converse(
    link: _Link, report: RdpSessionReport, key: RsaKey, random_bytes: RandomBytes
) -> None:
    server_random = random_bytes(32)
    while True:
        event = await link.next_event()
        if event is PEER_CLOSED or isinstance(event, mcs.DisconnectProviderUltimatum):
            report.reached += "; client closed"
            return
        if isinstance(event, x224.ConnectionRequest):
            report.cookie = event.cookie.decode("latin-1") if event.cookie else None
            report.requested_protocols = event.requested_protocols
            report.reached = "x224"
            if event.requested_protocols == x224.Protocol.HYBRID:
                code = x224.FailureCode.HYBRID_REQUIRED_BY_SERVER
                await link.send(x224.NegotiationFailure(code=code))
                return
            selected = None if event.requested_protocols is None else x224.Protocol.RDP
            await link.send(x224.ConnectionConfirm(selected_protocol=selected))
        elif isinstance(event, ClientConnect):
            core = event.settings.core
            report.client_name = core.client_name
            report.client_build = core.client_build
            report.encryption_methods = event.settings.security.encryption_methods
            report.reached = "mcs"
            await link.send(AcceptSettings(server_random=server_random))
            assert link.conn.server_settings is not None
            report.encryption_method = link.conn.server_settings.encryption_method
        elif isinstance(event, mcs.ErectDomainRequest):
            pass
        elif isinstance(event, mcs.AttachUserRequest):
            await link.send(mcs.AttachUserConfirm())
        elif isinstance(event, mcs.ChannelJoinRequest):
            report.reached = "channel joins"
            channel = event.channel_id
            await link.send(
                mcs.ChannelJoinConfirm(
                    initiator=event.initiator, requested=channel, channel_id=channel
                )
            )
        elif isinstance(event, SecurityEstablished):
            report.reached = "security exchange"
        elif isinstance(event, ClientInfoReceived):
            report.user = event.info.user_name
            report.domain = event.info.domain
            report.reached = "client info"
            certificate = Blob(kind=BlobType.CERTIFICATE, data=proprietary_certificate(key))
            await link.send(
                SendLicensing(
                    message=LicenseRequest(server_random=server_random, certificate=certificate)
                )
            )
        elif isinstance(event, LicensingReceived) and await _licensing(
            link, report, event, key, server_random
        ):
            await link.send(mcs.DisconnectProviderUltimatum(reason=1))
            return


async def _licensing(
    link: _Link,
    report: RdpSessionReport,
    event: LicensingReceived,
    key: RsaKey,
    server_random: bytes,
) -> bool:
    """Handle one client licensing PDU; True when the exchange is over."""
    message = event.message
    report.license_message = type(message).__name__
    report.license_encrypted = event.encrypted
    report.reached = "licensing"
    if isinstance(message, NewLicenseRequest):
        report.license_user = message.user
        report.license_machine = message.machine
    if isinstance(message, NewLicenseRequest | LicenseInformation):
        report.platform_id = message.platform_id
        premaster = decrypt_premaster(message.encrypted_premaster.data, key)
        keys = derive_licensing_keys(premaster, message.client_random, server_random)
        link.keys = keys
        encrypted, mac = keys.seal(CHALLENGE)
        blob = Blob(kind=BlobType.ENCRYPTED_DATA, data=encrypted)
        await link.send(SendLicensing(message=PlatformChallenge(encrypted_challenge=blob, mac=mac)))
        return False
    if isinstance(message, PlatformChallengeResponse):
        session = link.keys
        if session is None:
            report.error = "Platform Challenge Response before a license request"
            return True
        response = session.decrypt(message.encrypted_response.data)
        hwid = session.decrypt(message.encrypted_hwid.data)
        # rdesktop echoes the challenge without the spec's wrapper: the MAC covers both
        # plaintexts either way (docs/RDP.md)
        session.check_mac(response + hwid, message.mac)
        report.challenge_ok = response == CHALLENGE or (
            ChallengeResponseData.parse(response).challenge == CHALLENGE
        )
        parsed = HardwareId.parse(hwid)
        report.hwid = f"{parsed.platform_id:08x}:" + hwid[4:].hex()  # Data1..4 as sent
        report.reached = "platform challenge response"
        return True
    return True


async def serve_rdp(
    port: int,
    *,
    host: str = "127.0.0.1",
    on_report: Callable[[RdpSessionReport], None] = lambda r: None,
    random_bytes: RandomBytes = secrets.token_bytes,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve RDP connections on (host, port) until cancelled."""
    key = generate_rsa_key(random_bytes)

    async def handler(stream: trio.SocketStream) -> None:
        on_report(await serve_rdp_connection(stream, server_key=key, random_bytes=random_bytes))

    await trio.serve_tcp(handler, port, host=host, task_status=task_status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    def report(r: RdpSessionReport) -> None:
        print(json.dumps(r.as_dict(), sort_keys=True), flush=True)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                lambda task_status: serve_rdp(
                    args.port, host=args.host, on_report=report, task_status=task_status
                )
            )
            sockname = listeners[0].socket.getsockname()
            print(
                json.dumps({"role": "rdp-listener", "address": f"{sockname[0]}:{sockname[1]}"}),
                flush=True,
            )

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
