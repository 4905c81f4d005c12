"""The agent's licensing decisions for real RDP clients: the msgpack `rdp` conversation, relayed.

Contract:
- `AgentDecider(agent_address, data_dir, clock)` decides nothing itself. For each verified
  RDP licensing request it runs the agent's own msgpack `rdp` conversation (the one the
  emulated client of client/rdp speaks, docs/PROTOCOL.md) against the agent's msgpack
  listener at `agent_address`, as that client, and translates the result: discovery,
  version skip, grace period, temporary licenses, validation after logon, upgrade, renewal,
  Per User and built-in licenses are all the agent's Licensing decisions (licensing.py).
- Device identity: the RDP client's decrypted hardware id picks a device key kept under
  `data_dir/rdp-devices/<sha256(hwid)>/` (made on first sight); its public half is the
  hardware id the license server records, and the RDP clientName is the computer name. The
  same real client is therefore the same device on every connection.
- The license: a license the real client presents (License Information) is handed to the
  conversation as the stored one; a license the agent issues (NewLicense/UpgradeLicense,
  signed by `tslic server`) becomes the pbLicenseInfo the RDP client stores.
- Logon: the Client Info PDU's credentials are the logon. "Successful" means a non-empty
  user name with a non-empty password (the emulator has no user database); it is sent as
  ClientLogon(credentials_valid=...), after which the agent marks a temporary Per Device
  license validated, so the next connection gets a permanent CAL.
- A failed logon (status "logon-failed") does not undo licensing: the license is still
  sent and the outcome bitmap says the logon failed.
- Refusals: the conversation's ErrorAlert becomes the same error code and the same
  ERRINFO_LICENSE_* (the msgpack DisconnectReason values are the Set Error Info codes).
  A failure to reach the agent is LICENSE_INTERNAL.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tslic.client.rdp.client import Outcome as ClientOutcome
from tslic.client.rdp.client import connect
from tslic.client.rdp.store import LicenseStore
from tslic.protocol.clock import MS_PER_DAY, format_date
from tslic.protocol.domain import ClientOS
from tslic.protocol.errors import StorageError, TslicError
from tslic.protocol.messages.records import ProductInfo
from tslic.protocol.rdp.info import ErrorInfo
from tslic.protocol.rdp.licensing import LicenseErrorCode
from tslic.runtime.clock import Clock

from .rdp_licensing import ClientRequest, Outcome
from .status import GraceStatus, status_document


class _RelayStore(LicenseStore):
    """The device key on disk; the license is the one the real client holds, not a file."""

    def __init__(self, root: Path, presented: bytes | None) -> None:
        super().__init__(root)
        self.presented = presented
        self.issued: bytes | None = None

    def load(self, product: ProductInfo, scope: str) -> bytes | None:
        return self.presented

    def save(self, product: ProductInfo, scope: str, blob: bytes) -> None:
        self.issued = blob


def logon_succeeds(request: ClientRequest) -> bool:
    return bool(request.user) and request.password_given


class AgentDecider:
    def __init__(
        self, agent_address: str, data_dir: Path, clock: Clock, *, timeout: float = 30.0
    ) -> None:
        self.agent_address = agent_address
        self.data_dir = data_dir
        self.root = data_dir / "rdp-devices"
        self.clock = clock
        self.timeout = timeout

    async def decide(self, request: ClientRequest) -> Outcome:
        device = hashlib.sha256(request.hwid).hexdigest()[:32]
        store = _RelayStore(self.root / device, request.presented)
        try:
            result = await connect(
                self.agent_address,
                store=store,
                device=request.client_name or request.machine or "RDP-CLIENT",
                user=request.user or "rdp-user",
                domain=request.domain,
                client_os=ClientOS.NON_WINDOWS,
                clock=self.clock,
                password_ok=logon_succeeds(request),
                timeout=self.timeout,
            )
        except StorageError as exc:
            return Outcome(kind="refused", error_info=ErrorInfo.LICENSE_INTERNAL, detail=str(exc))
        return self._translate(result, store)

    def _translate(self, result: ClientOutcome, store: _RelayStore) -> Outcome:
        summary = result.license
        product = summary.product_label if summary else ""
        issuer = summary.issuer if summary else ""
        expires = ""
        if summary is not None:
            expires = format_date(summary.expires_at) if summary.expires_at else "never"
        status, detail = result.status, "; ".join(result.warnings)
        if status == "logon-failed":
            # licensing came first and stands (as on a real terminal server); only the
            # logon failed, so a temporary license stays unvalidated
            status = "licensed" if summary is not None else "valid-client"
            detail = f"logon failed: {result.text}"
        if status == "licensed":
            kind = f"{summary.kind} ({'new' if result.received else 'kept'})" if summary else "?"
            if result.received and store.issued is not None:
                return Outcome(
                    kind=kind,
                    product=product,
                    issuer=issuer,
                    expires=expires,
                    days_left=self._days_left(summary.expires_at) if summary else None,
                    license=store.issued,
                    upgrade=result.received == "upgrade",
                    detail=detail,
                )
            return Outcome(
                kind=kind, product=product, issuer=issuer, expires=expires, detail=detail
            )
        if status == "valid-client":
            grace = self._grace()
            in_grace = grace is not None and grace["in_grace"]
            return Outcome(
                kind="valid client (grace period)" if in_grace else "valid client",
                days_left=grace["days_left"] if grace is not None and in_grace else None,
                detail=detail,
            )
        if result.status == "disconnected":
            reason = result.disconnect_reason or "LICENSE_INTERNAL"
            code = result.alert.split("/", 1)[0] or "ERR_INVALID_CLIENT"
            return Outcome(
                kind="refused",
                error_info=ErrorInfo[reason] if reason in ErrorInfo.__members__ else 0x100,
                alert_code=LicenseErrorCode[code]
                if code in LicenseErrorCode.__members__
                else LicenseErrorCode.ERR_INVALID_CLIENT,
                detail=result.text,
            )
        return Outcome(
            kind="refused",
            error_info=ErrorInfo.LICENSE_INTERNAL,
            alert_code=LicenseErrorCode.ERR_NO_LICENSE_SERVER,
            detail=result.text or f"the agent's conversation ended: {result.status}",
        )

    def _grace(self) -> GraceStatus | None:
        """The agent's grace period as its status shows it (read, not decided, here); None
        when the agent's state cannot be read."""
        try:
            return status_document(self.data_dir, self.clock)["grace"]
        except TslicError:
            return None

    def _days_left(self, expires_at: int) -> int | None:
        if not expires_at:
            return None
        return max(0, -(-(expires_at - self.clock.now()) // MS_PER_DAY))
