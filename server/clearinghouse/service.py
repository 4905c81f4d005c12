"""The Clearinghouse conversation: request handlers for `runtime.service.Server`.

Contract:
- `ClearinghouseService(data_dir, clock)` implements `runtime.service.Service` for
  Conversation.CLEARINGHOUSE. It owns a `core.Clearinghouse` (root of trust, catalogue) and
  reads the virtual clock for every request. Close it with `close()`.
- `on_hello` welcomes every role and presents the root certificate (so a peer can pin it).
- `handle` answers, per docs/PROTOCOL.md §5.5:
    ChActivate(activate, automatic)   -> ChActivated [root, LS cert] + License Server ID
    ChActivate(reactivate)            -> ChActivated (automatic only; a reason is required)
    ChClaimActivation(code, key)      -> ChActivated (web/telephone License Server ID code;
                                         name and version are the Hello's)
    ChDeactivate                      -> ChDeactivated + confirmation code
    ChInstallKeyPack                  -> ChKeyPack (grant signed by the root)
    ChClaimKeyPack                    -> ChKeyPack (web/telephone license key pack code)
  Every refusal is a `ServiceError` with a documented code (the connection goes on).
- Handlers are short synchronous SQLite transactions on the Trio thread: each commits before
  the reply is sent.
"""

from __future__ import annotations

from pathlib import Path

from tslic.protocol.domain import ActivationMethod, PeerRole
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.messages import Conversation, Message, Welcome
from tslic.protocol.messages.admin import ActivationAction
from tslic.protocol.messages.clearinghouse import (
    ChActivate,
    ChActivated,
    ChClaimActivation,
    ChClaimKeyPack,
    ChDeactivate,
    ChDeactivated,
    ChInstallKeyPack,
    ChKeyPack,
)
from tslic.runtime.clock import Clock
from tslic.runtime.service import Peer

from .authority import ActivationStatus
from .catalogue import Activation
from .core import Clearinghouse
from .installation import Purchase, claim_keypack, install

NAME = "CLEARINGHOUSE"


class ClearinghouseService:
    """Request handlers of the emulated Microsoft Clearinghouse."""

    conversation = Conversation.CLEARINGHOUSE

    def __init__(self, data_dir: Path, clock: Clock) -> None:
        self.clock = clock
        self.ch = Clearinghouse(data_dir)

    @property
    def root_der(self) -> bytes:
        return self.ch.root_der

    def close(self) -> None:
        self.ch.close()

    def status(self, license_server_id: str) -> ActivationStatus:
        """Activation state and certificate revocation of one license server."""
        return self.ch.status(license_server_id)

    async def on_hello(self, peer: Peer) -> Welcome:
        return Welcome(
            role=PeerRole.CLEARINGHOUSE,
            name=NAME,
            version=0,
            cert_chain=(self.ch.root_der,),
            server_time=self.clock.now(),
        )

    async def handle(self, peer: Peer, request: Message) -> Message:
        now = self.clock.now()
        if isinstance(request, ChActivate):
            return self._activate(request, now)
        if isinstance(request, ChClaimActivation):
            done = self.ch.claim_activation(
                code=request.license_server_id_code,
                public_key=request.public_key,
                name=peer.hello.name,
                version=peer.hello.version,
                now=now,
            )
            return self._activated(done)
        if isinstance(request, ChDeactivate):
            code = self.ch.deactivate(
                license_server_id=request.license_server_id,
                method=request.method,
                contact=request.contact,
                now=now,
            )
            return ChDeactivated(
                license_server_id=self.ch.status(request.license_server_id)["license_server_id"],
                confirmation_code=code,
            )
        if isinstance(request, ChInstallKeyPack):
            purchase = Purchase(
                program=request.program,
                product=request.product,
                count=request.count,
                retail_code=request.retail_code,
                license_number=request.license_number,
                authorization_number=request.authorization_number,
                agreement_number=request.agreement_number,
                transition_token=request.transition_token,
            )
            _, blob = install(
                self.ch, license_server_id=request.license_server_id, purchase=purchase, now=now
            )
            return ChKeyPack(grant=blob)
        if isinstance(request, ChClaimKeyPack):
            blob = claim_keypack(
                self.ch,
                license_server_id=request.license_server_id,
                code=request.keypack_code,
                now=now,
            )
            return ChKeyPack(grant=blob, keypack_code=request.keypack_code)
        # The state table admits only the requests above; this is a guard against drift.
        raise ServiceError(
            f"the Clearinghouse does not answer {type(request).__name__}",
            code=ErrorCode.UNKNOWN_MESSAGE_TYPE,
        )

    def _activate(self, request: ChActivate, now: int) -> ChActivated:
        if request.action is ActivationAction.DEACTIVATE:
            raise ServiceError(
                "deactivation is requested with ChDeactivate, not ChActivate",
                code=ErrorCode.INVALID_FIELD,
                detail={"field": "action"},
            )
        if request.action is ActivationAction.REACTIVATE:
            done = self.ch.reactivate(
                license_server_id=request.license_server_id,
                method=request.method,
                reason=request.reason,
                public_key=request.public_key,
                name=request.name,
                version=int(request.version),
                product_id=request.product_id,
                contact=request.contact,
                now=now,
            )
            return self._activated(done)
        if request.method is not ActivationMethod.AUTOMATIC:
            raise ServiceError(
                f"activation by the {request.method} method is done on the Clearinghouse web"
                " page or by telephone; the license server then redeems the License Server ID"
                " it was given (ChClaimActivation)",
                code=ErrorCode.METHOD_NOT_ALLOWED,
            )
        done = self.ch.activate(
            public_key=request.public_key,
            name=request.name,
            version=int(request.version),
            product_id=request.product_id,
            contact=request.contact,
            now=now,
        )
        return self._activated(done)

    def _activated(self, activation: Activation) -> ChActivated:
        return ChActivated(
            license_server_id=activation.license_server_id,
            cert_chain=self.ch.chain(activation),
        )
