"""The Clearinghouse's root of trust and its activation rules (TechNet cc740046, KB 814593).

Contract:
- `Clearinghouse(data_dir)` is an `Authority` (authority.py: the root of trust created on
  first start and reused, the catalogue, certificate issuing and records) plus these rules.
- Every method takes `now` (virtual epoch-ms) and either completes its change in one committed
  transaction or raises `ServiceError` with a documented code, changing nothing.
- Activation (TechNet cc740046, KB 814593):
  * automatic: `activate()` issues the license-server certificate at once;
  * web and telephone: `request_activation()` records a claim ticket and returns the License
    Server ID code (groups of five over the product-key alphabet) the operator types into the
    licensing utility; the license server redeems it with `claim_activation()`. The ticket is
    bound to the product ID it was requested for (5-3-7-5 digits; by telephone the wizard's
    request code also names the server): both derive from the license server's public key
    (protocol/names.py), so a code redeemed by any other server is refused
    (INVALID_CONFIRMATION_CODE) and stays usable by the right one;
  * required information: first name, last name, company, country/region, plus e-mail for
    the web (MISSING_REQUIRED_INFO naming the fields);
  * deactivation and reactivation only by the automatic or telephone method
    (METHOD_NOT_ALLOWED otherwise); reactivation needs a reason (REASON_REQUIRED);
    deactivation returns a confirmation code and records the certificate as revoked.
- Every activation, claim, deactivation and reactivation is written to the event log.
- CAL installation and the transition offer are in `installation.py`.
"""

from __future__ import annotations

from dataclasses import replace

from tslic.protocol.codes import decode_b24, group5
from tslic.protocol.domain import ActivationMethod, ActivationState
from tslic.protocol.errors import ErrorCode, ServiceError, TslicError
from tslic.protocol.messages.records import ContactInfo
from tslic.protocol.names import (
    Kind,
    activation_request_code,
    check,
    problem,
    product_id_for,
    shown,
)

from .authority import Authority
from .catalogue import Activation
from .ids import (
    CONFIRMATION_BYTES,
    ID_BYTES,
    ROOT_CERT,
    canonical_id,
    contact_json,
    new_code,
    require_contact,
)
from .rows import ClaimPayload

__all__ = ["ROOT_CERT", "Clearinghouse", "canonical_id", "new_code", "require_contact"]


