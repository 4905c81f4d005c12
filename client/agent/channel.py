"""What a front end gives the licensing exchange, and what it gets back.

Contract: `Licensing.license_client(channel)` (client/agent/licensing.py) runs one client's
licensing over any `Channel`: the msgpack RDP conversation (`runtime.session.Session`) is
one; a real RDP listener translating MS-RDPELE PDUs to and from these messages would be
another. It returns a `LicensedClient` when the client may log on; `Licensing.logged_on`
takes it after a successful logon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tslic.protocol import Message
from tslic.protocol.messages.records import LicenseBody


class Channel(Protocol):
    """One client's licensing conversation, as the exchange needs it."""

    @property
    def peer_key(self) -> bytes | None:
        """The key the transport proved the client's messages come from (the hardware id
        a PlatformChallengeResponse must name), or None if the transport has none."""

    async def send(self, message: Message) -> None: ...

    async def receive(self, *, idle: bool = False) -> Message:
        """The client's next message (`idle`: it may take as long as the session lasts)."""


@dataclass(slots=True)
class LicensedClient:
    """A client that may log on, with the license it ended licensing with, if any (the
    post-logon mark needs it; None: accepted without a license, in grace)."""

    body: LicenseBody | None = None
