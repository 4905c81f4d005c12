"""Names, codes and Required Information checks shared by the Clearinghouse modules.

Contract: License Server IDs, claim codes and confirmation codes are random bytes written with
protocol/codes.py `encode_b24` (groups of five over the product-key alphabet, with a check
group that catches typos); typed codes are checked with `decode_b24` and kept in the grouped
form. Missing Required Information raises MISSING_REQUIRED_INFO naming every missing field.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from tslic.protocol.codes import decode_b24, encode_b24, group5, normalize_code
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.messages.records import ContactInfo
from tslic.protocol.names import shown

ROOT_NAME = "Microsoft Clearinghouse (emulated)"
ROOT_KEY = "root.key"
ROOT_CERT = "root.pem"
# The root outlives any virtual date a lab picks, so restarting with another --start-date
# never makes the chain invalid.
ROOT_NOT_BEFORE = datetime(1990, 1, 1, tzinfo=UTC)
ROOT_NOT_AFTER = datetime(2099, 12, 31, tzinfo=UTC)
LS_CERT_DAYS = 10 * 365
ID_BYTES = 16  # License Server ID and claim codes: 35 characters, 7 groups of five
CONFIRMATION_BYTES = 8  # deactivation confirmation code: 20 characters, 4 groups


def new_code(nbytes: int = ID_BYTES) -> str:
    """A fresh random code in groups of five over the product-key alphabet."""
    return encode_b24(secrets.token_bytes(nbytes))


def canonical_id(text: str, *, what: str = "License Server ID") -> str:
    """A typed License Server ID (or claim code) checked and put in groups of five.

    Raises:
        ServiceError: INVALID_CONFIRMATION_CODE saying which group looks mistyped.
    """
    if not normalize_code(text):
        raise ServiceError(f"the {what} is empty", code=ErrorCode.MISSING_REQUIRED_INFO)
    try:
        decode_b24(text, ID_BYTES)
    except ServiceError as exc:  # say which field the typing mistake is in
        raise ServiceError(
            f"{what} {shown(text, 45)}: {exc.message}", code=exc.code, detail=exc.detail
        ) from None
    return group5(text)


def require_contact(contact: ContactInfo, *, need_email: bool, names_only: bool = False) -> None:
    """Refuse missing Required Information, naming every missing field (§5.2)."""
    missing = contact.missing(need_email=need_email)
    if names_only:
        missing = [m for m in missing if m in ("first name", "last name", "e-mail")]
    if missing:
        raise ServiceError(
            "The Required Information is incomplete: please enter " + ", ".join(missing) + ".",
            code=ErrorCode.MISSING_REQUIRED_INFO,
            detail={"missing": ",".join(missing)},
        )


def contact_json(contact: ContactInfo) -> dict[str, str]:
    return {name: getattr(contact, name) for name in ContactInfo.__dataclass_fields__}
