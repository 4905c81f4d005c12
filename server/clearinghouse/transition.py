"""The transition offer, method 2 (KB823313): XP product keys in, a license token out.

Contract: `request_transition()` checks the form (license type, e-mail typed twice, product
keys with optional hyphens, one per line), then, in one transaction, that each key is a known
retail/OEM Windows XP Professional license acquired before 24 April 2003 and not yet redeemed
(INVALID_LICENSE_CODE / TRANSITION_NOT_ELIGIBLE / ALREADY_REDEEMED), and that the offer is
open (TRANSITION_OFFER_ENDED from 1 July 2007). It marks the keys redeemed, records one token
worth one CAL per key, and "e-mails" it: a standard message (email.message.EmailMessage) in
<data>/outbox/<date>-<token>.eml. A refusal changes nothing and writes no message.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from tslic.protocol.clock import to_datetime
from tslic.protocol.codes import check_xp_product_key, group5, make_retail_code
from tslic.protocol.domain import CalProduct
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.runtime.files import ensure_dir, write_atomic

from .core import Clearinghouse
from .rules import (
    MAX_KEYS_PER_REQUEST,
    OUTBOX,
    SENDER,
    TRANSITION_PRODUCTS,
    offer_open,
    refuse,
    xp_eligible,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionResult:
    token: str  # grouped, as in the e-mail
    count: int
    product: CalProduct
    email: str
    message_path: Path


def check_email(email: str, confirm: str) -> str:
    """The e-mail address, typed twice (KB823313 method 2, steps 2-3)."""
    address = email.strip()
    if not address:
        raise ServiceError(
            "Type your e-mail address in the eMail Address box.",
            code=ErrorCode.MISSING_REQUIRED_INFO,
            detail={"missing": "e-mail"},
        )
    local, at, domain = address.rpartition("@")
    if not (local and at and "." in domain) or any(c.isspace() for c in address):
        raise ServiceError(
            f"{address!r} is not an e-mail address (name@example.com).",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "email"},
        )
    if confirm.strip() != address:
        raise ServiceError(
            "The e-mail addresses do not match. Type the same address in both boxes.",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "confirm"},
        )
    return address


def request_transition(
    ch: Clearinghouse, *, product: CalProduct, email: str, confirm: str, keys_text: str, now: int
) -> TransitionResult:
    """Method 2: XP product keys in, one license token out, "e-mailed" to the outbox."""
    offer_open(now)
    if product not in TRANSITION_PRODUCTS:
        raise ServiceError(
            "Choose a Windows Server 2003 TS Device CAL or User CAL.",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "product"},
        )
    address = check_email(email, confirm)
    typed = [line.strip() for line in keys_text.replace(",", "\n").splitlines() if line.strip()]
    if not typed:
        raise ServiceError(
            "Type at least one Windows XP Professional product key.",
            code=ErrorCode.MISSING_REQUIRED_INFO,
            detail={"missing": "product key"},
        )
    if len(typed) > MAX_KEYS_PER_REQUEST:
        raise ServiceError(
            f"Enter at most {MAX_KEYS_PER_REQUEST} product keys per request.",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "keys"},
        )
    keys: list[str] = []
    for n, text in enumerate(typed, 1):
        try:
            key = check_xp_product_key(text)
        except ServiceError as exc:
            raise ServiceError(f"Product key {n}: {exc.message}", code=exc.code) from None
        if key in keys:
            raise ServiceError(
                f"Product key {n} ({group5(key)}) was entered twice.",
                code=ErrorCode.ALREADY_REDEEMED,
            )
        keys.append(key)
    token = make_retail_code(secrets.token_bytes(16))
    path = ensure_dir(ch.data_dir / OUTBOX) / f"{to_datetime(now):%Y%m%d-%H%M%S}-{token[:10]}.eml"
    try:
        with ch.db.transaction():
            for n, key in enumerate(keys, 1):
                _check_xp(ch, n, key)
                ch.db.redeem_xp(key, now, f"transition:{token}")
            ch.db.add_token(token=token, product=product, count=len(keys), email=address, now=now)
            ch.db.log(
                at=now,
                license_server_id="",
                action="transition-request",
                method="web",
                detail=json.dumps({"token": token, "count": len(keys), "email": address}),
            )
            write_atomic(path, _email(address, product, group5(token), keys, now))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return TransitionResult(
        token=group5(token), count=len(keys), product=product, email=address, message_path=path
    )


def _check_xp(ch: Clearinghouse, n: int, key: str) -> None:
    xp = ch.db.xp(key)
    label = f"Product key {n} ({group5(key)})"
    if xp is None:
        raise refuse(
            ErrorCode.INVALID_LICENSE_CODE,
            f"{label} is not a Windows XP Professional license known to the Clearinghouse.",
        )
    if xp.channel == "volume":
        raise ServiceError(
            f"{label} was obtained through volume licensing; install its"
            " transition CALs with the Install Licenses wizard and your"
            " program numbers (method 1).",
            code=ErrorCode.TRANSITION_NOT_ELIGIBLE,
        )
    if not xp_eligible(xp.acquired_at):
        raise ServiceError(
            f"{label} was acquired on {to_datetime(xp.acquired_at):%d %B %Y};"
            " only licenses acquired before 24 April 2003 qualify.",
            code=ErrorCode.TRANSITION_NOT_ELIGIBLE,
        )
    if xp.redeemed_at is not None:
        raise ServiceError(
            f"{label} has already been redeemed for a transition CAL.",
            code=ErrorCode.ALREADY_REDEEMED,
        )


def _email(address: str, product: CalProduct, token: str, keys: list[str], now: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = address
    msg["Subject"] = "Your Windows Server 2003 Terminal Server CAL license token"
    msg["Date"] = format_datetime(to_datetime(now))
    msg["Message-ID"] = make_msgid(domain="clearinghouse.tslic.invalid")
    lines = [
        "Thank you for your Windows Server 2003 Terminal Server transition request.",
        "",
        f"Product: {product.label}",
        f"Licenses: {len(keys)} (one for each Windows XP Professional license)",
        f"License token: {token}",
        "",
        "Enter the license token in the Terminal Server Licensing utility",
        "(Action > Install Licenses) with the Automatic connection, Web Browser",
        "or Telephone method.",
        "",
        "Windows XP Professional product keys redeemed:",
        *(f"  {group5(k)}" for k in keys),
    ]
    msg.set_content("\n".join(lines) + "\n")
    return bytes(msg)
