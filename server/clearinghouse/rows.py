"""Rows of the Clearinghouse database: the schema and the values read back from it.

Contract: plain frozen dataclasses, one per table that callers read; `SCHEMA` creates every
table if missing (so an old data directory is upgraded in place when tables are added).
Times are virtual epoch-ms; codes are stored normalized (no hyphens, upper case).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from tslic.protocol.domain import ActivationMethod, ActivationState, CalProduct, Program
from tslic.protocol.messages.records import ContactInfo

DB_NAME = "clearinghouse.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS entitlements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    program TEXT NOT NULL,
    product TEXT NOT NULL,
    total INTEGER NOT NULL CHECK (total > 0),
    used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= total),
    retail_code TEXT UNIQUE,
    license_number TEXT NOT NULL DEFAULT '',
    authorization_number TEXT NOT NULL DEFAULT '',
    agreement_number TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS xp_licenses (
    product_key TEXT PRIMARY KEY,
    acquired_at INTEGER NOT NULL,
    channel TEXT NOT NULL,
    program TEXT NOT NULL DEFAULT '',
    numbers TEXT NOT NULL DEFAULT '',
    redeemed_at INTEGER,
    redemption TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS activations (
    license_server_id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    product_id TEXT NOT NULL,
    method TEXT NOT NULL,
    contact TEXT NOT NULL,
    state TEXT NOT NULL,
    cert BLOB NOT NULL,
    cert_serial TEXT NOT NULL,
    activated_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS revoked_certs (
    serial TEXT PRIMARY KEY,
    license_server_id TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    license_server_id TEXT NOT NULL,
    action TEXT NOT NULL,
    method TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    code TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('activation', 'keypack')),
    license_server_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    grant_blob BLOB,
    created_at INTEGER NOT NULL,
    redeemed_at INTEGER
);
CREATE TABLE IF NOT EXISTS grants (
    grant_id INTEGER PRIMARY KEY AUTOINCREMENT,
    license_server_id TEXT NOT NULL,
    product TEXT NOT NULL,
    program TEXT NOT NULL,
    count INTEGER NOT NULL,
    source TEXT NOT NULL,
    issued_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transition_tokens (
    token TEXT PRIMARY KEY,
    product TEXT NOT NULL,
    count INTEGER NOT NULL,
    email TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    redeemed_at INTEGER,
    license_server_id TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Entitlement:
    """A purchase: a retail pack, an Open License or an agreement, for one product."""

    id: int
    program: Program
    product: CalProduct
    total: int
    used: int
    retail_code: str
    license_number: str
    authorization_number: str
    agreement_number: str
    created_at: int

    @property
    def remaining(self) -> int:
        return self.total - self.used

    @property
    def reference(self) -> str:
        """The numbers a person would quote for this purchase."""
        if self.program is Program.RETAIL:
            return self.retail_code
        if self.program is Program.OPEN_LICENSE:
            return f"{self.license_number}/{self.authorization_number}"
        return self.agreement_number


@dataclass(frozen=True, slots=True, kw_only=True)
class XpLicense:
    """A Windows XP Professional license, for the transition offer (KB823313)."""

    product_key: str
    acquired_at: int
    channel: str  # retail | oem | volume
    program: str  # for volume licenses: the program and numbers they were bought under
    numbers: str
    redeemed_at: int | None
    redemption: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Activation:
    """An activated (or deactivated) license server."""

    license_server_id: str
    public_key: bytes
    name: str
    version: int
    product_id: str
    method: ActivationMethod
    contact: ContactInfo
    state: ActivationState
    cert: bytes
    cert_serial: str
    activated_at: int
    changed_at: int


class ClaimPayload(TypedDict, total=False):
    """What a claim ticket remembers (stored as JSON, written only by this package).

    An activation claim holds action, method, product_id and contact (plus license_server_id
    and reason for a reactivation); a key pack claim holds grant_id."""

    action: str  # activate | reactivate
    method: str
    product_id: str
    contact: dict[str, str]
    reason: str
    license_server_id: str
    grant_id: int


class RevokedRow(TypedDict):
    """A row of `revoked_certs`."""

    serial: str
    license_server_id: str
    revoked_at: int
    reason: str


class EventRow(TypedDict):
    """A row of `events`; `detail` is a JSON object as text."""

    id: int
    at: int
    license_server_id: str
    action: str
    method: str
    detail: str


class GrantRow(TypedDict):
    """A row of `grants`."""

    grant_id: int
    license_server_id: str
    product: str
    program: str
    count: int
    source: str
    issued_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A claim ticket: a code given by the web page or the telephone, redeemed once over TCP."""

    code: str
    kind: str  # activation | keypack
    license_server_id: str
    payload: ClaimPayload
    grant_blob: bytes | None
    created_at: int
    redeemed_at: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionToken:
    """License tokens sent by e-mail for retail/OEM transition CALs (KB823313 method 2)."""

    token: str
    product: CalProduct
    count: int
    email: str
    created_at: int
    redeemed_at: int | None
    license_server_id: str
