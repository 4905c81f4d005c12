"""What the RDP front end asks of a licensing decider, and what it gets back.

Contract:
- The RDP listener (rdp_listener.py) only translates: once the client's licensing request is
  verified it calls `Decider.decide(ClientRequest)` and turns the `Outcome` into MS-RDPELE
  PDUs: `issue` -> New License (or Upgrade License when `upgrade`) carrying `license` in
  NEW_LICENSE_INFO (ELE §2.2.2.6.1), encrypted with its MAC; no `issue` and no `error_info`
  -> the "valid client" Error Alert (STATUS_VALID_CLIENT, ST_NO_TRANSITION); `error_info` set
  -> Set Error Info with that ERRINFO_LICENSE_* code, the Error Alert `alert_code` with
  ST_TOTAL_ABORT, and a disconnect (BCGR §2.2.5.1.1, §2.2.1.12.1.3).
- `Outcome.lines()` is the text the outcome bitmap shows after licensing.
- `StandaloneDecider` is the stand-alone listener's decider (no agent behind it): it issues
  a temporary license that names the client, accepts a presented one that it issued, and is
  used by the manual try-out and the protocol-level tests. The agent's decider is
  rdp_decisions.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Protocol

from tslic.protocol.rdp.info import ErrorInfo
from tslic.protocol.rdp.licensing import LicenseErrorCode

PRODUCT_VERSION_2003 = 0x00050002  # ProductInfo.dwVersion: major 5, minor 2
COMPANY = "Microsoft Corporation"
PRODUCT_ID = "A02"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClientRequest:
    """A verified licensing request: the client's names, its decrypted hardware id and, for
    License Information, the license it presented (pbLicenseInfo as it stored it)."""

    client_name: str
    user: str
    domain: str
    password_given: bool
    machine: str
    platform_id: int
    hwid: bytes
    presented: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    kind: str  # "temporary", "permanent", "valid client", "presented", "refused", ...
    product: str = ""
    issuer: str = ""
    expires: str = ""
    days_left: int | None = None
    license: bytes | None = None  # the CAL to send in New/Upgrade License
    upgrade: bool = False
    error_info: int | None = None  # an ERRINFO_LICENSE_* code: refuse and disconnect
    alert_code: int = LicenseErrorCode.ERR_INVALID_CLIENT
    detail: str = ""

    @property
    def refused(self) -> bool:
        return self.error_info is not None

    def lines(self, client_name: str, user: str) -> list[str]:
        title = "tslic: license refused" if self.refused else "tslic: licensed"
        lines = [title, f"Client: {client_name}  User: {user or '-'}", f"License: {self.kind}"]
        if self.product:
            lines.append(f"Product: {self.product}")
        if self.issuer:
            lines.append(f"Issuer: {self.issuer}")
        lines.append(f"Expires: {self.expires or '-'}")
        if self.days_left is not None:
            label = "Grace days left" if "grace" in self.kind else "Days left"
            lines.append(f"{label}: {self.days_left}")
        if self.detail:
            lines.append(self.detail)
        return lines


class Decider(Protocol):
    async def decide(self, request: ClientRequest) -> Outcome: ...


STANDALONE_MAGIC = b"tslic-standalone-rdp-license:"


class StandaloneDecider:
    """Issues a temporary license naming the client; accepts its own license when presented."""

    def __init__(self, issuer: str = "tslic stand-alone listener") -> None:
        self.issuer = issuer

    async def decide(self, request: ClientRequest) -> Outcome:
        if request.presented is not None:
            if not request.presented.startswith(STANDALONE_MAGIC):
                return Outcome(
                    kind="refused",
                    error_info=ErrorInfo.LICENSE_BAD_CLIENT_LICENSE,
                    alert_code=LicenseErrorCode.ERR_INVALID_CLIENT,
                    detail="the presented license is not one of ours",
                )
            body = json.loads(request.presented[len(STANDALONE_MAGIC) :])
            return Outcome(kind="presented " + body["kind"], issuer=body["issuer"])
        body = {"kind": "temporary", "client": request.client_name, "issuer": self.issuer}
        return Outcome(
            kind="temporary",
            product="stand-alone demonstration license",
            issuer=self.issuer,
            license=STANDALONE_MAGIC + json.dumps(body, sort_keys=True).encode(),
        )
