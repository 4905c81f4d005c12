"""A terminal server's licensing grace period, as an immutable value.

Contract:
- Sans-IO: every method that depends on time takes `now` (an aware datetime); nothing reads a
  clock. Methods that "change" the period return a new `GracePeriod`.
- Length is the version's (`WindowsVersion.grace_days`: 90 days for Windows 2000, 120 for
  Windows Server 2003, KB 813052, TechNet cc738708). It starts at the first client connection
  (TechNet cc738708;
  JSI 8634 for Windows 2000) and ends early only on the event `end_rule` names (`GraceEnd`,
  a switch because TechNet cc738708 and KB 813052 conflict). Ending is recorded once, first
  event wins.
- Times are judged half-open: the period covers [started_at, expires_at) and stops at
  `ended_at`; asking about an earlier `now` answers as of that time.
- `due_events` tells the agent which termsrv events to log (1009 warning, 1008 expired,
  termsrv.dll messages); the caller remembers what it logged and passes it back, so each is
  logged once.

Uncertain, and ours: the warning threshold `GRACE_WARNING_DAYS = 15` (the sources give no
number for event 1009), and the discovery intervals of `DiscoveryIntervals` (JSI Tip 8634: 15 min /
60 min / 2 h come from Windows 2000-era secondary sources).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from .domain import WindowsVersion
from .events import TermsrvEvent
from .policy import GraceEnd, ensure_aware

# Our choice (uncertain): event 1009 is logged once fewer than 15 days of grace are left.
GRACE_WARNING_DAYS = 15

_DAY = timedelta(days=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class GracePeriod:
    """The grace period of one terminal server.

    Attributes:
        version: the terminal server's version; decides the length (90 or 120 days).
        started_at: the first client connection, or None before it.
        ended_at: when the grace period was ended early, or None.
        end_rule: which event ends it early (TechNet cc738708 switch; default first permanent CAL).
        end_reason: the event that ended it (set together with `ended_at`).

    Raises:
        ValueError: on naive datetimes, or when `ended_at` and `end_reason` are not both set.
    """

    version: WindowsVersion
    started_at: datetime | None = None
    ended_at: datetime | None = None
    end_rule: GraceEnd = GraceEnd.FIRST_PERMANENT_CAL
    end_reason: GraceEnd | None = None

    def __post_init__(self) -> None:
        if self.started_at is not None:
            ensure_aware(self.started_at, "started_at")
        if self.ended_at is not None:
            ensure_aware(self.ended_at, "ended_at")
        if (self.ended_at is None) != (self.end_reason is None):
            raise ValueError("ended_at and end_reason must be set together")

    @property
    def length(self) -> timedelta:
        """The full grace period: 90 days (Windows 2000) or 120 days (2003) (KB 813052)."""
        return timedelta(days=self.version.grace_days)

    @property
    def expires_at(self) -> datetime | None:
        """When the grace period runs out if nothing ends it first; None before it started."""
        return None if self.started_at is None else self.started_at + self.length

    def start(self, now: datetime) -> GracePeriod:
        """Start the clock at the first client connection (TechNet cc738708); later calls change
        nothing.

        Args:
            now: the time of the client connection.

        Returns:
            The started period (or `self` if it had already started).
        """
        ensure_aware(now)
        if self.started_at is not None:
            return self
        return dataclasses.replace(self, started_at=now)

    def end(self, now: datetime, reason: GraceEnd) -> GracePeriod:
        """Report an event that may end the grace period early (TechNet cc738708).

        Call it with `GraceEnd.FIRST_PERMANENT_CAL` when a client of this terminal server gets
        its first permanent CAL and with `GraceEnd.FIRST_LICENSE_SERVER` when a license server
        is first found; only the one matching `end_rule` ends the period. Under
        FIRST_LICENSE_SERVER a server found before any client leaves no grace at all (KB813052).

        Args:
            now: when the event happened.
            reason: which event happened.

        Returns:
            The ended period, or `self` if the event does not end it or it had already ended.
        """
        ensure_aware(now)
        if self.ended_at is not None or reason is not self.end_rule:
            return self
        return dataclasses.replace(self, ended_at=now, end_reason=reason)

    def _remaining(self, now: datetime) -> timedelta | None:
        """Time left at `now`; None when the clock has not started. Never negative."""
        ensure_aware(now)
        if self.ended_at is not None and now >= self.ended_at:
            return timedelta(0)
        if self.started_at is None or now < self.started_at:
            return None
        return max(self.started_at + self.length - now, timedelta(0))

    def days_left(self, now: datetime) -> int:
        """Whole days of grace left, rounded up, as GetGracePeriodDays reports them
        (Win32_TerminalServiceSetting).

        Args:
            now: current time.

        Returns:
            0 when the period is over (ended or run out); the full length before it started.
        """
        remaining = self._remaining(now)
        if remaining is None:
            return self.version.grace_days
        return -(-remaining // _DAY)

    def in_grace(self, now: datetime) -> bool:
        """Whether an unlicensed client is accepted without a license server (TechNet cc738708).

        Args:
            now: current time.

        Returns:
            True before the first connection and until the period runs out or is ended.
        """
        return self.days_left(now) > 0

    def due_events(
        self, now: datetime, already_logged: frozenset[int] = frozenset()
    ) -> tuple[int, ...]:
        """Termsrv events the agent should log now (termsrv.dll messages), each once.

        1009 is due once fewer than `GRACE_WARNING_DAYS` are left; 1008 once the period has
        run out. If the warning window was skipped entirely (the server was off), only 1008
        is logged. A period ended early by a license produces neither.

        Args:
            now: current time.
            already_logged: the event ids logged before for this period.

        Returns:
            The event ids to log now, in order (empty, (1009,) or (1008,)).
        """
        if self.ended_at is not None and now >= self.ended_at:
            return ()
        remaining = self._remaining(now)
        if remaining is None:
            return ()
        if remaining == timedelta(0):
            due = TermsrvEvent.GRACE_EXPIRED
        elif remaining < timedelta(days=GRACE_WARNING_DAYS):
            due = TermsrvEvent.GRACE_EXPIRING
        else:
            return ()
        return () if due in already_logged else (int(due),)


@dataclass(frozen=True, kw_only=True, slots=True)
class DiscoveryIntervals:
    """How often a terminal-server agent looks for license servers (JSI Tip 8634; uncertain).

    Attributes:
        retry_when_none_found: retry period while no license server is known (15 min, JSI 8634).
        rediscovery: full re-discovery period (60 min; the enterprise-mode figure, [C]).
        liveness_check: re-check of the chosen license server (2 h, [C]).

    Raises:
        ValueError: if an interval is not positive.
    """

    retry_when_none_found: timedelta = timedelta(minutes=15)
    rediscovery: timedelta = timedelta(minutes=60)
    liveness_check: timedelta = timedelta(hours=2)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) <= timedelta(0):
                raise ValueError(f"{f.name} must be a positive interval")
