"""The agent's persisted state: key, certificate, discovery cache, grace period, counts.

Contract:
- Everything lives in the `--data` directory and is written atomically (runtime.files), so a
  restart (or a crash) keeps the certificate, the discovery cache, the grace period and the
  license counts: `ts-key.pem` (the terminal server's Ed25519 key, created on first start),
  `ts-cert.pem` (its chain from the license server, root first), `state.json` (the rest).
  The event log is `events.jsonl` (events.py).
- `AgentState.load` refuses a data directory written by an agent of another version or
  (from 2000) mode with a clear `ServiceError`: a terminal server does not change product.
- Times are virtual epoch-ms; the grace period is kept as `protocol.grace.GracePeriod`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypedDict

import trio
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.clock import from_datetime, to_datetime
from tslic.protocol.codec import Unvalidated
from tslic.protocol.domain import Connectivity, HowDiscovered, LicensingMode, WindowsVersion
from tslic.protocol.errors import ErrorCode, ServiceError, StorageError
from tslic.protocol.grace import GracePeriod
from tslic.protocol.pki import cert_to_der
from tslic.protocol.policy import GraceEnd
from tslic.runtime.files import (
    ensure_dir,
    load_or_create_key,
    read_certs,
    read_json,
    write_certs,
    write_json,
)

STATE_FILE = "state.json"
KEY_FILE = "ts-key.pem"
CERT_FILE = "ts-cert.pem"
COUNT_KEYS = (
    "connections",
    "temporary_issued",
    "permanent_issued",
    "upgraded",
    "renewed",
    "echoed",
    "valid_client",
    "refused",
    "marked_validated",
)


class ServerJson(TypedDict):
    """A `ServerEntry` in state.json."""

    name: str
    address: str
    how: str
    connectivity: str
    reachable: bool
    issuing: bool
    version: int
    last_checked: int
    detail: str


@dataclass(slots=True, kw_only=True)
class ServerEntry:
    """One license server in the discovery cache (Win32_TSDiscoveredLicenseServer, §2.4)."""

    name: str
    address: str
    how: HowDiscovered
    connectivity: Connectivity = Connectivity.UNKNOWN
    reachable: bool = False  # IsLSAvailable: a conversation could be opened
    issuing: bool = False  # IssuingCALs: this terminal server is served by it
    version: int = 0  # the license server's version, once it answered
    last_checked: int = 0
    detail: str = ""

    def to_json(self) -> ServerJson:
        return {
            "name": self.name,
            "address": self.address,
            "how": self.how.name.lower(),
            "connectivity": self.connectivity.name,
            "reachable": self.reachable,
            "issuing": self.issuing,
            "version": self.version,
            "last_checked": self.last_checked,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Unvalidated]) -> ServerEntry:
        return cls(
            name=str(value["name"]),
            address=str(value.get("address", "")),
            how=HowDiscovered[str(value["how"]).upper()],
            connectivity=Connectivity[str(value.get("connectivity", "UNKNOWN"))],
            reachable=bool(value.get("reachable", False)),
            issuing=bool(value.get("issuing", False)),
            version=int(value.get("version", 0)),
            last_checked=int(value.get("last_checked", 0)),
            detail=str(value.get("detail", "")),
        )


def _ms(when: datetime | None) -> int | None:
    return None if when is None else from_datetime(when)


class GraceJson(TypedDict):
    """The grace period in state.json."""

    started_at: int | None
    ended_at: int | None
    end_rule: str
    end_reason: str | None


def grace_to_json(grace: GracePeriod) -> GraceJson:
    return {
        "started_at": _ms(grace.started_at),
        "ended_at": _ms(grace.ended_at),
        "end_rule": str(grace.end_rule),
        "end_reason": None if grace.end_reason is None else str(grace.end_reason),
    }


def grace_from_json(version: WindowsVersion, value: Mapping[str, Unvalidated]) -> GracePeriod:
    def when(key: str) -> datetime | None:
        raw = value.get(key)
        return None if raw is None else to_datetime(int(raw))

    reason = value.get("end_reason")
    return GracePeriod(
        version=version,
        started_at=when("started_at"),
        ended_at=when("ended_at"),
        end_rule=GraceEnd(value.get("end_rule", GraceEnd.FIRST_PERMANENT_CAL)),
        end_reason=None if reason is None else GraceEnd(reason),
    )


@dataclass(slots=True, kw_only=True)
class AgentState:
    """The mutable persisted state of one agent; call `save()` after changing it."""

    data_dir: Path
    name: str
    version: WindowsVersion
    mode: LicensingMode
    grace: GracePeriod
    grace_events: set[int] = field(default_factory=set)
    servers: list[ServerEntry] = field(default_factory=list)
    current: str | None = None
    last_discovery: int = 0
    discovery_events: set[int] = field(default_factory=set)  # 1010/1026/1027 logged this outage
    counts: dict[str, int] = field(default_factory=dict)
    per_user_noted: bool = False
    cert_issuer: str = ""
    clock_spec: str = "real"  # the virtual clock the agent runs on, for `status` offline
    # Group saves (save_grouped): changes asked to be saved, and how many are on disk.
    _changes: int = field(default=0, repr=False, compare=False)
    _written: int = field(default=0, repr=False, compare=False)
    _save_lock: trio.Lock = field(default_factory=trio.Lock, repr=False, compare=False)
    # The chain as last read or stored (every greeting and request presents it).
    _chain: list[x509.Certificate] | None = field(default=None, repr=False, compare=False)
    _chain_der: tuple[bytes, ...] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(
        cls,
        data_dir: Path,
        *,
        name: str,
        version: WindowsVersion,
        mode: LicensingMode,
        grace_end: GraceEnd,
    ) -> AgentState:
        """Load the state in `data_dir`, or start a fresh one.

        Raises:
            ServiceError: the directory belongs to an agent of another version or name.
            StorageError: the directory cannot be created or a file is unreadable.
        """
        ensure_dir(data_dir)
        raw = read_json(data_dir / STATE_FILE)
        if raw is None:
            grace = GracePeriod(version=version, end_rule=grace_end)
            return cls(data_dir=data_dir, name=name, version=version, mode=mode, grace=grace)
        try:
            stored_version = WindowsVersion(int(raw["version"]))
            if stored_version is not version or str(raw["name"]).casefold() != name.casefold():
                raise ServiceError(
                    f"{data_dir} holds the state of {raw['name']} ({stored_version.label}); "
                    f"start {name} ({version.label}) with another --data directory",
                    code=ErrorCode.INVALID_FIELD,
                )
            grace = grace_from_json(version, dict(raw.get("grace", {})))
            grace = dataclasses.replace(grace, end_rule=grace_end)
            return cls(
                data_dir=data_dir,
                name=name,
                version=version,
                mode=mode,
                grace=grace,
                grace_events={int(x) for x in raw.get("grace_events", [])},
                servers=[ServerEntry.from_json(s) for s in raw.get("servers", [])],
                current=raw.get("current"),
                last_discovery=int(raw.get("last_discovery", 0)),
                discovery_events={int(x) for x in raw.get("discovery_events", [])},
                counts={str(k): int(v) for k, v in dict(raw.get("counts", {})).items()},
                per_user_noted=bool(raw.get("per_user_noted", False))
                and LicensingMode(raw.get("mode", mode)) is LicensingMode.PER_USER,
                cert_issuer=str(raw.get("cert_issuer", "")),
                clock_spec=str(raw.get("clock", "real")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise StorageError(
                f"{data_dir / STATE_FILE} is damaged ({exc}); restore it or delete it"
            ) from None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": int(self.version),
            "mode": str(self.mode),
            "grace": grace_to_json(self.grace),
            "grace_events": sorted(self.grace_events),
            "servers": [s.to_json() for s in self.servers],
            "current": self.current,
            "last_discovery": self.last_discovery,
            "discovery_events": sorted(self.discovery_events),
            "counts": {k: self.counts.get(k, 0) for k in COUNT_KEYS},
            "per_user_noted": self.per_user_noted,
            "cert_issuer": self.cert_issuer,
            "clock": self.clock_spec,
        }

    def save(self) -> None:
        """Write state.json atomically. Raises StorageError."""
        self._changes += 1
        target = self._changes
        write_json(self.data_dir / STATE_FILE, self.to_json())
        self._written = max(self._written, target)

    async def save_grouped(self) -> None:
        """`save()`, shared by the clients that finish together: one atomic write (two
        fsyncs, which block the event loop) for every change made before it started, so
        concurrent logons do not each pay for one. Returns once this caller's changes are
        on disk. Raises StorageError."""
        self._changes += 1
        target = self._changes
        await trio.lowlevel.checkpoint()  # the others finishing in this round join the group
        async with self._save_lock:
            if self._written < target:
                self.save()

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def entry(self, name: str) -> ServerEntry | None:
        for server in self.servers:
            if server.name.casefold() == name.casefold():
                return server
        return None

    # ---- key and certificate ------------------------------------------------------------

    def key(self) -> Ed25519PrivateKey:
        """The terminal server's key, created on first use (mode 0600)."""
        return load_or_create_key(self.data_dir / KEY_FILE)

    def cert_chain(self) -> list[x509.Certificate]:
        """The stored chain (root first), or [] before the first certificate."""
        if self._chain is None:
            path = self.data_dir / CERT_FILE
            self._chain = read_certs(path) if path.exists() else []
        return list(self._chain)

    def chain_der(self) -> tuple[bytes, ...]:
        """The stored chain in DER, as a Hello or a LicenseRequest carries it."""
        if self._chain_der is None:
            self._chain_der = tuple(cert_to_der(c) for c in self.cert_chain())
        return self._chain_der

    def store_chain(self, chain: list[x509.Certificate], issuer: str) -> None:
        write_certs(self.data_dir / CERT_FILE, chain)
        self._chain, self._chain_der = list(chain), None
        self.cert_issuer = issuer
        self.save()


def load_for_status(data_dir: Path) -> dict[str, Unvalidated]:
    """The raw state.json of an agent, for `tslic agent status`.

    Raises:
        ServiceError: NOT_FOUND if the directory holds no agent state.
    """
    raw = read_json(data_dir / STATE_FILE)
    if raw is None:
        raise ServiceError(
            f"{data_dir} holds no agent state (start `tslic agent --data {data_dir}` first)",
            code=ErrorCode.NOT_FOUND,
        )
    if not isinstance(raw, dict):
        raise StorageError(f"{data_dir / STATE_FILE} is damaged; restore it or delete it")
    return raw
