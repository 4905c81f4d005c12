"""Adding test purchases to the entitlement catalogue (the `add-*` commands).

Contract: each function validates what a person typed with protocol/codes.py (the same checks
the wizard makes), writes one committed row, and returns it; bad input raises `ServiceError`
(INVALID_LICENSE_CODE / INVALID_FIELD) and stores nothing. A retail code may be given or, if
not, is generated (valid check character) from random serial bytes.
"""

from __future__ import annotations

import secrets

from tslic.protocol.codes import (
    check_agreement_number,
    check_open_license,
    check_retail_code,
    check_xp_product_key,
    group5,
    make_retail_code,
)
from tslic.protocol.domain import CalProduct, Program
from tslic.protocol.errors import ErrorCode, ServiceError

from .catalogue import Entitlement, XpLicense
from .core import Clearinghouse
from .rules import XP_CHANNELS

AGREEMENT_PROGRAMS = (
    Program.SELECT,
    Program.ENTERPRISE_AGREEMENT,
    Program.CAMPUS_AGREEMENT,
    Program.SCHOOL_AGREEMENT,
)
SELLABLE = (CalProduct.W2000_TS_CAL, CalProduct.W2003_DEVICE_CAL, CalProduct.W2003_USER_CAL)
MAX_COUNT = 1_000_000


def _check(product: CalProduct, count: int) -> None:
    if product not in SELLABLE:
        raise ServiceError(
            f"{product.label} is not sold; choose a TS CAL product",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "product"},
        )
    if not 0 < count <= MAX_COUNT:
        raise ServiceError(
            f"the count must be 1 to {MAX_COUNT}, not {count}",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "count"},
        )


def add_retail(
    ch: Clearinghouse, *, product: CalProduct, count: int, now: int, code: str = ""
) -> Entitlement:
    """A retail license pack; `code` is generated when empty."""
    _check(product, count)
    value = check_retail_code(code) if code else make_retail_code(secrets.token_bytes(16))
    with ch.db.transaction():
        if ch.db.retail(value) is not None:
            raise ServiceError(
                f"license code {group5(value)} is already in the catalogue",
                code=ErrorCode.INVALID_LICENSE_CODE,
            )
        return ch.db.add_entitlement(
            program=Program.RETAIL, product=product, total=count, now=now, retail_code=value
        )


def add_open(
    ch: Clearinghouse,
    *,
    product: CalProduct,
    count: int,
    now: int,
    license_number: str,
    authorization_number: str,
) -> Entitlement:
    """An Open License purchase (8-digit license number, 15-character authorization)."""
    _check(product, count)
    number, auth = check_open_license(license_number, authorization_number)
    with ch.db.transaction():
        return ch.db.add_entitlement(
            program=Program.OPEN_LICENSE,
            product=product,
            total=count,
            now=now,
            license_number=number,
            authorization_number=auth,
        )


def add_agreement(
    ch: Clearinghouse,
    *,
    program: Program,
    product: CalProduct,
    count: int,
    now: int,
    agreement_number: str,
) -> Entitlement:
    """A Select / Enterprise / Campus / School purchase under a 7-digit number. One number
    belongs to one program."""
    if program not in AGREEMENT_PROGRAMS:
        raise ServiceError(
            f"{program.label} is not an agreement program",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "program"},
        )
    _check(product, count)
    number = check_agreement_number(agreement_number)
    with ch.db.transaction():
        clash = {e.program for e in ch.db.agreement(number)} - {program}
        if clash:
            raise ServiceError(
                f"number {number} already belongs to {', '.join(sorted(c.label for c in clash))}",
                code=ErrorCode.INVALID_FIELD,
                detail={"field": "agreement"},
            )
        return ch.db.add_entitlement(
            program=program, product=product, total=count, now=now, agreement_number=number
        )


def add_xp(
    ch: Clearinghouse,
    *,
    product_key: str,
    acquired_at: int,
    channel: str,
    program: Program | None = None,
    license_number: str = "",
    authorization_number: str = "",
    agreement_number: str = "",
) -> XpLicense:
    """A Windows XP Professional license. Volume licenses name the program and numbers they
    were bought under, so that method 1 installs can find them."""
    if channel not in XP_CHANNELS:
        raise ServiceError(
            f"channel must be one of {', '.join(XP_CHANNELS)}, not {channel!r}",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "channel"},
        )
    key = check_xp_product_key(product_key)
    prog, numbers = "", ""
    if channel == "volume":
        if program is None or program is Program.RETAIL:
            raise ServiceError(
                "a volume license needs its program (open-license, select,"
                " enterprise-agreement, campus-agreement or school-agreement)",
                code=ErrorCode.INVALID_FIELD,
                detail={"field": "program"},
            )
        if program is Program.OPEN_LICENSE:
            numbers = "/".join(check_open_license(license_number, authorization_number))
        else:
            numbers = check_agreement_number(agreement_number)
        prog = str(program)
    with ch.db.transaction():
        if ch.db.xp(key) is not None:
            raise ServiceError(
                f"product key {group5(key)} is already in the catalogue",
                code=ErrorCode.INVALID_LICENSE_CODE,
            )
        return ch.db.add_xp(
            product_key=key, acquired_at=acquired_at, channel=channel, program=prog, numbers=numbers
        )
