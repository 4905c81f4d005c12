"""The license server's configuration and its event log helper.

Contract: `Config` is what `tslic server` was started with (immutable); settings an
administrator can change at run time (policies, contact details) live in the database and
only take their *initial* value from here. `event()` writes one structured log record per
license-server event with its real id where one is documented (TechNet cc775305; the
2008 numbering, as protocol/policy.py explains), so a log shipper can select on `event_id`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from tslic.protocol.clock import MS_PER_DAY
from tslic.protocol.domain import DEFAULT_SITE, CalProduct, ServerRole, WindowsVersion
from tslic.protocol.errors import ErrorCode, ServiceError

events_log = logging.getLogger("tslic.license_server.events")

ALL_PRODUCTS: tuple[CalProduct, ...] = (
    CalProduct.W2000_TS_CAL,
    CalProduct.W2003_DEVICE_CAL,
    CalProduct.W2003_USER_CAL,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerServer:
    """Another license server this one may refer terminal servers to (`--peer`)."""

    name: str
    address: str
    products: tuple[CalProduct, ...] = ALL_PRODUCTS

    @classmethod
    def parse(cls, text: str) -> PeerServer:
        """NAME=HOST:PORT[=PRODUCT,PRODUCT...] (products default to every CAL type).

        Raises:
            ServiceError: INVALID_FIELD with the expected form.
        """
        parts = text.split("=")
        if len(parts) not in (2, 3) or not parts[0] or ":" not in parts[1]:
            raise ServiceError(
                f"--peer {text!r} is not NAME=HOST:PORT or NAME=HOST:PORT=PRODUCT,...",
                code=ErrorCode.INVALID_FIELD,
            )
        products = ALL_PRODUCTS
        if len(parts) == 3:
            try:
                products = tuple(CalProduct(p.strip()) for p in parts[2].split(",") if p.strip())
            except ValueError:
                names = ", ".join(p.value for p in ALL_PRODUCTS)
                raise ServiceError(
                    f"--peer {text!r}: products must be among {names}",
                    code=ErrorCode.INVALID_FIELD,
                ) from None
        return cls(name=parts[0].upper(), address=parts[1], products=products)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Start-up configuration of one license server."""

    name: str
    version: WindowsVersion
    role: ServerRole = ServerRole.DOMAIN
    domain: str = "TSLIC"
    site: str = DEFAULT_SITE
    data_dir: Path
    clearinghouse: str = ""  # HOST:PORT
    clearinghouse_web: str = ""  # its web pages' URL, for the Web Browser method's instructions
    directory: str = ""  # HOST:PORT
    trust_root: x509.Certificate | None = None
    seed: int | None = None
    peers: tuple[PeerServer, ...] = ()
    security_group: bool | None = None  # None: keep what the database says (default off)
    prevent_upgrade: bool | None = None
    enterprise_credential: str = ""
    sweep_interval_ms: int = MS_PER_DAY
    remote_timeout: float = 30.0  # real seconds for the Clearinghouse or directory to answer
    store_threads: bool = True  # False: SQLite on the Trio thread (tests with autojump_clock)


def event(event_id: int, message: str, *, level: int = logging.INFO, **fields: object) -> None:
    """Log one license-server event as a structured record (`record.event_id`, `fields`)."""
    events_log.log(
        level,
        "event %d: %s",
        event_id,
        message,
        extra={"event_id": int(event_id), "event_fields": fields, "event_text": message},
    )
