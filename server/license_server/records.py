"""The data the licensing decisions work on: requests, outcomes and license rows.

Contract: plain values, no I/O. `LicenseAsk` is a client's license request as its terminal
server relays it; `TerminalServer` the authenticated requester; `Outcome` what one decision
produced (handed back from the store operation); `ts_cert_validity` the five-year window of a
terminal-server certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tslic.protocol.clock import to_datetime
from tslic.protocol.domain import CalProduct, LicenseKind, WindowsVersion
from tslic.protocol.errors import ServiceError
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    Referral,
    UpgradeLicenseRequest,
)


@dataclass(frozen=True, slots=True)
class TerminalServer:
    """A terminal server authenticated by the certificate this server issued it."""

    name: str
    version: WindowsVersion
    public_key: bytes


# A client's license request as its terminal server relays it: the decoded message itself
# (an UpgradeLicenseRequest when the client presented a license), not a copy of its fields.
LicenseAsk = IssueLicense | UpgradeLicenseRequest


@dataclass(slots=True)
class Outcome:
    """What one decision produced (handed back from the store operation)."""

    # No default factories: one Outcome per license request, and a factory call costs more
    # than the plain defaults (issue 19).
    available: dict[CalProduct, int]  # free CALs per product after the decision
    reply: LicenseGranted | Referral | None = None
    refusal: ServiceError | None = None
    events: tuple[tuple[int, str], ...] = ()  # (event id, text) logged for this request
    issued: tuple[CalProduct, LicenseKind] | None = None


def ts_cert_validity(now: int) -> tuple[datetime, datetime]:
    """Validity window of a terminal-server certificate issued at `now` (five years)."""
    start = to_datetime(now)
    return start - timedelta(days=1), start + timedelta(days=5 * 365)