class Clearinghouse(Authority):
    """The activation rules on top of the root of trust and the records."""

    # --- activation -----------------------------------------------------------------------

    def activate(
        self,
        *,
        public_key: bytes,
        name: str,
        version: int,
        product_id: str,
        contact: ContactInfo,
        now: int,
    ) -> Activation:
        """Automatic activation: certificate at once. A key already activated gets its
        existing activation back (a retry after a lost reply must not create a second)."""
        require_contact(contact, need_email=False)
        with self.db.transaction():
            existing = self.db.activation_by_key(public_key)
            if existing is not None:
                self._log(
                    existing.license_server_id, "activate-repeat", ActivationMethod.AUTOMATIC, now
                )
                return existing
            lsid = new_code()
            activation = self._record(
                lsid=lsid,
                public_key=public_key,
                name=name,
                version=version,
                product_id=product_id,
                method=ActivationMethod.AUTOMATIC,
                contact=contact,
                state=ActivationState.ACTIVATED,
                now=now,
            )
            self._log(
                lsid, "activate", ActivationMethod.AUTOMATIC, now, name=name, product_id=product_id
            )
        return activation

    def request_activation(
        self,
        *,
        method: ActivationMethod,
        product_id: str,
        contact: ContactInfo,
        now: int,
        reactivate_id: str = "",
        reason: str = "",
    ) -> str:
        """Web or telephone activation (or telephone reactivation): returns the License
        Server ID code the operator types into the licensing utility."""
        if method is ActivationMethod.AUTOMATIC:
            raise ServiceError(
                "the automatic method activates directly, without a code",
                code=ErrorCode.METHOD_NOT_ALLOWED,
            )
        if not product_id.strip() and not reactivate_id:
            raise ServiceError(
                "The Required Information is incomplete: please enter the"
                " product ID of the license server.",
                code=ErrorCode.MISSING_REQUIRED_INFO,
                detail={"missing": "product ID"},
            )
        if product_id.strip():
            product_id = _server_identity(product_id, method)
        payload: ClaimPayload = {
            "action": "activate",
            "method": str(method),
            "product_id": product_id.strip(),
            "contact": contact_json(contact),
        }
        if reactivate_id:
            lsid = self._reactivation_target(reactivate_id, method, reason, contact)
            old = self.db.activation(lsid)
            assert old is not None
            payload.update(
                {
                    "action": "reactivate",
                    "reason": reason.strip(),
                    "license_server_id": lsid,
                    "product_id": product_id.strip() or old.product_id,
                }
            )
        else:
            require_contact(contact, need_email=method is ActivationMethod.WEB)
        code = new_code()
        with self.db.transaction():
            self.db.add_claim(
                code=code,
                kind="activation",
                license_server_id=payload.get("license_server_id", ""),
                payload=payload,
                now=now,
            )
            self._log(
                payload.get("license_server_id", code),
                f"{payload['action']}-request",
                method,
                now,
                product_id=product_id.strip(),
            )
        return code

    def claim_activation(
        self, *, code: str, public_key: bytes, name: str, version: int, now: int
    ) -> Activation:
        """Redeem a web/telephone License Server ID code for this public key."""
        typed = canonical_id(code, what="License Server ID code")
        with self.db.transaction():
            claim = self.db.claim(typed)
            if claim is None or claim.kind != "activation":
                raise ServiceError(
                    f"the License Server ID {typed} was not issued by the Clearinghouse;"
                    " check the code you were given",
                    code=ErrorCode.INVALID_CONFIRMATION_CODE,
                )
            p = claim.payload
            method = ActivationMethod(p["method"])
            if claim.redeemed_at is not None:
                done = self.db.activation(claim.license_server_id)
                if done is not None and done.public_key == public_key:
                    return done  # a retry of the same redemption
                raise ServiceError(
                    f"the License Server ID {typed} has already been used",
                    code=ErrorCode.ALREADY_REDEEMED,
                )
            contact = ContactInfo(**p["contact"])
            if p["action"] != "reactivate":
                _check_bound(typed, p["product_id"], public_key)
            if p["action"] == "reactivate":
                lsid = p["license_server_id"]
                old = self.db.activation(lsid)
                assert old is not None
                self.db.revoke(old.cert_serial, lsid, now, "superseded by reactivation")
                activation = self._record(
                    lsid=lsid,
                    public_key=public_key,
                    name=name,
                    version=version,
                    product_id=p["product_id"],
                    method=method,
                    contact=contact,
                    state=ActivationState.REACTIVATED,
                    now=now,
                    activated_at=old.activated_at,
                )
                self._log(lsid, "reactivate", method, now, reason=p["reason"])
            else:
                lsid = typed
                activation = self._record(
                    lsid=lsid,
                    public_key=public_key,
                    name=name,
                    version=version,
                    product_id=p["product_id"],
                    method=method,
                    contact=contact,
                    state=ActivationState.ACTIVATED,
                    now=now,
                )
                self._log(lsid, "activate", method, now, name=name, product_id=p["product_id"])
            self.db.redeem_claim(typed, now, lsid)
        return activation

    def _reactivation_target(
        self, license_server_id: str, method: ActivationMethod, reason: str, contact: ContactInfo
    ) -> str:
        if method is ActivationMethod.WEB:
            raise ServiceError(
                "A license server can be reactivated only by the Automatic connection or the"
                " Telephone method, not the Web Browser method (KB814593).",
                code=ErrorCode.METHOD_NOT_ALLOWED,
            )
        if not reason.strip():
            raise ServiceError(
                "Choose a reason for reactivating the license server.",
                code=ErrorCode.REASON_REQUIRED,
            )
        require_contact(contact, need_email=False, names_only=True)
        lsid = canonical_id(license_server_id)
        if self.db.activation(lsid) is None:
            raise ServiceError(
                f"no license server with ID {lsid} was ever activated",
                code=ErrorCode.UNKNOWN_LICENSE_SERVER,
            )
        return lsid

    def reactivate(
        self,
        *,
        license_server_id: str,
        method: ActivationMethod,
        reason: str,
        public_key: bytes,
        name: str,
        version: int,
        product_id: str,
        contact: ContactInfo,
        now: int,
    ) -> Activation:
        """Automatic reactivation: a new certificate under the same License Server ID; the
        old certificate is recorded as revoked (superseded)."""
        if method is ActivationMethod.TELEPHONE:
            raise ServiceError(
                "telephone reactivation is done with `tslic clearinghouse phone`;"
                " the license server then redeems the code it gives",
                code=ErrorCode.METHOD_NOT_ALLOWED,
            )
        lsid = self._reactivation_target(license_server_id, method, reason, contact)
        with self.db.transaction():
            old = self.db.activation(lsid)
            assert old is not None
            self.db.revoke(old.cert_serial, lsid, now, "superseded by reactivation")
            activation = self._record(
                lsid=lsid,
                public_key=public_key,
                name=name,
                version=version,
                product_id=product_id or old.product_id,
                method=method,
                contact=contact,
                state=ActivationState.REACTIVATED,
                now=now,
                activated_at=old.activated_at,
            )
            self._log(lsid, "reactivate", method, now, reason=reason.strip())
        return activation

    def deactivate(
        self, *, license_server_id: str, method: ActivationMethod, contact: ContactInfo, now: int
    ) -> str:
        """Deactivate: the certificate is revoked and a confirmation code returned."""
        if method is ActivationMethod.WEB:
            raise ServiceError(
                "A license server can be deactivated only by the Automatic connection or the"
                " Telephone method, not the Web Browser method (KB814593).",
                code=ErrorCode.METHOD_NOT_ALLOWED,
            )
        require_contact(contact, need_email=False, names_only=True)
        lsid = canonical_id(license_server_id)
        with self.db.transaction():
            current = self.db.activation(lsid)
            if current is None:
                raise ServiceError(
                    f"no license server with ID {lsid} was ever activated",
                    code=ErrorCode.UNKNOWN_LICENSE_SERVER,
                )
            if not current.state.may_issue_permanent:
                raise ServiceError(
                    f"license server {lsid} is already deactivated", code=ErrorCode.NOT_ACTIVATED
                )
            confirmation = new_code(CONFIRMATION_BYTES)
            self.db.revoke(current.cert_serial, lsid, now, "license server deactivated")
            self.db.put_activation(
                replace(current, state=ActivationState.DEACTIVATED, changed_at=now)
            )
            self._log(lsid, "deactivate", method, now, confirmation=confirmation)
        return confirmation


