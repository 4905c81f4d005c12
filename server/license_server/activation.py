"""Activation of the license server with the Clearinghouse (TechNet cc740046, KB 814593).

Contract:
- States: UNACTIVATED (the server holds a temporary self-signed certificate and issues only
  temporary licenses), ACTIVATED, DEACTIVATED (no permanent licenses until reactivated),
  REACTIVATED. The state, the License Server ID, the contact details, the method and the
  certificate chain are stored in the database and survive restarts.
- Methods: automatic (this server talks to the Clearinghouse: `ChActivate` -> `ChActivated`),
  web and telephone (two steps, as in the wizard: `begin` returns the product id and a
  request code for the operator to take to the Clearinghouse; `complete` takes the License
  Server ID code it gave and redeems it with `ChClaimActivation`). Deactivation and
  reactivation use only the automatic or telephone method; reactivation needs a reason
  (KB814593). A telephone deactivation ends with the confirmation code the operator reads
  out; the wizard checks only that it was typed correctly (base-24 check group, 8 bytes), as
  the Clearinghouse keeps what it means.
- The request code shown with the Product ID is `encode_b24(SHA-256("tslic-activation-request
  \\0" + public key)[:16])` (35 characters), a fingerprint of the key the License Server ID
  will be redeemed with (`ChClaimActivation` carries the key itself).
- Every refusal is a `ServiceError` with the wire code the message names; a Clearinghouse
  that cannot be reached is INTERNAL_ERROR with the address in the message.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import timedelta
from typing import TYPE_CHECKING

import trio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import codes
from tslic.protocol.clock import to_datetime
from tslic.protocol.codec import pack, unpack_untrusted
from tslic.protocol.domain import ActivationMethod, ActivationState, PeerRole
from tslic.protocol.errors import ConnectionLost, ErrorCode, ProtocolError, ServiceError
from tslic.protocol.events import LsEvent
from tslic.protocol.messages import Conversation, Message
from tslic.protocol.messages.admin import ActivationAction, AdminActivationStep
from tslic.protocol.messages.clearinghouse import (
    ChActivate,
    ChActivated,
    ChClaimActivation,
    ChDeactivate,
    ChDeactivated,
)
from tslic.protocol.messages.records import ContactInfo
from tslic.protocol.names import activation_request_code as request_code
from tslic.protocol.names import product_id_for
from tslic.protocol.pki import (
    CertRole,
    cert_from_der,
    cert_to_der,
    identity_of,
    make_temporary_license_server_cert,
    raw_public_key,
    validate_chain,
)
from tslic.runtime.clock import Clock
from tslic.runtime.peer import open_peer

from .config import Config, event
from .db import settings

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

Action = ActivationAction
Method = ActivationMethod
# Without --clearinghouse-web: where the emulated page is (the real one was
# https://activate.microsoft.com/).
WEB_PAGE = "the Clearinghouse's /activate page (the 'url' in its readiness line)"
PHONE = "(888) 571-2048"
CONFIRMATION_BYTES = 8  # the Clearinghouse's deactivation confirmation: 20 characters


class Activation:
    """The server's certificate and activation state, in memory and in the database."""

    def __init__(self, config: Config, store: Store, clock: Clock, key: Ed25519PrivateKey):
        self.config = config
        self.store = store
        self.clock = clock
        self.key = key
        self.public_key = raw_public_key(key)
        self.product_id = product_id_for(self.public_key)
        self.state = ActivationState.UNACTIVATED
        self.license_server_id = ""
        self.contact = ContactInfo()
        self.method = Method.AUTOMATIC
        self.chain: tuple[bytes, ...] = ()
        # The chain's top certificate, parsed once per chain (the issuance path asks for
        # the root on every request; parsing DER each time cost ~170 us per license).
        self._top: tuple[tuple[bytes, ...], x509.Certificate | None] | None = None

    # ---- loading ----------------------------------------------------------------------------

    def load(self) -> None:
        """Read the state; on first start make the temporary self-signed certificate."""
        self.store.run_now(self._load)

    def _load(self, db: sqlite3.Connection) -> None:
        blob = settings.get_blob(db, "chain")
        if blob is None:
            now = to_datetime(self.clock.now())
            cert = make_temporary_license_server_cert(
                self.key,
                name=self.config.name,
                version=int(self.config.version),
                not_before=now - timedelta(days=1),
                not_after=now + timedelta(days=365 * 30),
                serial=settings.next_counter(db, "serial"),
            )
            self.chain = (cert_to_der(cert),)
            settings.set_blob(db, "chain", pack(list(self.chain)))
        else:
            self.chain = tuple(unpack_untrusted(blob))
        self.state = ActivationState(settings.meta_text(db, "activation", self.state.value))
        self.license_server_id = settings.meta_text(db, "license_server_id", "")
        self.contact = ContactInfo(**settings.meta_record(db, "contact"))
        self.method = Method(settings.meta_text(db, "method", self.method.value))

    @property
    def temporary(self) -> bool:
        return identity_of(cert_from_der(self.chain[-1])).temporary

    @property
    def trusted_root(self) -> x509.Certificate | None:
        """The Clearinghouse root: the configured one, else the top of an activated chain."""
        if self.config.trust_root is not None:
            return self.config.trust_root
        chain = self.chain
        if self._top is None or self._top[0] is not chain:
            top = cert_from_der(chain[0])
            self._top = (chain, top if identity_of(top).role == CertRole.CLEARINGHOUSE else None)
        return self._top[1]

    # ---- properties -------------------------------------------------------------------------

    async def set_properties(self, contact: ContactInfo, method: Method, actor: str) -> None:
        now = self.clock.now()  # read once, before the operation is queued

        def op(db: sqlite3.Connection) -> None:
            settings.set_meta(db, "contact", {f: getattr(contact, f) for f in _CONTACT_FIELDS})
            settings.set_meta(db, "method", method.value)
            settings.audit(db, at=now, what="set-properties", actor=actor)

        await self.store.run_op(op)
        self.contact, self.method = contact, method

    # ---- the wizard -------------------------------------------------------------------------

    async def begin(
        self, action: Action, method: Method, reason: str, actor: str
    ) -> AdminActivationStep | None:
        """Start an activation, deactivation or reactivation.

        Returns:
            None when it is done (automatic method); else the step for the operator.
        """
        self._check_allowed(action, method, reason)
        if method is Method.AUTOMATIC:
            if action is Action.DEACTIVATE:
                await self._deactivate_automatic(actor)
            else:
                reply = await self.ask(self._ch_activate(action, reason))
                await self._accept(reply, action, actor)
            return None
        if action is Action.DEACTIVATE:
            code = self.license_server_id
            what = (
                f"Call the Clearinghouse at {PHONE}, give the License Server ID {code} and ask"
                " for deactivation; type the confirmation code you are given."
            )
        elif method is Method.WEB:  # the web form asks for the Product ID, not a request code
            code = ""
            web = self.config.clearinghouse_web.rstrip("/")
            page = f"{web}/activate" if web else WEB_PAGE
            what = (
                f"Open {page}, type the Product ID and the Required Information; type the"
                " License Server ID the page gives you to finish."
            )
        else:
            code = request_code(self.public_key)
            what = (
                f"Call the Clearinghouse at {PHONE} with the Product ID or this request code;"
                " type the License Server ID you are given to finish."
            )
        return AdminActivationStep(
            action=action,
            method=method,
            state=self.state,
            product_id=self.product_id,
            request_code=code,
            instructions=what,
        )

    async def complete(self, action: Action, code: str, actor: str) -> None:
        """Finish a web or telephone step with the code the Clearinghouse gave."""
        if not codes.normalize_code(code):
            raise ServiceError("type the code the Clearinghouse gave you", code=_BAD_CODE)
        if action is Action.DEACTIVATE:
            self._check_allowed(action, Method.TELEPHONE, "")
            # The confirmation is a random code the Clearinghouse keeps; the wizard can only
            # check that it was typed correctly (its check group), not what it says.
            codes.decode_b24(code, CONFIRMATION_BYTES)
            await self._store_state(ActivationState.DEACTIVATED, None, None, actor, "telephone")
            return
        if action is Action.ACTIVATE:
            self._check_allowed(action, Method.WEB, "")
        elif self.state is ActivationState.UNACTIVATED:
            raise ServiceError("this license server was never activated", code=_NOT_ALLOWED)
        claim = ChClaimActivation(
            license_server_id_code=codes.normalize_code(code), public_key=self.public_key
        )
        await self._accept(await self.ask(claim), action, actor)

    def _check_allowed(self, action: Action, method: Method, reason: str) -> None:
        state = self.state
        if action is Action.ACTIVATE and state is not ActivationState.UNACTIVATED:
            raise ServiceError(
                f"the license server is already {state}; use reactivate to renew its certificate",
                code=_NOT_ALLOWED,
            )
        if action is not Action.ACTIVATE:
            if method is Method.WEB:
                raise ServiceError(
                    f"to {action} a license server use the automatic or telephone method;"
                    " the web method is not offered (KB814593)",
                    code=_NOT_ALLOWED,
                )
            if state is ActivationState.UNACTIVATED:
                raise ServiceError(
                    f"cannot {action}: the license server has not been activated",
                    code=ErrorCode.NOT_ACTIVATED,
                )
            if action is Action.DEACTIVATE and state is ActivationState.DEACTIVATED:
                raise ServiceError("the license server is already deactivated", code=_NOT_ALLOWED)
        if action is Action.REACTIVATE and not reason.strip():
            raise ServiceError(
                "choose a reason for reactivating the license server (KB814593)",
                code=ErrorCode.REASON_REQUIRED,
            )
        if method is Method.AUTOMATIC:
            need_email = False
            missing = self.contact.missing(need_email=need_email)
            if action is not Action.ACTIVATE:  # KB814593: first and last name only
                missing = [m for m in missing if m in ("first name", "last name")]
            if missing:
                raise ServiceError(
                    f"fill in the Required Information first: {', '.join(missing)}",
                    code=ErrorCode.MISSING_REQUIRED_INFO,
                )

    def _ch_activate(self, action: Action, reason: str) -> ChActivate:
        return ChActivate(
            action=action,
            method=Method.AUTOMATIC,
            product_id=self.product_id,
            name=self.config.name,
            version=self.config.version,
            public_key=self.public_key,
            contact=self.contact,
            reason=reason,
            license_server_id=self.license_server_id,
        )

    async def _deactivate_automatic(self, actor: str) -> None:
        request = ChDeactivate(
            license_server_id=self.license_server_id, method=Method.AUTOMATIC, contact=self.contact
        )
        reply = await self.ask(request)
        if not isinstance(reply, ChDeactivated):
            raise ServiceError(f"the Clearinghouse answered {type(reply).__name__}")
        await self._store_state(ActivationState.DEACTIVATED, None, None, actor, "automatic")

    async def _accept(self, reply: Message, action: Action, actor: str) -> None:
        if not isinstance(reply, ChActivated):
            raise ServiceError(f"the Clearinghouse answered {type(reply).__name__}")
        try:
            certs = [cert_from_der(der) for der in reply.cert_chain]
            if not certs:
                raise ServiceError("the Clearinghouse sent an empty certificate chain")
            leaf = identity_of(certs[-1])
            root = self.config.trust_root or certs[0]
            validate_chain(
                certs, root, to_datetime(self.clock.now()), leaf_role=CertRole.LICENSE_SERVER
            )
        except ProtocolError as exc:
            raise ServiceError(
                f"the Clearinghouse's certificate is not acceptable: {exc.message}",
                code=ErrorCode.UNTRUSTED_CERTIFICATE,
            ) from None
        if leaf.public_key != self.public_key or leaf.temporary:
            raise ServiceError(
                "the Clearinghouse issued a certificate for another key",
                code=ErrorCode.UNTRUSTED_CERTIFICATE,
            )
        state = ActivationState.ACTIVATED
        if action is Action.REACTIVATE:
            state = ActivationState.REACTIVATED
        chain = tuple(cert_to_der(c) for c in certs)
        await self._store_state(state, reply.license_server_id, chain, actor, str(action))
        event(
            LsEvent.ACTIVATED,
            f"The license server {self.config.name} has been {state}"
            f" (License Server ID {reply.license_server_id}).",
            license_server_id=reply.license_server_id,
        )

    async def _store_state(
        self,
        state: ActivationState,
        lsid: str | None,
        chain: tuple[bytes, ...] | None,
        actor: str,
        how: str,
    ) -> None:
        now = self.clock.now()

        def op(db: sqlite3.Connection) -> None:
            settings.set_meta(db, "activation", state.value)
            if lsid is not None:
                settings.set_meta(db, "license_server_id", lsid)
            if chain is not None:
                settings.set_blob(db, "chain", pack(list(chain)))
            ev = LsEvent.ACTIVATED if chain is not None else 0
            settings.audit(db, at=now, what=str(state), actor=actor, event_id=ev, how=how)

        await self.store.run_op(op)
        self.state = state
        if lsid is not None:
            self.license_server_id = lsid
        if chain is not None:
            self.chain = chain

    async def ask(self, request: Message) -> Message:
        """One request to the Clearinghouse over the automatic channel."""
        address = self.config.clearinghouse
        if not address:
            raise ServiceError(
                "no Clearinghouse address is configured (--clearinghouse); use the web or"
                " telephone method",
                code=ErrorCode.INTERNAL_ERROR,
            )
        try:
            with trio.fail_after(self.config.remote_timeout):
                async with open_peer(
                    address,
                    conversation=Conversation.CLEARINGHOUSE,
                    key=self.key,
                    clock=self.clock,
                    role=PeerRole.LICENSE_SERVER,
                    name=self.config.name,
                    version=int(self.config.version),
                    cert_chain=self.chain,
                ) as stream:
                    return await stream.request(request)
        except ServiceError as exc:
            if exc.code.closes_connection:
                raise ServiceError(
                    f"the Clearinghouse at {address} refused: {exc.message}",
                    code=ErrorCode.INTERNAL_ERROR,
                ) from None
            raise
        except (ConnectionLost, ProtocolError, trio.TooSlowError) as exc:
            why = "it did not answer in time" if isinstance(exc, trio.TooSlowError) else str(exc)
            raise ServiceError(
                f"could not complete the request with the Clearinghouse at {address}: {why}",
                code=ErrorCode.INTERNAL_ERROR,
            ) from None


_CONTACT_FIELDS = ("first_name", "last_name", "company", "country", "email")
_NOT_ALLOWED = ErrorCode.METHOD_NOT_ALLOWED
_BAD_CODE = ErrorCode.INVALID_CONFIRMATION_CODE
