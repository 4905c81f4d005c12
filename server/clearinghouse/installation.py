"""CAL installation and the transition offer (KB 823313, KB 839878,
Win32_TSLicenseKeyPack).

Contract:
- `install()` validates a purchase against the catalogue and returns a `KeyPackGrant` signed
  by the root (automatic method). `install_by_hand()` does the same for the web and telephone
  methods but keeps the signed grant behind a license key pack code (a claim ticket) that the
  license server redeems once with `claim_keypack()`.
- The license server must be activated and not deactivated (UNKNOWN_LICENSE_SERVER). Codes
  are checked locally first (codes.py: INVALID_LICENSE_CODE with the wizard's 0x13A7 text and
  the reason), then against the catalogue: unknown numbers, a program or product the purchase
  does not cover -> INVALID_LICENSE_CODE with the same text; a count beyond what is left ->
  ENTITLEMENT_EXHAUSTED; a retail code or token already used -> ALREADY_REDEEMED. Windows
  Server 2003 CALs cannot go on a Windows 2000 license server (KEYPACK_NOT_SUPPORTED, KB839878).
- Lost replies (automatic method): a retail code used up (or a token redeemed) whose latest
  grant went to the SAME license server, asked again for the same product and count (or
  count 0), returns that grant again (same grant_id and content, re-signed: Ed25519 is
  deterministic, so the blob is byte-identical) and changes nothing; the license server
  stores each grant_id once. Any other server, or another count, still gets ALREADY_REDEEMED.
- Transition offer (rules.py): method 1 (volume): Windows XP Professional volume licenses
  acquired before 24 April 2003 and recorded under a program's numbers add one Windows Server
  2003 CAL each to what a normal installation with those numbers may install, until 30 June
  2007. Method 2 (retail/OEM, transition.py): the license token e-mailed by the transition page
  is redeemed here with ChInstallKeyPack(transition_token=...), once, for its product and
  count, while the offer is open.
- Every check and its update happen in one transaction; a refusal changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tslic.protocol.codes import (
    check_agreement_number,
    check_open_license,
    check_retail_code,
    group5,
)
from tslic.protocol.domain import ActivationMethod, CalProduct, Program
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.licenses import sign_grant
from tslic.protocol.messages.records import KeyPackGrant

from .catalogue import Entitlement
from .core import Clearinghouse, canonical_id, new_code
from .rules import (
    TRANSITION_LAST_DAY,
    TRANSITION_PRODUCTS,
    offer_open,
    refuse,
    xp_eligible,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Purchase:
    """What the wizard sends: program, its numbers (or retail code, or token), product, count."""

    program: Program
    product: CalProduct
    count: int
    retail_code: str = ""
    license_number: str = ""
    authorization_number: str = ""
    agreement_number: str = ""
    transition_token: str = ""


def _volume_key(program: Program, numbers: str) -> tuple[str, str]:
    return str(program), numbers


def install(
    ch: Clearinghouse,
    *,
    license_server_id: str,
    purchase: Purchase,
    now: int,
    method: ActivationMethod = ActivationMethod.AUTOMATIC,
) -> tuple[KeyPackGrant, bytes]:
    """Validate a purchase and return the signed grant (automatic method)."""
    with ch.db.transaction():
        return _install(ch, license_server_id, purchase, now, method)


def install_by_hand(
    ch: Clearinghouse,
    *,
    license_server_id: str,
    purchase: Purchase,
    now: int,
    method: ActivationMethod,
) -> tuple[str, KeyPackGrant]:
    """Web or telephone installation: returns the license key pack code to type in."""
    if method is ActivationMethod.AUTOMATIC:
        raise ServiceError(
            "the automatic method installs directly, without a code",
            code=ErrorCode.METHOD_NOT_ALLOWED,
        )
    code = new_code()
    with ch.db.transaction():
        grant, blob = _install(ch, license_server_id, purchase, now, method)
        ch.db.add_claim(
            code=code,
            kind="keypack",
            license_server_id=grant.license_server_id,
            payload={"grant_id": grant.grant_id},
            grant_blob=blob,
            now=now,
        )
    return code, grant


def claim_keypack(ch: Clearinghouse, *, license_server_id: str, code: str, now: int) -> bytes:
    """Redeem a license key pack code; the same server may retry, nobody may use it twice."""
    ls = ch.live(license_server_id)
    typed = canonical_id(code, what="license key pack code")
    with ch.db.transaction():
        claim = ch.db.claim(typed)
        if claim is None or claim.kind != "keypack" or claim.grant_blob is None:
            raise refuse(
                ErrorCode.INVALID_LICENSE_CODE,
                f"The license key pack code {typed} was not issued by the Clearinghouse.",
            )
        if claim.license_server_id != ls.license_server_id:
            raise refuse(
                ErrorCode.INVALID_LICENSE_CODE,
                f"The license key pack code {typed} was issued to another license server.",
            )
        if claim.redeemed_at is None:
            ch.db.redeem_claim(typed, now, ls.license_server_id)
            ch.db.log(
                at=now,
                license_server_id=ls.license_server_id,
                action="claim-keypack",
                method="automatic",
                detail=json.dumps(claim.payload),
            )
        return claim.grant_blob


def _install(
    ch: Clearinghouse, lsid: str, p: Purchase, now: int, method: ActivationMethod
) -> tuple[KeyPackGrant, bytes]:
    ls = ch.live(lsid)
    if p.product is CalProduct.W2000_BUILT_IN:
        raise refuse(
            ErrorCode.KEYPACK_NOT_SUPPORTED,
            "Built-in licenses are not sold; choose a TS CAL product.",
        )
    if p.product.version > ls.version:
        raise refuse(
            ErrorCode.KEYPACK_NOT_SUPPORTED,
            f"{p.product.label} cannot be installed on a Windows 2000 license server.",
        )
    if method is ActivationMethod.AUTOMATIC:  # a web/phone retry would mint a second ticket
        replayed = _replay(ch, p, ls.license_server_id, now)
        if replayed is not None:
            return replayed
    if p.transition_token:
        program, count, source = _take_token(ch, p, now, ls.license_server_id)
    elif p.program is Program.RETAIL:
        program, count, source = _take_retail(ch, p)
    else:
        program, count, source = _take_volume(ch, p, now)
    grant_id = ch.db.next_grant(
        license_server_id=ls.license_server_id,
        product=p.product,
        program=program,
        count=count,
        source=source,
        now=now,
    )
    grant = KeyPackGrant(
        grant_id=grant_id,
        license_server_id=ls.license_server_id,
        product=p.product,
        program=program,
        count=count,
        description=_description(p.product, program, source),
        issued_at=now,
        expires_at=0,
    )
    ch.db.log(
        at=now,
        license_server_id=ls.license_server_id,
        action="install",
        method=str(method),
        detail=json.dumps(
            {"grant_id": grant_id, "product": str(p.product), "count": count, "source": source},
            sort_keys=True,
        ),
    )
    return grant, sign_grant(ch.root_key, grant)


def _replay(
    ch: Clearinghouse, p: Purchase, lsid: str, now: int
) -> tuple[KeyPackGrant, bytes] | None:
    """The grant already made for this spent code or token to this server, if it is a retry.

    Why: the Clearinghouse may commit a redemption and then crash, or the connection may
    break, before the reply reaches the license server; refusing its retry would strand the
    purchase. Returns None when this is not such a retry (the normal checks then decide).
    """
    if p.transition_token:
        token = check_retail_code(p.transition_token, what="license token")
        found = ch.db.token(token)
        if found is None or found.redeemed_at is None or found.license_server_id != lsid:
            return None
        source = f"transition:{token}"
    elif p.program is Program.RETAIL:
        code = check_retail_code(p.retail_code)
        ent = ch.db.retail(code)
        if ent is None or ent.remaining != 0:
            return None
        source = f"retail:{code}"
    else:
        return None  # volume numbers are used in parts; a retry cannot be told from a purchase
    row = ch.db.last_grant(source)
    if (
        row is None
        or row["license_server_id"] != lsid
        or row["product"] != str(p.product)
        or p.count not in (0, row["count"])
    ):
        return None
    program = Program(row["program"])
    grant = KeyPackGrant(
        grant_id=row["grant_id"],
        license_server_id=lsid,
        product=p.product,
        program=program,
        count=row["count"],
        description=_description(p.product, program, row["source"]),
        issued_at=row["issued_at"],
        expires_at=0,
    )
    ch.db.log(
        at=now,
        license_server_id=lsid,
        action="install-again",
        method=str(ActivationMethod.AUTOMATIC),
        detail=json.dumps({"grant_id": grant.grant_id, "source": source}, sort_keys=True),
    )
    return grant, sign_grant(ch.root_key, grant)


def _check_count(wanted: int, left: int, what: str) -> int:
    if wanted > left:
        raise ServiceError(
            f"{what} has {left} license(s) left; {wanted} cannot be installed.",
            code=ErrorCode.ENTITLEMENT_EXHAUSTED,
            detail={"remaining": str(left)},
        )
    return wanted or left


def _take_retail(ch: Clearinghouse, p: Purchase) -> tuple[Program, int, str]:
    code = check_retail_code(p.retail_code)
    ent = ch.db.retail(code)
    if ent is None:
        raise refuse(
            ErrorCode.INVALID_LICENSE_CODE,
            f"The license code {group5(code)} is not known to the Clearinghouse.",
        )
    if ent.product is not p.product:
        raise refuse(
            ErrorCode.INVALID_LICENSE_CODE,
            f"The license code {group5(code)} is for {ent.product.label}, not {p.product.label}.",
        )
    if ent.remaining == 0:
        raise ServiceError(
            f"The license code {group5(code)} has already been used.",
            code=ErrorCode.ALREADY_REDEEMED,
        )
    count = _check_count(p.count, ent.remaining, f"License code {group5(code)}")
    ch.db.use(ent.id, count)
    return Program.RETAIL, count, f"retail:{code}"


def _take_volume(ch: Clearinghouse, p: Purchase, now: int) -> tuple[Program, int, str]:
    if p.program is Program.OPEN_LICENSE:
        number, auth = check_open_license(p.license_number, p.authorization_number)
        numbers, found = f"{number}/{auth}", ch.db.open_license(number, auth)
        what = f"Open License {number}"
    else:
        numbers = check_agreement_number(p.agreement_number)
        found = ch.db.agreement(numbers)
        what = f"{p.program.label} {numbers}"
        others = {e.program for e in found} - {p.program}
        found = [e for e in found if e.program is p.program]
        if not found and others:
            names = ", ".join(sorted(o.label for o in others))
            raise refuse(
                ErrorCode.INVALID_LICENSE_CODE,
                f"Number {numbers} belongs to {names}, not {p.program.label}.",
            )
    xps = []
    if p.product in TRANSITION_PRODUCTS and now < TRANSITION_LAST_DAY:
        xps = [
            x
            for x in ch.db.xp_volume(*_volume_key(p.program, numbers))
            if xp_eligible(x.acquired_at)
        ]
    mine: list[Entitlement] = [e for e in found if e.product is p.product]
    if not found and not xps:
        raise refuse(ErrorCode.INVALID_LICENSE_CODE, f"{what} is not known to the Clearinghouse.")
    if not mine and not xps:
        products = ", ".join(sorted({e.product.label for e in found}))
        raise refuse(
            ErrorCode.INVALID_LICENSE_CODE, f"{what} covers {products}, not {p.product.label}."
        )
    if p.count <= 0:
        raise ServiceError(
            "Enter the number of licenses to install.",
            code=ErrorCode.MISSING_REQUIRED_INFO,
            detail={"missing": "count"},
        )
    left = sum(e.remaining for e in mine) + len(xps)
    need = _check_count(p.count, left, what)
    for e in mine:  # purchased licenses first, then transition CALs
        take = min(need, e.remaining)
        if take:
            ch.db.use(e.id, take)
            need -= take
    for x in xps[:need]:
        ch.db.redeem_xp(x.product_key, now, f"volume:{numbers}")
    return p.program, p.count, f"{p.program}:{numbers}"


def _take_token(ch: Clearinghouse, p: Purchase, now: int, lsid: str) -> tuple[Program, int, str]:
    offer_open(now)
    token = check_retail_code(p.transition_token, what="license token")
    found = ch.db.token(token)
    if found is None:
        raise refuse(
            ErrorCode.INVALID_LICENSE_CODE,
            f"The license token {group5(token)} was not issued by the Clearinghouse.",
        )
    if found.redeemed_at is not None:
        raise ServiceError(
            f"The license token {group5(token)} has already been used.",
            code=ErrorCode.ALREADY_REDEEMED,
        )
    if found.product is not p.product:
        raise refuse(
            ErrorCode.INVALID_LICENSE_CODE,
            f"The license token {group5(token)} is for {found.product.label}, not"
            f" {p.product.label}.",
        )
    if p.count not in (0, found.count):
        _check_count(p.count, found.count, f"License token {group5(token)}")
        raise refuse(
            ErrorCode.INVALID_LICENSE_CODE,
            f"The license token {group5(token)} carries {found.count} license(s); install all"
            f" of them (quantity 0 or {found.count}).",
        )
    ch.db.redeem_token(token, now, lsid)
    return Program.RETAIL, found.count, f"transition:{token}"


TRANSITION_LABEL = "Windows Server 2003 Terminal Server transition offer (KB 823313)"


def _description(product: CalProduct, program: Program, source: str) -> str:
    """What the key pack is, as the licensing utility lists it: a transition token's pack is
    not a retail purchase, though it is installed like one."""
    if source.startswith("transition:"):
        return f"{product.label} ({TRANSITION_LABEL})"
    return f"{product.label} ({program.label})"
