"""Licensing utility <-> license server (docs/PROTOCOL.md §5.4).

Contract: the utility opens with a Hello whose envelope key is the administrator credential
created when the license server was set up; a license server refuses every admin request from
any other key with ACCESS_DENIED. Each request has one reply type (or an Error).
Activation by web or telephone is two steps, as in the wizard: `AdminActivate` returns the
code to take to the Clearinghouse; `AdminCompleteActivation` takes the code it gives back.
Listings (key packs, licenses, users) are paged (protocol/paging.py): each request carries
its filters, a `cursor` and a `limit`; each reply one page and `next_cursor`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..domain import (
    ActivationMethod,
    ActivationState,
    CalProduct,
    LicenseKind,
    LicenseStatus,
    Program,
)
from ..names import Kind
from ..paging import MAX_PAGE_ITEMS
from .base import (
    Conversation,
    Message,
    MessageType,
    message,
    require_len,
    require_names,
    require_range,
    require_text,
)
from .records import ContactInfo, IssuedLicenseInfo, KeyPackInfo, ServerStatus, UserUsage

CODE_MAX = 64  # any code an operator types: license codes, numbers, tokens, IDs
_CODE_FIELDS = (
    "retail_code",
    "license_number",
    "authorization_number",
    "agreement_number",
    "keypack_code",
    "transition_token",
)

ADM = Conversation.ADMIN


class ActivationAction(enum.StrEnum):
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    REACTIVATE = "reactivate"


@message(MessageType.ADMIN_GET_STATUS, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminGetStatus(Message):
    """Utility -> LS: properties, status and activation state."""


@message(MessageType.ADMIN_STATUS, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminStatus(Message):
    status: ServerStatus


@message(MessageType.ADMIN_SET_PROPERTIES, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminSetProperties(Message):
    """Utility -> LS: the Required Information and Installation Method tabs."""

    contact: ContactInfo
    method: ActivationMethod


@message(MessageType.ADMIN_ACTIVATE, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminActivate(Message):
    """Utility -> LS: activate, deactivate or reactivate by a method. Reactivation needs a
    reason (KB814593)."""

    action: ActivationAction
    method: ActivationMethod
    reason: str = ""

    def check(self) -> None:
        require_text(self.reason, "reason")


@message(MessageType.ADMIN_ACTIVATION_STEP, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminActivationStep(Message):
    """LS -> utility: what to take to the Clearinghouse (web page or telephone)."""

    action: ActivationAction
    method: ActivationMethod
    state: ActivationState
    product_id: str
    request_code: str  # groups of five characters; read aloud or typed into the web page
    instructions: str


@message(MessageType.ADMIN_COMPLETE_ACTIVATION, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminCompleteActivation(Message):
    """Utility -> LS: the License Server ID or confirmation code the Clearinghouse gave."""

    action: ActivationAction
    code: str

    def check(self) -> None:
        require_text(self.code, "code", CODE_MAX)


@message(MessageType.ADMIN_INSTALL_KEYPACK, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminInstallKeyPack(Message):
    """Utility -> LS: install licenses. Which fields matter depends on `program`; a web or
    telephone install passes `keypack_code`, a transition redemption `transition_token`."""

    program: Program
    product: CalProduct
    count: int
    method: ActivationMethod = ActivationMethod.AUTOMATIC
    retail_code: str = ""
    license_number: str = ""
    authorization_number: str = ""
    agreement_number: str = ""
    keypack_code: str = ""
    transition_token: str = ""

    def check(self) -> None:
        require_range(self.count, "count", 0, 1_000_000)
        for name in _CODE_FIELDS:
            require_text(getattr(self, name), name, CODE_MAX)


@message(MessageType.ADMIN_KEYPACK_INSTALLED, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminKeyPackInstalled(Message):
    """LS -> utility: the key pack now installed. `already_installed`: the same grant was
    installed before (a retry, or the same code again); nothing changed."""

    keypack: KeyPackInfo
    event_ids: tuple[int, ...] = ()
    already_installed: bool = False


def _check_page_request(limit: int, machine: str = "", user: str = "") -> None:
    require_range(limit, "limit", 0, MAX_PAGE_ITEMS)
    require_len(machine, "machine", 0, 64)
    require_len(user, "user", 0, 256)


@message(MessageType.ADMIN_LIST_KEYPACKS, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminListKeyPacks(Message):
    """Utility -> LS: one page of the installed key packs, by id."""

    product: CalProduct | None = None
    cursor: bytes = b""
    limit: int = 0

    def check(self) -> None:
        _check_page_request(self.limit)


@message(MessageType.ADMIN_KEYPACKS, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminKeyPacks(Message):
    keypacks: tuple[KeyPackInfo, ...]
    next_cursor: bytes = b""


@message(MessageType.ADMIN_LIST_LICENSES, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminListLicenses(Message):
    """Utility -> LS: one page of the issued licenses (LSREPORT), oldest first, filtered by
    the server: issue date in [since, until], product, kind, status, device, user."""

    since: int = 0
    until: int = 0  # 0: no upper bound
    product: CalProduct | None = None
    kind: LicenseKind | None = None
    status: LicenseStatus | None = None
    machine: str = ""  # the device's computer name, any case; "": every device
    user: str = ""  # any case; "": every user
    cursor: bytes = b""
    limit: int = 0

    def check(self) -> None:
        _check_page_request(self.limit, self.machine, self.user)


@message(MessageType.ADMIN_LICENSES, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminLicenses(Message):
    licenses: tuple[IssuedLicenseInfo, ...]
    next_cursor: bytes = b""


@message(MessageType.ADMIN_LIST_USERS, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminListUsers(Message):
    """Utility -> LS: one page of the per-user report (who used a User CAL), by user."""

    since: int = 0
    until: int = 0  # 0: no upper bound
    product: CalProduct | None = None
    user: str = ""
    cursor: bytes = b""
    limit: int = 0

    def check(self) -> None:
        _check_page_request(self.limit, user=self.user)


@message(MessageType.ADMIN_USERS, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminUsers(Message):
    users: tuple[UserUsage, ...]
    next_cursor: bytes = b""


@message(MessageType.ADMIN_SET_POLICY, ADM)
@dataclass(frozen=True, slots=True, kw_only=True)
class AdminSetPolicy(Message):
    """Utility -> LS: License Server Security Group and Prevent License Upgrade policies.
    None leaves a policy unchanged."""

    security_group_enabled: bool | None = None
    prevent_upgrade: bool | None = None
    add_members: tuple[str, ...] = ()
    remove_members: tuple[str, ...] = ()

    def check(self) -> None:
        require_names(self.add_members, "add_members", Kind.MEMBER)
        require_names(self.remove_members, "remove_members", Kind.MEMBER)
