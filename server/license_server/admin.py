"""The admin conversation: what the licensing utility (`tslic admin`) may do.

Contract (protocol/messages/admin.py; KB 823313, KB 839878, Win32_TSLicenseKeyPack,
TechNet cc740046, KB 814593):
- Hello: the envelope key must be the administrator credential created at setup
  (`<data>/admin.key`); anything else is refused with ACCESS_DENIED and logged.
- Key pack installation: a Windows 2000 server refuses Windows Server 2003 products BEFORE
  contacting the Clearinghouse, with KEYPACK_NOT_SUPPORTED, the wizard's text and message
  number 0x13A7, and logs event 41 (KB839878). Otherwise the server must be activated; the
  program numbers are checked locally (protocol/codes.py), then the Clearinghouse validates
  the purchase (`ChInstallKeyPack`) or redeems a web/telephone key pack code
  (`ChClaimKeyPack`) and returns a grant signed by its root, which is checked, bound to this
  License Server ID, and stored once: the same grant again (the Clearinghouse hands a
  retry after a lost reply the grant it already made, and a key pack code may be claimed
  again) installs nothing and answers with the key pack already holding it.
"""

from __future__ import annotations

import sqlite3

from tslic.protocol import codes
from tslic.protocol.domain import ActivationState, CalProduct, PeerRole, Program
from tslic.protocol.errors import ErrorCode, ProtocolError, ServiceError
from tslic.protocol.events import LsEvent
from tslic.protocol.licenses import open_grant
from tslic.protocol.messages import Conversation, Message, Welcome
from tslic.protocol.messages.admin import (
    AdminActivate,
    AdminActivationStep,
    AdminCompleteActivation,
    AdminGetStatus,
    AdminInstallKeyPack,
    AdminKeyPackInstalled,
    AdminListKeyPacks,
    AdminListLicenses,
    AdminListUsers,
    AdminSetPolicy,
    AdminSetProperties,
    AdminStatus,
)
from tslic.protocol.messages.clearinghouse import ChClaimKeyPack, ChInstallKeyPack, ChKeyPack
from tslic.protocol.messages.records import KeyPackGrant, ServerStatus
from tslic.protocol.policy import keypack_installable
from tslic.runtime.clock import Clock
from tslic.runtime.service import Peer

from .activation import Activation
from .config import Config, event
from .db import keypacks, settings
from .listings import Listings
from .metrics import Metrics
from .policies import Policies
from .store import Store

POLICY_MODULE_TEXT = (
    "Can't initialize policy module because of error 'Missing Policy module registry entry"
    " for product Microsoft Corporation, company 004'"
)


