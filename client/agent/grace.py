"""The terminal server's grace-period and discovery-outage bookkeeping
(TechNet cc738708, KB 813052, termsrv.dll messages).

Contract: `GraceKeeper` is the base of `licensing.Licensing`; it owns no state of its own
(the grace period and the logged event ids live in `AgentState`, saved on every change).
- The grace period (protocol.grace.GracePeriod) ends early on the event `--grace-ends` names:
  `end(FIRST_PERMANENT_CAL)` when a client gets its first permanent CAL,
  `on_server_found()` when discovery finds a usable license server.
- `check_grace()` logs 1009 (fewer than 15 days left) and 1008 (run out), each once.
- `note_no_server()` logs 1026 (domain), 1027 (workgroup) or 1010 (neither) when no license
  server can be found after the grace period, once until a server is found again.
"""

from __future__ import annotations

from tslic.protocol.clock import to_datetime
from tslic.protocol.policy import GraceEnd
from tslic.runtime.clock import Clock

from .config import AgentConfig
from .events import EventId, EventLog
from .state import AgentState


class GraceKeeper:
    """Grace period and no-license-server events of one terminal server."""

    config: AgentConfig
    state: AgentState
    events: EventLog
    clock: Clock

    def on_server_found(self) -> None:
        """Discovery found a usable server: under `first-license-server`, grace ends."""
        self.end_grace(GraceEnd.FIRST_LICENSE_SERVER)

    def end_grace(self, reason: GraceEnd) -> None:
        ended = self.state.grace.end(to_datetime(self.clock.now()), reason)
        if ended is not self.state.grace:
            self.state.grace = ended
            self.state.save()

    def in_grace(self) -> bool:
        return self.state.grace.in_grace(to_datetime(self.clock.now()))

    def check_grace(self) -> None:
        """Log 1009/1008 when due, each once per grace period (termsrv.dll messages)."""
        now = self.clock.now()
        grace = self.state.grace
        for event_id in grace.due_events(to_datetime(now), frozenset(self.state.grace_events)):
            if event_id == EventId.GRACE_EXPIRING and grace.expires_at is not None:
                self.events.log(
                    EventId.GRACE_EXPIRING, now, date=grace.expires_at.strftime("%Y-%m-%d")
                )
            else:
                self.events.log(
                    EventId.GRACE_EXPIRED, now, days=str(self.config.version.grace_days)
                )
            self.state.grace_events.add(event_id)
            self.state.save()

    def note_no_server(self) -> None:
        """No license server can be found after the grace period: 1026 in a domain, 1027 in
        a workgroup, 1010 otherwise (termsrv.dll messages), once until a server is found again."""
        if self.in_grace():
            return
        cfg = self.config
        if cfg.domain:
            event_id, data = EventId.NO_LICENSE_SERVER_DOMAIN, {"domain": cfg.domain}
        elif cfg.workgroup:
            event_id, data = EventId.NO_LICENSE_SERVER_WORKGROUP, {"domain": cfg.workgroup}
        else:
            event_id, data = EventId.NO_LICENSE_SERVER, {}
        if int(event_id) not in self.state.discovery_events:
            self.events.log(event_id, self.clock.now(), **data)
            self.state.discovery_events.add(int(event_id))
            self.state.save()
