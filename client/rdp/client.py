"""The client side of the licensing exchange (MS-RDPELE semantics).

Contract:
- `connect(...)` opens one RDP conversation to a terminal-server agent and returns an
  `Outcome`; it never raises for the server's or the network's failures (they become
  `Outcome(status="error")` with a readable text). Its envelopes are signed with the device
  key from the store, whose public half is the hardware id.
- Steps: receive LicenseRequest; validate the server's chain against the trusted root if one
  is given and the server has a certificate (else ErrorAlert ERR_INVALID_SERVER_CERTIFICATE +
  ST_TOTAL_ABORT, status "aborted"); present the stored license for the product and scope
  (LicenseInfo) or ask for one (NewLicenseRequest); answer the PlatformChallenge with the
  challenge and the hardware id; store a NewLicense or UpgradeLicense (only if it is signed
  and bound to our hardware id); then log on (ClientLogon / LogonComplete) and say Goodbye.
- Statuses: "licensed" (a license received or kept), "valid-client" (accepted without a
  license, e.g. during the grace period), "disconnected" (an ErrorAlert ended licensing),
  "aborted" (we ended it), "error" (network or protocol failure), "logon-failed" (licensing
  went through but the logon was refused, e.g. a wrong password: not connected).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import trio
from cryptography import x509
from tslic.protocol import Connection, ConnectionLost, Conversation, Direction
from tslic.protocol.clock import MS_PER_DAY, format_date, to_datetime
from tslic.protocol.domain import ClientOS
from tslic.protocol.envelope import window_for_speed
from tslic.protocol.errors import (
    ErrorCode,
    ProtocolError,
    RemoteProtocolError,
    StorageError,
    TslicError,
)
from tslic.protocol.licenses import open_license, verify_license
from tslic.protocol.messages import Goodbye
from tslic.protocol.messages.rdp import (
    ClientLogon,
    ErrorAlert,
    LicenseInfo,
    LicenseRequest,
    LogonComplete,
    NewLicense,
    NewLicenseRequest,
    PlatformChallenge,
    PlatformChallengeResponse,
    RdpError,
    StateTransition,
    UpgradeLicense,
)
from tslic.protocol.messages.records import LicenseBody
from tslic.protocol.pki import CertRole, cert_from_der, identity_of, validate_chain
from tslic.runtime.clock import Clock, clock_view
from tslic.runtime.peer import connect as tcp_connect
from tslic.runtime.stream import MessageStream

from . import texts
from .store import LicenseStore

# Our choice: the expiry warning of a temporary license shows in its last 15 days (KB822134
# says "near expiry" without a number).
TEMPORARY_WARNING_DAYS = 15

# MS-RDPELE 2.2.2.1.1 PlatformId: OS byte | ISV byte (Microsoft 0x00010000).
PLATFORM_IDS = {
    ClientOS.WIN98: 0x00010000,
    ClientOS.NT4: 0x02010000,
    ClientOS.W2000_PRO: 0x03010000,
    ClientOS.XP_PRO: 0x04010000,
    ClientOS.XP_HOME: 0x04010000,
    ClientOS.NON_WINDOWS: 0xFF000000,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LicenseSummary:
    """What the client holds, for people and for --json."""

    license_id: int
    kind: str
    product: str
    product_label: str
    version: int
    issuer: str
    issued_at: int
    expires_at: int  # 0: never

    @classmethod
    def of(cls, body: LicenseBody) -> LicenseSummary:
        return cls(
            license_id=body.license_id,
            kind=str(body.kind),
            product=str(body.product),
            product_label=body.product.label,
            version=int(body.product.version),
            issuer=body.issuer,
            issued_at=body.issued_at,
            expires_at=body.expires_at,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "license_id": self.license_id,
            "type": self.kind,
            "product": self.product,
            "product_label": self.product_label,
            "version": self.version,
            "issuer": self.issuer,
            "issued_at": format_date(self.issued_at),
            "expires": format_date(self.expires_at) if self.expires_at else "never",
        }


@dataclass(slots=True, kw_only=True)
class Outcome:
    """How one connection ended."""

    device: str
    user: str = ""
    status: str = "error"
    presented_stored: bool = False
    received: str = ""  # "new", "upgrade", or "" (nothing stored this time)
    license: LicenseSummary | None = None
    alert: str = ""
    disconnect_reason: str = ""
    text: str = ""
    warnings: list[str] = field(default_factory=list)
    logged_on: bool = False

    @property
    def connected(self) -> bool:
        return self.status in ("licensed", "valid-client")

    def to_json(self) -> dict[str, object]:
        """The outcome as JSON. `license` is the license the client holds after a licensed
        connection; a refused or failed one has none (`refusal` says why) and shows what it
        presented under `presented_license`."""
        lic = None if self.license is None else self.license.to_json()
        licensed = self.status in ("licensed", "logon-failed")
        return {
            "device": self.device,
            "user": self.user,
            "status": self.status,
            "presented_stored_license": self.presented_stored,
            "presented_license": lic if self.presented_stored and not licensed else None,
            "received": self.received or None,
            "license": lic if licensed else None,
            "refusal": None if licensed or self.status == "valid-client" else self.text or None,
            "alert": self.alert or None,
            "disconnect_reason": self.disconnect_reason or None,
            "text": self.text or None,
            "warnings": self.warnings,
            "logged_on": self.logged_on,
        }


class _Client:
    def __init__(
        self,
        stream: MessageStream,
        store: LicenseStore,
        outcome: Outcome,
        clock: Clock,
        trust_root: x509.Certificate | None,
    ) -> None:
        self.stream, self.store, self.outcome = stream, store, outcome
        self.clock, self.trust_root = clock, trust_root

    def _server_chain_ok(self, request: LicenseRequest) -> bool:
        if not request.cert_chain:
            return True  # the TS has no certificate yet
        try:
            certs = [cert_from_der(der) for der in request.cert_chain]
            # SEC-7: the chain is the terminal server's own: its leaf is the key signing.
            if identity_of(certs[-1]).public_key != self.stream.conn.peer_key:
                raise RemoteProtocolError(
                    "the certificate is not for the key signing the LicenseRequest",
                    code=ErrorCode.UNTRUSTED_CERTIFICATE,
                )
            if self.trust_root is None:
                return True  # no root to check against
            validate_chain(
                certs,
                self.trust_root,
                to_datetime(self.clock.now()),
                leaf_role=CertRole.TERMINAL_SERVER,
                allow_temporary_issuer=True,
            )
        except ProtocolError as exc:
            self.outcome.text = f"{texts.INVALID_SERVER_CERTIFICATE} ({exc.message})"
            return False
        return True

    def _open(self, blob: bytes) -> LicenseBody:
        if self.trust_root is None:
            return open_license(blob).body
        return verify_license(blob, self.trust_root, to_datetime(self.clock.now())).body

    def _alert(self, alert: ErrorAlert) -> None:
        o = self.outcome
        if alert.is_valid_client:
            o.status = "valid-client" if o.license is None else "licensed"
            return
        o.status = "disconnected"
        o.alert = f"{alert.error_code.name}/{alert.state_transition.name}"
        o.disconnect_reason = alert.disconnect_reason.name
        o.text = alert.text or texts.BY_REASON.get(alert.disconnect_reason, alert.error_code.name)

    async def run(self, *, user: str, domain: str, client_os: ClientOS, password_ok: bool) -> None:
        stream, o = self.stream, self.outcome
        request = await stream.receive()
        assert isinstance(request, LicenseRequest)  # the state table admits nothing else
        if not self._server_chain_ok(request):
            await stream.send(
                ErrorAlert(
                    error_code=RdpError.ERR_INVALID_SERVER_CERTIFICATE,
                    state_transition=StateTransition.ST_TOTAL_ABORT,
                    text=o.text,
                )
            )
            o.status = "aborted"
            return
        scope = request.scopes[0] if request.scopes else "microsoft.com"
        stored = self.store.load(request.product, scope)
        platform_id, client_random = PLATFORM_IDS[client_os], os.urandom(32)
        if stored is not None:
            o.presented_stored = True
            try:
                o.license = LicenseSummary.of(open_license(stored).body)
            except ProtocolError:
                o.license = None
            first: LicenseInfo | NewLicenseRequest = LicenseInfo(
                license=stored,
                platform_id=platform_id,
                client_random=client_random,
                user_name=user,
                machine_name=o.device,
                client_os=client_os,
            )
        else:
            first = NewLicenseRequest(
                platform_id=platform_id,
                client_random=client_random,
                user_name=user,
                machine_name=o.device,
                client_os=client_os,
            )
        await stream.send(first)
        challenge = await stream.receive()
        if isinstance(challenge, ErrorAlert):
            self._alert(challenge)
        else:
            assert isinstance(challenge, PlatformChallenge)
            await stream.send(
                PlatformChallengeResponse(
                    challenge=challenge.challenge,
                    hwid=self.store.hwid(),
                    client_type=0xFF00 if client_os is ClientOS.NON_WINDOWS else 0x0100,
                )
            )
            answer = await stream.receive()
            if isinstance(answer, ErrorAlert):
                self._alert(answer)
            else:
                assert isinstance(answer, NewLicense | UpgradeLicense)
                body = self._open(answer.license)
                if body.hwid != self.store.hwid():
                    raise RemoteProtocolError(
                        "the terminal server sent a license bound to another hardware id",
                        code=ErrorCode.HWID_MISMATCH,
                    )
                self.store.save(request.product, answer.scope, answer.license)
                o.received = "new" if isinstance(answer, NewLicense) else "upgrade"
                o.license = LicenseSummary.of(body)
                o.status = "licensed"
        if not o.connected:
            return
        self._warn()
        await stream.send(ClientLogon(user_name=user, domain=domain, credentials_valid=password_ok))
        done = await stream.receive()
        assert isinstance(done, LogonComplete)
        o.logged_on = done.logged_on
        if not done.logged_on:  # licensed, but the user is not in: the connection failed
            o.status = "logon-failed"
            o.text = done.text or texts.LOGON_FAILED
        elif done.text:
            o.warnings.append(done.text)
        await stream.send(Goodbye(reason="the user logged off"))

    def _warn(self) -> None:
        lic = self.outcome.license
        if lic is None or lic.kind != "temporary" or not lic.expires_at:
            return
        days = -(-(lic.expires_at - self.clock.now()) // MS_PER_DAY)
        if 0 < days <= TEMPORARY_WARNING_DAYS:
            self.outcome.warnings.append(texts.TEMPORARY_EXPIRING.format(days=texts.days(days)))


async def connect(
    address: str,
    *,
    store: LicenseStore,
    device: str,
    user: str,
    client_os: ClientOS,
    clock: Clock,
    domain: str = "",
    trust_root: x509.Certificate | None = None,
    password_ok: bool = True,
    timeout: float = 30.0,  # noqa: ASYNC109 (a whole-connection limit, like open_tcp_stream's)
) -> Outcome:
    """Connect once to the agent at `address` (see the module docstring).

    Returns:
        The outcome; failures of the network or the server are `status="error"`.

    Raises:
        StorageError: the license store cannot be read or written.
    """
    outcome = Outcome(device=device, user=user)
    key = store.key()
    try:
        with trio.fail_after(timeout):
            tcp = await tcp_connect(address)
            conn = Connection(
                conversation=Conversation.RDP,
                our_role=Direction.CLIENT,
                key=key,
                nonce_source=lambda: os.urandom(16),
                window=window_for_speed(clock.speed),
                clock_view=clock_view(clock),
            )
            stream = MessageStream(tcp, conn, clock.now)
            try:
                client = _Client(stream, store, outcome, clock, trust_root)
                await client.run(
                    user=user, domain=domain, client_os=client_os, password_ok=password_ok
                )
            finally:
                await stream.aclose()
    except trio.TooSlowError:
        outcome.status, outcome.text = "error", f"the terminal server at {address} did not answer"
    except ConnectionLost as exc:
        outcome.status, outcome.text = "error", exc.message
    except ProtocolError as exc:
        outcome.status, outcome.text = "error", f"licensing failed: {exc}"
    except StorageError:
        raise
    except TslicError as exc:
        outcome.status, outcome.text = "error", str(exc)
    return outcome
