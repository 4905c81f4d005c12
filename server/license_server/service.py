"""The licensing conversation: what a terminal server may ask its license server.

Contract (protocol/messages/licensing.py; KB 823313, MS-RDPBCGR 5.3.3.2, TechNet cc758063):
- Hello: only terminal servers. A Windows 2000 license server refuses a Windows Server 2003
  terminal server with LOWER_VERSION (so the agent can tell "lower version" from
  "unreachable"). A terminal server that presents a certificate this server issued, for the
  key signing the conversation, is authenticated for license requests; so is one presenting
  a terminal-server certificate another activated license server issued (its chain leads to
  the Clearinghouse root, SEC-9), as a terminal server following a Referral does.
- RequestTermServCert: the public key must be the envelope key; with the License Server
  Security Group on, the computer must be a member ("Terminal Services Computers"; the
  refusal text is termsrv event 1043's). The certificate is signed by this server's key
  under its current chain (activated or temporary) and also authenticates the connection.
- IssueLicense / UpgradeLicenseRequest / MarkLicense / ReturnLicense need that certificate
  (else ACCESS_DENIED); Mark and Return only for the terminal server's own licenses
  (WRONG_TERMINAL_SERVER) and the device's own hardware id (HWID_MISMATCH).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable
from typing import NoReturn, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tslic.protocol.clock import to_datetime
from tslic.protocol.domain import LicenseKind, LicenseStatus, PeerRole, WindowsVersion
from tslic.protocol.errors import ErrorCode, ProtocolError, ServiceError
from tslic.protocol.events import LsEvent
from tslic.protocol.messages import Conversation, Message, Welcome
from tslic.protocol.messages.licensing import (
    IssueLicense,
    LicenseGranted,
    LicenseMarked,
    LicenseReturned,
    MarkLicense,
    Referral,
    RequestTermServCert,
    ReturnLicense,
    TermServCert,
    UpgradeLicenseRequest,
)
from tslic.protocol.pki import (
    MAX_CHAIN_LENGTH,
    CertRole,
    cert_from_der,
    cert_to_der,
    identity_of,
    issue_terminal_server_cert,
    key_id,
    validate_chain,
)
from tslic.protocol.policy import ls_serves_ts
from tslic.runtime.clock import Clock
from tslic.runtime.service import Peer

from .activation import Activation
from .config import Config, event
from .db import keypacks, licenses, settings
from .issuance import Issuer
from .metrics import Metrics
from .policies import Policies
from .records import LicenseAsk, Outcome, TerminalServer, ts_cert_validity
from .store import Store


def lower_version_text(ls_version: WindowsVersion) -> str:
    return (
        f"This license server runs {ls_version.label}. Windows Server 2003 terminal servers"
        " require a Windows Server 2003 license server (KB823313)."
    )


def _check_presented_chain(peer: Peer, now: int) -> None:
    """A Hello's chain, when present, must be at most 3 DER certificates ending with one for
    the envelope key (docs/PROTOCOL.md §5.1, SEC-7, LIMIT-8); else UNTRUSTED_CERTIFICATE.
    A leaf outside its validity at `now` is CERTIFICATE_EXPIRED (§10.1): the terminal server
    must ask for a new certificate (a Hello without a chain, then RequestTermServCert).
    Whether *this* server issued it is decided later (`_authenticate`)."""
    chain = peer.hello.cert_chain
    if not chain:
        return
    if len(chain) > MAX_CHAIN_LENGTH:
        raise ServiceError(
            f"a chain of {len(chain)} certificates is longer than the hierarchy"
            f" ({MAX_CHAIN_LENGTH})",
            code=ErrorCode.UNTRUSTED_CERTIFICATE,
        )
    try:
        leaf = identity_of(cert_from_der(chain[-1]))
        for der in chain[:-1]:
            cert_from_der(der)
    except ProtocolError as exc:
        raise ServiceError(exc.message, code=ErrorCode.UNTRUSTED_CERTIFICATE) from None
    if leaf.public_key != peer.key:
        raise ServiceError(
            f"the certificate {leaf.name!r} is for another key than the one signing this"
            " conversation",
            code=ErrorCode.UNTRUSTED_CERTIFICATE,
        )
    when = to_datetime(now)
    if not leaf.not_before <= when <= leaf.not_after:
        raise ServiceError(
            f"the certificate {leaf.name!r} is valid from {leaf.not_before:%Y-%m-%d} to"
            f" {leaf.not_after:%Y-%m-%d}, not on {when:%Y-%m-%d}; ask for a new one",
            code=ErrorCode.CERTIFICATE_EXPIRED,
        )


class LicensingService:
    """Request handlers of the terminal server <-> license server conversation."""

    conversation = Conversation.LICENSING

    def __init__(
        self,
        *,
        config: Config,
        clock: Clock,
        store: Store,
        activation: Activation,
        issuer: Issuer,
        policies: Policies,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.activation = activation
        self.issuer = issuer
        self.policies = policies
        self.metrics = metrics

    async def on_hello(self, peer: Peer) -> Welcome:
        hello = peer.hello
        if hello.role is not PeerRole.TERMINAL_SERVER:
            self._denied(peer, f"a {hello.role} may not use the licensing conversation")
        if hello.version not in (2000, 2003):
            self._denied(peer, "a terminal server must say its version (2000 or 2003)")
        ts_version = WindowsVersion(hello.version)
        if not ls_serves_ts(self.config.version, ts_version):
            raise ServiceError(
                lower_version_text(self.config.version),
                code=ErrorCode.LOWER_VERSION,
                detail={"license_server_version": str(int(self.config.version))},
            )
        _check_presented_chain(peer, self.clock.now())
        self._check_root(peer.hello.cert_chain, self.clock.now())
        peer.state["ts"] = await self._authenticate(peer, ts_version)
        return Welcome(
            role=PeerRole.LICENSE_SERVER,
            name=self.config.name,
            version=int(self.config.version),
            cert_chain=self.activation.chain,
            server_time=self.clock.now(),
        )

    async def handle(self, peer: Peer, request: Message) -> Message:
        # The handler's own time (a metric): perf_counter, as Trio's clock would read it
        # with the real clock, for less per request than `trio.current_time()` costs.
        started = time.perf_counter()
        try:
            return await self._dispatch(peer, request)
        finally:
            self.metrics.observe(type(request).__name__, time.perf_counter() - started)

    def _dispatch(self, peer: Peer, request: Message) -> Awaitable[Message]:
        """The handler of `request` (an awaitable: one coroutine frame less per request)."""
        kind = type(request)
        if kind is RequestTermServCert:
            return self._cert(peer, cast(RequestTermServCert, request))
        ts = peer.state.get("ts")
        if not isinstance(ts, TerminalServer):
            return self._denied(
                peer,
                "present the certificate this license server issued you"
                " (ask for one with RequestTermServCert)",
            )
        if kind is IssueLicense or kind is UpgradeLicenseRequest:
            return self._grant(ts, cast(LicenseAsk, request))
        if kind is MarkLicense or kind is ReturnLicense:
            return self._mark_or_return(ts, cast(MarkLicense | ReturnLicense, request))
        raise ServiceError(f"{kind.__name__} is not a licensing request")

    async def _grant(self, ts: TerminalServer, req: LicenseAsk) -> LicenseGranted | Referral:
        """Decide one license request (issue, upgrade or renew) and record it."""
        now = self.clock.now()

        def op(db: sqlite3.Connection) -> Outcome:
            self.policies.admit(ts.name)
            return self.issuer.decide(db, ts, req, now)

        outcome = await self.store.run_op(op)
        self.metrics.set_pools(outcome.available)
        if outcome.issued is not None:
            self.metrics.issued(*outcome.issued)
        if outcome.refusal is not None:
            refusal = outcome.refusal
            if outcome.events:
                refusal.detail["event_ids"] = ",".join(str(e) for e, _ in outcome.events)
            raise refusal
        reply: LicenseGranted | Referral | None = outcome.reply  # names the events itself
        assert reply is not None
        return reply

    def _denied(self, peer: Peer, why: str) -> NoReturn:
        event(LsEvent.ACCESS_DENIED, f"refused {peer.hello.name} at {peer.address}: {why}")
        raise ServiceError(why, code=ErrorCode.ACCESS_DENIED)

    async def _authenticate(self, peer: Peer, version: WindowsVersion) -> TerminalServer | None:
        chain = peer.hello.cert_chain
        if not chain:
            return None
        leaf = chain[-1]

        def op(db: sqlite3.Connection) -> str | None:
            issued = settings.ts_certificate_for(db, peer.key)
            if issued is None or issued.cert != leaf or issued.expires_at <= now:
                return None
            return issued.name

        now = self.clock.now()
        name = await self.store.run_op(op)
        if name is None:
            name = self._trusted_elsewhere(chain, now)
        return None if name is None else TerminalServer(name, version, peer.key)

    def _check_root(self, chain: tuple[bytes, ...], now: int) -> None:
        """SEC-13 (§5.1, §10.1): a chain topped by a Clearinghouse root is judged at Hello.
        Another root than the one this server trusts, or a chain under ours that does not
        validate, is refused with UNTRUSTED_CERTIFICATE there, not welcomed and refused
        request by request. A chain topped by another server's temporary certificate is
        welcomed: its license requests get ACCESS_DENIED (SEC-9), and the terminal server
        asks this server for a certificate."""
        root = self.activation.trusted_root
        if not chain or root is None:
            return
        try:
            certs = [cert_from_der(der) for der in chain]
            top = identity_of(certs[0])
        except ProtocolError:
            return  # _check_presented_chain has judged the shape
        if top.role != CertRole.CLEARINGHOUSE:
            return
        trusted = identity_of(root)
        if top.public_key != trusted.public_key:
            # Names can be alike (every emulated Clearinghouse has the same one): give keys.
            raise ServiceError(
                f"the certificate chain leads to the Clearinghouse root {top.name!r} (key"
                f" {key_id(top.public_key)[:12]}), not to the root this license server trusts"
                f" ({trusted.name!r}, key {key_id(trusted.public_key)[:12]})",
                code=ErrorCode.UNTRUSTED_CERTIFICATE,
            )
        try:
            validate_chain(certs, root, to_datetime(now), leaf_role=CertRole.TERMINAL_SERVER)
        except ProtocolError as exc:
            raise ServiceError(
                f"the certificate chain does not validate: {exc.message}",
                code=ErrorCode.UNTRUSTED_CERTIFICATE,
            ) from None

    def _trusted_elsewhere(self, chain: tuple[bytes, ...], now: int) -> str | None:
        """SEC-9: a terminal-server certificate another *activated* license server issued
        (its chain leads to the Clearinghouse root) authenticates the terminal server too, so
        a terminal server sent here by a Referral (CAL-12) can ask without a new certificate.
        A chain topped by a temporary (unactivated) certificate is trusted only by the server
        that made it (the ts_certs lookup above): anyone can make one."""
        root = self.activation.trusted_root
        if root is None:
            return None
        try:
            certs = [cert_from_der(der) for der in chain]
            leaf = validate_chain(certs, root, to_datetime(now), leaf_role=CertRole.TERMINAL_SERVER)
        except ProtocolError:
            return None  # not trusted here: license requests get ACCESS_DENIED (SEC-9)
        return leaf.name.upper()

    async def _cert(self, peer: Peer, req: RequestTermServCert) -> TermServCert:
        activation, version = self.activation, self.config.version
        if req.public_key != peer.key:
            self._denied(peer, "the certificate must be for the key that signs this conversation")
        if req.version is WindowsVersion.W2003 and not ls_serves_ts(version, req.version):
            raise ServiceError(lower_version_text(version), code=ErrorCode.LOWER_VERSION)
        now = self.clock.now()
        name = req.name.upper()
        not_before, not_after = ts_cert_validity(now)
        issuer_cert = cert_from_der(activation.chain[-1])
        not_after = min(not_after, identity_of(issuer_cert).not_after)

        def op(db: sqlite3.Connection) -> bytes:
            self.policies.admit(name)
            serial = settings.next_counter(db, "serial")
            cert = issue_terminal_server_cert(
                activation.key,
                issuer_cert,
                Ed25519PublicKey.from_public_bytes(req.public_key),
                name=name,
                version=int(req.version),
                not_before=not_before,
                not_after=not_after,
                serial=serial,
            )
            der = cert_to_der(cert)
            settings.save_ts_certificate(
                db, public_key=req.public_key, name=name, domain=req.domain, site=req.site,
                version=int(req.version), serial=serial, issued_at=now,
                expires_at=int(not_after.timestamp() * 1000), cert=der,
            )  # fmt: skip
            settings.audit(db, at=now, what="ts-certificate", actor=name, serial=serial)
            return der

        try:
            der = await self.store.run_op(op)
        except ProtocolError as exc:  # our own certificate could not sign (a local fault)
            raise ServiceError(f"cannot issue the certificate: {exc.message}") from None
        peer.state["ts"] = TerminalServer(name, req.version, req.public_key)
        return TermServCert(cert_chain=(*activation.chain, der))

    async def _mark_or_return(
        self, ts: TerminalServer, req: MarkLicense | ReturnLicense
    ) -> LicenseMarked | LicenseReturned:
        now = self.clock.now()

        def op(db: sqlite3.Connection) -> LicenseMarked | LicenseReturned:
            self.policies.admit(ts.name)
            holder = licenses.license_holder(db, req.license_id)
            if holder is None:
                raise ServiceError(
                    f"no license {req.license_id} was issued by this license server",
                    code=ErrorCode.LICENSE_NOT_FOUND,
                )
            owner = holder.terminal_server
            if owner != ts.name:
                raise ServiceError(
                    f"license {req.license_id} belongs to terminal server {owner}, not {ts.name}",
                    code=ErrorCode.WRONG_TERMINAL_SERVER,
                )
            if holder.hwid != req.hwid:
                raise ServiceError(
                    f"license {req.license_id} was issued to another device",
                    code=ErrorCode.HWID_MISMATCH,
                )
            if isinstance(req, MarkLicense):
                licenses.mark_validated(db, req.license_id)
                settings.audit(db, at=now, what="validated", actor=ts.name, license=req.license_id)
                return LicenseMarked(license_id=req.license_id, validated=True)
            if holder.status in (LicenseStatus.ACTIVE, LicenseStatus.TEMPORARY):
                if holder.kind is LicenseKind.PERMANENT and not holder.product.is_per_user:
                    keypacks.return_to_pool(db, holder.keypack_id)
                licenses.set_license_status(db, req.license_id, LicenseStatus.RETURNED)
                settings.audit(db, at=now, what="returned", actor=ts.name, license=req.license_id)
            return LicenseReturned(license_id=req.license_id)

        reply: LicenseMarked | LicenseReturned = await self.store.run_op(op)
        return reply
