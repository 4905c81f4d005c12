"""After licensing: the client's logon, its session, and marking a temporary license
validated (KB 287687, TechNet cc727934).

Contract: `Logons` is a base of `licensing.Licensing`; it owns only the session counter.
- `_logon(channel, client)` runs the emulated logon of the msgpack conversation: a Goodbye
  ends it; a ClientLogon is answered with LogonComplete (a session id either way; a failed
  logon gets the "could not log you on" text), then the session lasts until the client says
  Goodbye or goes away (an idle wait, so a shutdown says Goodbye at once).
- `logged_on(client)` records a successful logon and returns its session id. A temporary
  Per Device license is first marked validated at its issuer (MarkLicense, before the
  session starts, so it starts with the mark recorded); Per User temporaries are not upgraded
  (TechNet cc727934), so they are not marked either. A mark that fails (no license server, a
  refusal) is logged and does not stop the logon.
"""

from __future__ import annotations

import logging

from tslic.protocol import ServiceError
from tslic.protocol.domain import LicenseKind, LicensingMode
from tslic.protocol.messages import Goodbye
from tslic.protocol.messages.licensing import LicenseMarked, MarkLicense
from tslic.protocol.messages.rdp import ClientLogon, LogonComplete
from tslic.protocol.messages.records import LicenseBody

from .channel import Channel, LicensedClient
from .config import AgentConfig
from .discovery import LicenseServers
from .failover import NoLicenseServer
from .state import AgentState
from .upstream import ask

# The licensing component's logger, under the name it had before logon.py was split out of
# licensing.py, so the agent's log lines read the same.
log = logging.getLogger("tslic.client.agent.licensing")

LOGON_FAILED = (
    "The system could not log you on. Make sure your User name and domain are correct, then "
    "type your password again."
)


class Logons:
    """Logons and sessions of one terminal server's clients (set up by Licensing)."""

    config: AgentConfig
    state: AgentState
    servers: LicenseServers
    _sessions: int

    async def _logon(self, stream: Channel, held: LicensedClient) -> None:
        message = await stream.receive()
        if isinstance(message, Goodbye):
            await self.state.save_grouped()
            return
        assert isinstance(message, ClientLogon)  # the state table admits nothing else
        ok = message.credentials_valid
        session_id = await self.logged_on(held) if ok else self._next_session()
        text = "" if ok else LOGON_FAILED
        await stream.send(LogonComplete(logged_on=ok, session_id=session_id, text=text))
        await self.state.save_grouped()
        # The session lasts until the client says Goodbye (or goes away): an idle wait, so a
        # shutdown says Goodbye at once.
        await stream.receive(idle=True)

    def _next_session(self) -> int:
        self._sessions += 1
        return self._sessions

    async def logged_on(self, client: LicensedClient) -> int:
        """A client licensed by `license_client` logged on successfully; returns its session
        id. KB 287687: a temporary Per Device license is then marked validated at its issuer
        (before the session starts, so it starts with the mark recorded). Per User
        temporaries are not upgraded (TechNet cc727934), so they are not marked either."""
        body = client.body
        per_device = self.config.mode is LicensingMode.PER_DEVICE
        if per_device and body is not None and body.kind is LicenseKind.TEMPORARY:
            await self._mark(body)
        return self._next_session()

    async def _mark(self, body: LicenseBody) -> None:
        """KB 287687: after a successful logon, the temporary license is marked validated."""
        try:
            reply = await ask(
                self.servers, MarkLicense(license_id=body.license_id, hwid=body.hwid), body.issuer
            )
        except (NoLicenseServer, ServiceError) as exc:
            log.info("could not mark license %s validated: %s", body.license_id, exc)
            return
        if isinstance(reply, LicenseMarked) and reply.validated:
            self.state.count("marked_validated")