def _server_identity(text: str, method: ActivationMethod) -> str:
    """The product ID (5-3-7-5 digits) a web or telephone activation names; by telephone the
    wizard's request code is accepted too, as the agent would take either."""
    text = text.strip()
    if method is ActivationMethod.TELEPHONE and problem(Kind.PRODUCT_ID, text) is not None:
        try:
            decode_b24(text, ID_BYTES)
        except TslicError:
            raise ServiceError(
                f"product ID {shown(text, 40)} is refused: a product ID is 5-3-7-5 digits, e.g."
                " 69712-640-1234567-12345 (or give the request code the wizard shows)",
                code=ErrorCode.INVALID_FIELD,
                detail={"field": "product ID", "rule": "5-3-7-5 digits or a request code"},
            ) from None
        return group5(text)
    return check(Kind.PRODUCT_ID, text, "product ID")


def _check_bound(code: str, named: str, public_key: bytes) -> None:
    """Refuse a License Server ID redeemed by a server other than the one it was issued for."""
    if named in (product_id_for(public_key), activation_request_code(public_key)):
        return
    raise ServiceError(
        f"the License Server ID {code} was issued for product ID {named}, not for this license"
        f" server (product ID {product_id_for(public_key)}); activate it again with its own"
        " product ID",
        code=ErrorCode.INVALID_CONFIRMATION_CODE,
        detail={"issued_for": named},
    )
