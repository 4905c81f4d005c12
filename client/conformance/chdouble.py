"""The Clearinghouse, played by the suite for a license-server target.

Contract: `ChDouble(root_key, root_cert, clock, catalogue)` serves the `clearinghouse`
conversation (runtime.Server) for the license server the manifest of `tslic conformance
prepare --role license-server` started pointing at it (`--clearinghouse`, `--trust-root` the
manifest's root.pem):
- ChActivate (activate, reactivate) answers ChActivated with a certificate for the sender's
  key issued by the root (License Server ID "CONF-n");
- ChDeactivate answers ChDeactivated with a confirmation code (20 characters, check group);
- ChInstallKeyPack grants a retail code of `catalogue` ({code: (product, count)}) for its
  product, all of it for count 0, refusing a code for another product INVALID_LICENSE_CODE;
  with `bad_grant` set (CH-8) the grant is signed by another key;
- ChClaimActivation redeems a License Server ID code made by `web_activation()` (the suite
  plays the person at the web page or the telephone operator, ACT-11).
Every request is counted in `requests`. Only protocol/ and runtime/ are used.
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from tslic.protocol import Conversation, ErrorCode, ServiceError
from tslic.protocol.codes import encode_b24, normalize_code
from tslic.protocol.domain import CalProduct, PeerRole
from tslic.protocol.licenses import sign_grant
from tslic.protocol.messages import Message, Welcome
from tslic.protocol.messages.admin import ActivationAction
from tslic.protocol.messages.clearinghouse import (
    ChActivate,
    ChActivated,
    ChClaimActivation,
    ChDeactivate,
    ChDeactivated,
    ChInstallKeyPack,
    ChKeyPack,
)
from tslic.protocol.messages.records import KeyPackGrant
from tslic.protocol.pki import cert_to_der, issue_license_server_cert
from tslic.runtime.clock import Clock
from tslic.runtime.service import Peer


class ChDouble:
    conversation = Conversation.CLEARINGHOUSE

    def __init__(self, root_key: Ed25519PrivateKey, root_cert: x509.Certificate, clock: Clock,
                 catalogue: dict[str, tuple[CalProduct, int]]) -> None:  # fmt: skip
        self.root_key = root_key
        self.root_der = cert_to_der(root_cert)
        self.root_cert = root_cert
        self.clock = clock
        self.catalogue = dict(catalogue)
        self.spent: set[str] = set()
        self.bad_grant = False
        self.requests: Counter[str] = Counter()
        self._next = 0
        self._claims: dict[str, str] = {}  # License Server ID code -> license server id

    def _id(self) -> int:
        self._next += 1
        return self._next

    async def on_hello(self, peer: Peer) -> Welcome:
        return Welcome(role=PeerRole.CLEARINGHOUSE, name="CONF-CLEARINGHOUSE", version=0,
                       cert_chain=(self.root_der,), server_time=self.clock.now())  # fmt: skip

    async def handle(self, peer: Peer, request: Message) -> Message:
        self.requests[type(request).__name__] += 1
        if isinstance(request, ChActivate):
            if request.action is ActivationAction.REACTIVATE and not request.reason.strip():
                raise ServiceError("a reason is required", code=ErrorCode.REASON_REQUIRED)
            lsid = request.license_server_id or f"CONF-{self._id()}"
            return self._activated(request.public_key, request.name, int(request.version), lsid)
        if isinstance(request, ChClaimActivation):
            lsid = self._claims.pop(normalize_code(request.license_server_id_code), "")
            if not lsid:
                raise ServiceError("unknown License Server ID code",
                                   code=ErrorCode.INVALID_CONFIRMATION_CODE)  # fmt: skip
            return self._activated(request.public_key, peer.hello.name, peer.hello.version, lsid)
        if isinstance(request, ChDeactivate):
            return ChDeactivated(license_server_id=request.license_server_id,
                                 confirmation_code=encode_b24(secrets.token_bytes(8)))  # fmt: skip
        if isinstance(request, ChInstallKeyPack):
            return self._grant(request)
        raise ServiceError(f"{type(request).__name__} is not served by the suite's Clearinghouse",
                           code=ErrorCode.UNKNOWN_MESSAGE_TYPE)  # fmt: skip

    def web_activation(self, license_server_id: str = "") -> str:
        """The License Server ID code the web page (or operator) gives the person."""
        code = encode_b24(secrets.token_bytes(10))
        self._claims[normalize_code(code)] = license_server_id or f"CONF-{self._id()}"
        return code

    def _activated(self, public: bytes, name: str, version: int, lsid: str) -> ChActivated:
        now = datetime.fromtimestamp(self.clock.now() / 1000, UTC)
        cert = issue_license_server_cert(
            self.root_key, self.root_cert, Ed25519PublicKey.from_public_bytes(public),
            name=name or "CONF-LS", version=version or 2003, license_server_id=lsid,
            not_before=now - timedelta(days=1), not_after=now + timedelta(days=3650),
            serial=self._id() + 1000,
        )  # fmt: skip
        return ChActivated(license_server_id=lsid, cert_chain=(self.root_der, cert_to_der(cert)))

    def _grant(self, request: ChInstallKeyPack) -> ChKeyPack:
        code = normalize_code(request.retail_code)
        if code not in self.catalogue:
            raise ServiceError("the license code is not known", code=ErrorCode.INVALID_LICENSE_CODE)
        product, count = self.catalogue[code]
        if request.product is not product:
            raise ServiceError(f"the code is for {product}",
                               code=ErrorCode.INVALID_LICENSE_CODE)  # fmt: skip
        if code in self.spent:
            raise ServiceError("the code was used", code=ErrorCode.ALREADY_REDEEMED)
        self.spent.add(code)
        grant = KeyPackGrant(grant_id=self._id(), license_server_id=request.license_server_id,
                             product=product, program=request.program,
                             count=request.count or count, description=f"{product} (suite)",
                             issued_at=self.clock.now(), expires_at=0)  # fmt: skip
        key = Ed25519PrivateKey.generate() if self.bad_grant else self.root_key
        return ChKeyPack(grant=sign_grant(key, grant))
