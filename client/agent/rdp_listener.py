"""The real-RDP listener: drives `tslic.protocol.rdp.RdpServerConnection` over TCP.

Contract:
- `serve_rdp_connection(stream, ...)` runs one connection: X.224 negotiation (TLS when the
  client offers PROTOCOL_SSL and a TLS context is given; Standard RDP Security otherwise; a
  client that asks only for CredSSP gets RDP_NEG_FAILURE SSL_REQUIRED_BY_SERVER when TLS is
  available, SSL_NOT_ALLOWED_BY_SERVER when not, and the connection closes), MCS with the GCC
  blocks, Erect Domain, Attach User, Channel Joins, Security Exchange (Standard Security
  only: after TLS the RDP layers run unencrypted, MS-RDPBCGR §5.4), Client Info, then the
  licensing exchange of MS-RDPELE: License Request (product info, proprietary certificate,
  scope), the client's New License Request or License Information, a Platform Challenge
  whose response MAC is verified, and the `Decider`'s outcome (rdp_licensing.py) as New /
  Upgrade License, "valid client", or Set Error Info + Error Alert + disconnect. A licensed
  client then gets the minimal session of rdp_session.py with the outcome bitmap.
- It returns an `RdpSessionReport` of what the client sent and what it got.
- Every wait is bounded by `step_timeout` seconds (the caller's policy); protocol errors,
  timeouts and transport errors end only this connection and are recorded in the report.
- Randomness (server key, server random) comes from `random_bytes`; the challenge is the
  fixed 10-byte UTF-16 "TEST" (rdesktop accepts no other length).
- `python -m tslic.client.agent.rdp_listener --port N [--data DIR]` serves until
  interrupted with the stand-alone decider and prints one JSON line per connection (the
  manual try-out of docs/RDP.md).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import trio
from tslic.protocol.connection import PEER_CLOSED
from tslic.protocol.errors import ProtocolError
from tslic.protocol.rdp import (
    AcceptSettings,
    ClientConnect,
    ClientInfoReceived,
    LicensingReceived,
    RdpServerConnection,
    SecurityEstablished,
    SendErrorInfo,
    mcs,
    x224,
)
from tslic.protocol.rdp.keys import generate_rsa_key
from tslic.protocol.rdp.security import EncryptionLevel

from .rdp_exchange import LicensingExchange
from .rdp_licensing import StandaloneDecider
from .rdp_link import Link, ListenerConfig, RandomBytes, RdpSessionReport
from .rdp_session import OnPainted, run_session
from .rdp_tls import server_context


async def serve_rdp_connection(
    stream: trio.abc.Stream,
    config: ListenerConfig,
    *,
    random_bytes: RandomBytes = secrets.token_bytes,
    on_painted: OnPainted | None = None,
) -> RdpSessionReport:
    report = RdpSessionReport()
    link = Link(stream, RdpServerConnection(server_key=config.server_key), config.step_timeout)
    try:
        await _converse(link, report, config, random_bytes, on_painted)
    except ProtocolError as exc:
        report.error = str(exc)
    except trio.TooSlowError:
        report.error = f"client silent for {config.step_timeout} s in {link.conn.state.value}"
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        report.error = f"transport: {exc!r}"
    finally:
        with trio.move_on_after(1, shield=True):
            await link.stream.aclose()
    return report


def _negotiate(request: x224.ConnectionRequest, tls: bool) -> object:
    """The X.224 answer (§3.3.5.3.1): TLS when offered and available, Standard RDP Security
    otherwise; a client that accepts neither (CredSSP only) gets RDP_NEG_FAILURE."""
    requested = request.requested_protocols
    if requested is None:  # no RDP_NEG_REQ: an RDP 4/5 client, Standard Security, no nego data
        return x224.ConnectionConfirm(selected_protocol=None)
    if tls and requested & x224.Protocol.SSL:
        return x224.ConnectionConfirm(selected_protocol=x224.Protocol.SSL)
    if requested & (x224.Protocol.HYBRID | x224.Protocol.HYBRID_EX) and not requested & 1:
        # CredSSP alone: we do not implement it; say what we would accept instead
        code = (
            x224.FailureCode.SSL_REQUIRED_BY_SERVER
            if tls
            else x224.FailureCode.SSL_NOT_ALLOWED_BY_SERVER
        )
        return x224.NegotiationFailure(code=code)
    return x224.ConnectionConfirm(selected_protocol=x224.Protocol.RDP)


async def _converse(
    link: Link,
    report: RdpSessionReport,
    config: ListenerConfig,
    random_bytes: RandomBytes,
    on_painted: OnPainted | None,
) -> None:
    server_random = random_bytes(32)
    exchange = LicensingExchange(link, report, config, server_random)
    while True:
        event = await link.next_event()
        if event is PEER_CLOSED or isinstance(event, mcs.DisconnectProviderUltimatum):
            report.reached += "; client closed"
            return
        if isinstance(event, x224.ConnectionRequest):
            report.cookie = event.cookie.decode("latin-1") if event.cookie else None
            report.requested_protocols = event.requested_protocols
            report.reached = "x224"
            answer = _negotiate(event, config.tls is not None)
            await link.send(answer)
            if isinstance(answer, x224.NegotiationFailure):
                report.error = f"negotiation failure {x224.FailureCode(answer.code).name}"
                return
            assert isinstance(answer, x224.ConnectionConfirm)
            report.selected_protocol = answer.selected_protocol
            if answer.selected_protocol == x224.Protocol.SSL:
                assert config.tls is not None
                tls_stream = trio.SSLStream(link.stream, config.tls, server_side=True)
                with trio.fail_after(config.step_timeout):
                    await tls_stream.do_handshake()
                link.stream = tls_stream
                report.reached = "tls"
        elif isinstance(event, ClientConnect):
            core = event.settings.core
            report.client_name = core.client_name
            report.client_build = core.client_build
            report.encryption_methods = event.settings.security.encryption_methods
            report.reached = "mcs"
            tls = report.selected_protocol == x224.Protocol.SSL
            level = EncryptionLevel.NONE if tls else EncryptionLevel.CLIENT_COMPATIBLE
            await link.send(
                AcceptSettings(server_random=b"" if tls else server_random, encryption_level=level)
            )
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
            await exchange.start(event.info)
        elif isinstance(event, LicensingReceived):
            outcome = await exchange.receive(event)
            if outcome is None:
                continue
            if outcome.refused:
                assert outcome.error_info is not None
                # Set Error Info first: xfreerdp stops reading at an ST_TOTAL_ABORT alert
                # (it prints the ERRINFO text); rdesktop prints the alert's code instead
                await link.send(SendErrorInfo(error_info=outcome.error_info))
                await exchange.alert(outcome.alert_code)
                await link.send(mcs.DisconnectProviderUltimatum(reason=1))
                report.reached = "refused"
                return
            report.reached = "licensed"
            lines = outcome.lines(report.client_name or "", report.user or "")
            report.session_end = await run_session(
                link, lines, hold=config.hold, on_painted=on_painted
            )
            report.reached = "session"
            return


async def serve_rdp(
    port: int,
    config: ListenerConfig,
    *,
    host: str = "127.0.0.1",
    on_report: Callable[[RdpSessionReport], None] = lambda r: None,
    random_bytes: RandomBytes = secrets.token_bytes,
    on_painted: OnPainted | None = None,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve RDP connections on (host, port) until cancelled (the stand-alone listener and
    the tests; the agent serves it on its runtime instead)."""

    async def handler(stream: trio.SocketStream) -> None:
        on_report(
            await serve_rdp_connection(
                stream, config, random_bytes=random_bytes, on_painted=on_painted
            )
        )

    await trio.serve_tcp(handler, port, host=host, task_status=task_status)


def standalone_config(
    data_dir: Path | None, *, hold: float = 30.0, random_bytes: RandomBytes = secrets.token_bytes
) -> ListenerConfig:
    return ListenerConfig(
        server_key=generate_rsa_key(random_bytes),
        decider=StandaloneDecider(),
        tls=server_context(data_dir) if data_dir is not None else None,
        hold=hold,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--data", type=Path, help="directory for the TLS certificate (TLS off without it)"
    )
    parser.add_argument("--hold", type=float, default=30.0, help="seconds the outcome stays shown")
    args = parser.parse_args(argv)
    config = standalone_config(args.data, hold=args.hold)

    def report(r: RdpSessionReport) -> None:
        print(json.dumps(r.as_dict(), sort_keys=True), flush=True)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                lambda task_status: serve_rdp(
                    args.port, config, host=args.host, on_report=report, task_status=task_status
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