class AdminService:
    """Request handlers of the licensing utility <-> license server conversation."""

    conversation = Conversation.ADMIN

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        store: Store,
        activation: Activation,
        policies: Policies,
        metrics: Metrics,
        admin_public: bytes,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.activation = activation
        self.policies = policies
        self.metrics = metrics
        self.admin_public = admin_public
        self.listings = Listings(store)

    async def on_hello(self, peer: Peer) -> Welcome:
        if peer.key != self.admin_public:
            why = "this key is not the license server's administrator credential"
            event(
                LsEvent.ACCESS_DENIED, f"refused admin {peer.hello.name} at {peer.address}: {why}"
            )
            raise ServiceError(why, code=ErrorCode.ACCESS_DENIED)
        return Welcome(
            role=PeerRole.LICENSE_SERVER,
            name=self.config.name,
            version=int(self.config.version),
            server_time=self.clock.now(),
        )

    async def handle(self, peer: Peer, request: Message) -> Message:
        activation = self.activation
        actor = f"admin@{peer.address}"
        if isinstance(request, AdminGetStatus):
            return AdminStatus(status=await self._status())
        if isinstance(request, AdminSetProperties):
            await activation.set_properties(request.contact, request.method, actor)
            return AdminStatus(status=await self._status())
        if isinstance(request, AdminActivate):
            step = await activation.begin(request.action, request.method, request.reason, actor)
            if isinstance(step, AdminActivationStep):
                return step
            return AdminStatus(status=await self._status())
        if isinstance(request, AdminCompleteActivation):
            await activation.complete(request.action, request.code, actor)
            return AdminStatus(status=await self._status())
        if isinstance(request, AdminInstallKeyPack):
            return await self._install(request, actor)
        if isinstance(request, AdminListKeyPacks):
            return await self.listings.keypacks(request)
        if isinstance(request, AdminListLicenses):
            return await self.listings.licenses(request)
        if isinstance(request, AdminListUsers):
            return await self.listings.users(request)
        if isinstance(request, AdminSetPolicy):
            await self._set_policy(request, actor)
            return AdminStatus(status=await self._status())
        raise ServiceError(f"{type(request).__name__} is not an admin request")

    async def _status(self) -> ServerStatus:
        pending = await self.store.run_op(
            settings.security_group_members
        )  # read again at the next start
        act, cfg, policies = self.activation, self.config, self.policies
        enforced = tuple(sorted(policies.local_members | policies.directory_members))
        return ServerStatus(
            name=cfg.name,
            version=cfg.version,
            role=cfg.role,
            domain=cfg.domain,
            site=cfg.site,
            activation=act.state,
            method=act.method,
            license_server_id=act.license_server_id,
            product_id=act.product_id,
            contact=act.contact,
            certificate_temporary=act.temporary,
            security_group_enabled=policies.security_group,
            security_group_members=enforced,
            security_group_pending=pending,
            prevent_upgrade=policies.prevent_upgrade,
        )

    async def _set_policy(self, req: AdminSetPolicy, actor: str) -> None:
        now = self.clock.now()

        def op(db: sqlite3.Connection) -> None:
            if req.security_group_enabled is not None:
                settings.set_meta(db, "security_group", req.security_group_enabled)
            if req.prevent_upgrade is not None:
                settings.set_meta(db, "prevent_upgrade", req.prevent_upgrade)
            for name in req.add_members:
                if name.strip():
                    settings.add_security_group_member(db, name)
            for name in req.remove_members:
                settings.remove_security_group_member(db, name)
            settings.audit(
                db, at=now, what="set-policy", actor=actor,
                security_group=req.security_group_enabled, prevent_upgrade=req.prevent_upgrade,
                added=list(req.add_members), removed=list(req.remove_members),
            )  # fmt: skip

        await self.store.run_op(op)
        if req.security_group_enabled is not None:
            self.policies.security_group = req.security_group_enabled
        if req.prevent_upgrade is not None:
            self.policies.prevent_upgrade = req.prevent_upgrade

    # ---- key pack installation ----------------------------------------------------------

    async def _refuse_product(self, product: CalProduct, actor: str) -> None:
        now = self.clock.now()
        event(
            LsEvent.POLICY_MODULE,
            POLICY_MODULE_TEXT,
            product=product.value,
            source="TermServLicensing",
        )

        def op(db: sqlite3.Connection) -> None:
            settings.audit(
                db, at=now, what="keypack-refused", actor=actor, event_id=LsEvent.POLICY_MODULE,
                product=product.value, text=POLICY_MODULE_TEXT,
            )  # fmt: skip

        await self.store.run_op(op)
        raise ServiceError(
            f"{codes.WIZARD_MESSAGE} A {self.config.version.label} license server cannot hold"
            f" {product.label}s (event 41: {POLICY_MODULE_TEXT}).",
            code=ErrorCode.KEYPACK_NOT_SUPPORTED,
            detail={
                "message_number": codes.WIZARD_MESSAGE_NUMBER,
                "event_id": str(LsEvent.POLICY_MODULE),
            },
        )

    async def _install(self, req: AdminInstallKeyPack, actor: str) -> AdminKeyPackInstalled:
        activation, version = self.activation, self.config.version
        if not keypack_installable(version, req.product):
            await self._refuse_product(req.product, actor)
        if not activation.state.may_issue_permanent:
            again = "reactivate" if activation.state is ActivationState.DEACTIVATED else "activate"
            raise ServiceError(
                f"the license server is {activation.state}; {again} it before installing licenses",
                code=ErrorCode.NOT_ACTIVATED,
            )
        lsid = activation.license_server_id
        request: Message
        if req.keypack_code:
            request = ChClaimKeyPack(
                license_server_id=lsid, keypack_code=codes.normalize_code(req.keypack_code)
            )
        else:
            fields: dict[str, str] = {}
            if req.transition_token:
                fields["transition_token"] = req.transition_token.strip()
            elif req.program is Program.RETAIL:
                fields["retail_code"] = codes.check_retail_code(req.retail_code)
            elif req.program is Program.OPEN_LICENSE:
                number, auth = codes.check_open_license(
                    req.license_number, req.authorization_number
                )
                fields |= {"license_number": number, "authorization_number": auth}
            else:
                fields["agreement_number"] = codes.check_agreement_number(req.agreement_number)
            request = ChInstallKeyPack(
                license_server_id=lsid,
                program=req.program,
                product=req.product,
                count=req.count,
                **fields,
            )
        reply = await activation.ask(request)
        if not isinstance(reply, ChKeyPack):
            raise ServiceError(f"the Clearinghouse answered {type(reply).__name__}")
        grant = self._open(reply.grant)
        if not keypack_installable(version, grant.product):
            await self._refuse_product(grant.product, actor)
        return await self._store_grant(grant, reply, actor)

    def _open(self, blob: bytes) -> KeyPackGrant:
        root = self.activation.trusted_root
        if root is None:
            raise ServiceError(
                "no Clearinghouse root is known (--trust-root); cannot check the key pack",
                code=ErrorCode.UNTRUSTED_CERTIFICATE,
            )
        try:
            grant = open_grant(blob, root)
        except ProtocolError as exc:
            raise ServiceError(
                f"the key pack grant is not valid: {exc.message}", code=ErrorCode.INVALID_LICENSE
            ) from None
        if grant.license_server_id != self.activation.license_server_id:
            raise ServiceError(
                f"the key pack was granted to license server {grant.license_server_id},"
                " not to this one",
                code=ErrorCode.INVALID_LICENSE,
            )
        return grant

    async def _store_grant(
        self, grant: KeyPackGrant, reply: ChKeyPack, actor: str
    ) -> AdminKeyPackInstalled:
        now = self.clock.now()

        def op(db: sqlite3.Connection) -> AdminKeyPackInstalled:
            held = keypacks.keypack_holding_grant(db, grant.grant_id)
            if held is not None:  # installed before; never a second pool for one grant
                settings.audit(
                    db, at=now, what="keypack-already-installed", actor=actor,
                    keypack=held, grant=grant.grant_id,
                )  # fmt: skip
                return AdminKeyPackInstalled(
                    keypack=keypacks.get_keypack(db, held), already_installed=True
                )
            kid = keypacks.install_keypack(
                db, product=grant.product, program=grant.program,
                keypack_type=grant.program.keypack_type, description=grant.description,
                total=grant.count, installed_at=now, expires_at=grant.expires_at,
                grant_id=grant.grant_id, keypack_code=reply.keypack_code, grant_blob=reply.grant,
            )  # fmt: skip
            settings.audit(
                db, at=now, what="keypack-installed", actor=actor, keypack=kid,
                product=grant.product.value, count=grant.count,
            )  # fmt: skip
            info = keypacks.get_keypack(db, kid)
            self.metrics.set_pools(keypacks.available_by_product(db, now))
            return AdminKeyPackInstalled(keypack=info)

        reply_msg: AdminKeyPackInstalled = await self.store.run_op(op)
        return reply_msg
