"""The pieces every part of the RDP front end shares: the per-connection link, the report,
the listener's policy.

Contract: `Link` pairs a byte stream with a sans-IO `RdpServerConnection`: `next_event()`
reads until one event is ready (each read bounded by the step timeout unless
`bounded=False`), `send(event)` writes its bytes; the stream is replaced once TLS starts.
`RdpSessionReport` is what one client did (one JSON line); `ListenerConfig` is the policy
(RSA key, TLS context, decider, step timeout, outcome hold, scope).
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable

import trio
from tslic.protocol.connection import NEED_DATA
from tslic.protocol.rdp import RdpServerConnection
from tslic.protocol.rdp.keys import RsaKey

from .rdp_licensing import Decider

RandomBytes = Callable[[int], bytes]


@dataclasses.dataclass
class RdpSessionReport:
    """What one client did; `error` is set when the connection ended on a failure."""

    cookie: str | None = None
    requested_protocols: int | None = None
    selected_protocol: int | None = None
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
    presented: bool | None = None
    outcome: str | None = None
    error_info: int | None = None
    license_sent: bool = False
    session_end: str | None = None
    reached: str = "connected"
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class Link:
    """The stream plus the sans-IO connection: read events, write replies."""

    def __init__(self, stream: trio.abc.Stream, conn: RdpServerConnection, timeout: float):
        self.stream = stream
        self.conn = conn
        self.timeout = timeout

    async def next_event(self, *, bounded: bool = True) -> object:
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            with trio.fail_after(self.timeout if bounded else float("inf")):
                data = await self.stream.receive_some(65536)
            self.conn.receive_data(bytes(data))

    async def send(self, event: object) -> None:
        await self.stream.send_all(self.conn.send(event))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ListenerConfig:
    """The listener's policy: the RSA key of Standard RDP Security, the TLS context (None:
    no TLS), the decider, how long a step may take and how long the outcome stays shown."""

    server_key: RsaKey
    decider: Decider
    tls: ssl.SSLContext | None = None
    step_timeout: float = 10.0
    hold: float = 30.0
    scope: str = "microsoft.com"
