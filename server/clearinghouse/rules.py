"""Dates, limits and the refusal text shared by CAL installation and the transition offer.

Contract (KB 823313, KB 839878): pure values and checks. The offer
covers Windows XP Professional licenses acquired before 24 April 2003 and accepts no
redemption from 1 July 2007 (emulated clock); `refuse` builds the wizard's 0x13A7 refusal.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tslic.protocol.clock import from_datetime, to_datetime
from tslic.protocol.codes import WIZARD_MESSAGE
from tslic.protocol.domain import CalProduct
from tslic.protocol.errors import ErrorCode, ServiceError

# KB823313: XP Professional licenses owned before 24 April 2003; offer ended 30 June 2007.
TRANSITION_ACQUIRED_BEFORE = from_datetime(datetime(2003, 4, 24, tzinfo=UTC))
TRANSITION_LAST_DAY = from_datetime(datetime(2007, 7, 1, tzinfo=UTC))  # exclusive end
TRANSITION_PRODUCTS = (CalProduct.W2003_DEVICE_CAL, CalProduct.W2003_USER_CAL)
XP_CHANNELS = ("retail", "oem", "volume")
MAX_KEYS_PER_REQUEST = 100
OUTBOX = "outbox"
SENDER = "Microsoft Clearinghouse (emulated) <clearinghouse@tslic.invalid>"


def refuse(code: ErrorCode, reason: str) -> ServiceError:
    """The wizard's 0x13A7 refusal with its reason (KB 839878)."""
    return ServiceError(f"{WIZARD_MESSAGE} {reason}", code=code, detail={"reason": reason})


def offer_open(now: int) -> None:
    """Raise TRANSITION_OFFER_ENDED after 30 June 2007 (emulated clock)."""
    if now >= TRANSITION_LAST_DAY:
        raise ServiceError(
            "The Windows Server 2003 Terminal Server transition offer ended on 30 June 2007;"
            f" it is now {to_datetime(now):%d %B %Y}.",
            code=ErrorCode.TRANSITION_OFFER_ENDED,
        )


def xp_eligible(acquired_at: int) -> bool:
    return acquired_at < TRANSITION_ACQUIRED_BEFORE
