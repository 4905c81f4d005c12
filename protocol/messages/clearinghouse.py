"""License server (or licensing utility) <-> Clearinghouse (docs/PROTOCOL.md §5.5).

Contract: the automatic method sends these directly. The web and telephone methods carry the
same data by hand; the code the operator types back into the utility is a claim ticket that
the license server redeems with `ClaimActivation` / `ClaimKeyPack` (the real codes carried
the data itself; an Ed25519 certificate does not fit in 35 typed characters, so tslic keeps
the hand step and moves the bytes over the automatic channel; PROTOCOL.md says so).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain import ActivationMethod, CalProduct, Program, WindowsVersion
from ..names import Kind
from .admin import _CODE_FIELDS, CODE_MAX, ActivationAction
from .base import (
    Conversation,
    Message,
    MessageType,
    message,
    require_len,
    require_name,
    require_range,
    require_text,
)
from .records import ContactInfo

CH = Conversation.CLEARINGHOUSE


@message(MessageType.CH_ACTIVATE, CH)
@dataclass(frozen=True, slots=True, kw_only=True)
class ChActivate(Message):
    """LS -> CH: activate (or reactivate) this license server's key."""

    action: ActivationAction
    method: ActivationMethod
    product_id: str
    name: str
    version: WindowsVersion
    public_key: bytes
    contact: ContactInfo
    reason: str = ""
    license_server_id: str = ""  # for reactivation

    def check(self) -> None:
        require_len(self.public_key, "public_key", 32)
        require_name(self.product_id, "product_id", Kind.PRODUCT_ID)
        require_name(self.name, "name", Kind.COMPUTER)
        require_text(self.reason, "reason")
        require_text(self.license_server_id, "license_server_id", CODE_MAX)


@message(MessageType.CH_ACTIVATED, CH)
@dataclass(frozen=True, slots=True, kw_only=True)
class ChActivated(Message):
    """CH -> LS: the license server's certificate chain (root first) and its id."""

    license_server_id: str
    cert_chain: tuple[bytes, ...]


@message(MessageType.CH_DEACTIVATE, CH)
@dataclass(frozen=True, slots=True, kw_only=True)
class ChDeactivate(Message):
    """LS -> CH: deactivate (automatic or telephone only, KB814593)."""

    license_server_id: str
    method: ActivationMethod
    contact: ContactInfo

    def check(self) -> None:
        require_text(self.license_server_id, "license_server_id", CODE_MAX)


@message(MessageType.CH_DEACTIVATED, CH)
@dataclass(frozen=True, slots=True, kw_only=True)
class ChDeactivated(Message):
    license_server_id: str
    confirmation_code: str


@message(MessageType.CH_INSTALL_KEYPACK, CH)
@dataclass(frozen=True, slots=True, kw_only=True)
class ChInstallKeyPack(Message):
    """LS -> CH: validate a purchase and return a signed key pack."""

    license_server_id: str
    program: Program
    product: CalProduct
    count: int
    retail_code: str = ""
    license_number: str = ""
    authorization_number: str = ""
    agreement_number: str = ""
    transition_token: str = ""

    def check(self) -> None:
        require_range(self.count, "count", 0, 1_000_000)
        for name in ("license_server_id", *_CODE_FIELDS[:-2], "transition_token"):
            require_text(getattr(self, name), name, CODE_MAX)


@message(MessageType.CH_KEYPACK, CH)
@dataclass(frozen=True, slots=True, kw_only=True)
class ChKeyPack(Message):
    """CH -> LS: a key pack grant signed by the Clearinghouse root (licenses.py)."""

    grant: bytes
    keypack_code: str = ""


@message(MessageType.CH_CLAIM_ACTIVATION, CH)
@dataclass(frozen=True, slots=True, kw_only=True)
class ChClaimActivation(Message):
    """LS -> CH: redeem a License Server ID typed in after a web or telephone activation."""

    license_server_id_code: str
    public_key: bytes

    def check(self) -> None:
        require_len(self.public_key, "public_key", 32)
        require_text(self.license_server_id_code, "license_server_id_code", CODE_MAX)


@message(MessageType.CH_CLAIM_KEYPACK, CH)
@dataclass(frozen=True, slots=True, kw_only=True)
class ChClaimKeyPack(Message):
    """LS -> CH: redeem a license key pack code typed in after a web or telephone install."""

    license_server_id: str
    keypack_code: str

    def check(self) -> None:
        require_text(self.license_server_id, "license_server_id", CODE_MAX)
        require_text(self.keypack_code, "keypack_code", CODE_MAX)
