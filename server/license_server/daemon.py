"""One running license server: storage, activation, issuance, both conversations, sweeper.

Contract:
- `LicenseServer(config, clock)` opens (or creates) the data directory: the server key
  (`server.key`), the administrator credential (`admin.key`, mode 0600, created on first
  start), the database and the temporary self-signed certificate of an unactivated server.
- `serve` (Trio-shaped, for `nursery.start`) starts the store's writer, the lease sweeper
  and ONE listener that serves the licensing and the admin conversations (the Hello says
  which; runtime.service.Server `more_services`). It reports the bound address, registers
  it in the directory (and publishes an enterprise server for its site) when one is
  configured, reads the License Server Security Group from the directory once (membership
  changes took effect at service restart, TechNet cc758063), and runs until `shutdown()`.
- The sweeper returns expired permanent leases to their pools and marks expired temporaries,
  waking at the next expiry or every `sweep_interval_ms` of virtual time.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from pathlib import Path

import trio
from tslic.protocol.domain import (
    SECURITY_GROUP_NAMES,
    CalProduct,
    LicenseKind,
    LicenseStatus,
    PeerRole,
    ServerRole,
)
from tslic.protocol.errors import ErrorCode, ServiceError, TslicError
from tslic.protocol.events import LsEvent
from tslic.protocol.messages import Conversation
from tslic.protocol.messages.directory import DirGroup, DirGroupMembers, DirPublish, DirRegister
from tslic.protocol.pki import raw_public_key
from tslic.runtime.clock import Clock
from tslic.runtime.files import ensure_dir, load_or_create_key
from tslic.runtime.peer import PeerStream, open_peer
from tslic.runtime.service import Limits, Server

from .activation import Activation
from .admin import AdminService
from .config import Config, event
from .db import keypacks, licenses, settings
from .issuance import Issuer
from .metrics import Metrics
from .policies import Policies
from .service import LicensingService
from .store import Store

log = logging.getLogger(__name__)

ADMIN_KEY = "admin.key"
SERVER_KEY = "server.key"


def init_data_dir(data_dir: Path) -> Path:
    """Create the data directory and the administrator credential; return its path."""
    ensure_dir(data_dir)
    load_or_create_key(data_dir / ADMIN_KEY)
    return data_dir / ADMIN_KEY


def listen_error(host: str, port: int, exc: OSError) -> ServiceError:
    """A bind failure as one sentence (a busy port, an address not on this machine)."""
    return ServiceError(
        f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another address"
        " or port; port 0 picks a free one)",
        code=ErrorCode.INVALID_FIELD,
    )


class LicenseServer:
    """Everything one license server process holds."""

    def __init__(self, config: Config, clock: Clock, *, limits: Limits | None = None) -> None:
        self.config = config
        self.clock = clock
        ensure_dir(config.data_dir)
        self.key = load_or_create_key(config.data_dir / SERVER_KEY)
        self.admin_key_path = init_data_dir(config.data_dir)
        self.admin_public = raw_public_key(load_or_create_key(self.admin_key_path))
        self.store = Store(config.data_dir, threaded=config.store_threads)
        self.activation = Activation(config, self.store, clock, self.key)
        self.activation.load()
        # The group's members as read at start (SEC-14): the local list (in _load_policies)
        # and the directory group (_announce_to_directory). Changes wait for the next start.
        self.policies = Policies(server_name=config.name)
        self.issuer = Issuer(config, self.activation, self.policies, random.Random(config.seed))
        self.metrics = Metrics()
        self.store.run_now(self._load_policies)
        self.licensing = LicensingService(
            config=config,
            clock=clock,
            store=self.store,
            activation=self.activation,
            issuer=self.issuer,
            policies=self.policies,
            metrics=self.metrics,
        )
        self.admin = AdminService(
            config=config,
            clock=clock,
            store=self.store,
            activation=self.activation,
            policies=self.policies,
            metrics=self.metrics,
            admin_public=self.admin_public,
        )
        self.server = Server(
            self.licensing,
            key=self.key,
            clock=clock,
            limits=limits,
            on_error=self.metrics.error,
            more_services={Conversation.ADMIN: self.admin},
        )
        self.metrics.bind_counters(self.server.counters)
        self.address = ""

    @property
    def directory_members(self) -> frozenset[str]:
        """The directory's License Server Security Group, as read at start."""
        return self.policies.directory_members

    def _load_policies(self, db: sqlite3.Connection) -> None:
        for key, override in (
            ("security_group", self.config.security_group),
            ("prevent_upgrade", self.config.prevent_upgrade),
        ):
            if override is not None:
                settings.set_meta(db, key, override)
        self.policies.security_group = settings.meta_flag(db, "security_group")
        self.policies.local_members = frozenset(settings.security_group_members(db))
        self.policies.prevent_upgrade = settings.meta_flag(db, "prevent_upgrade")
        self.metrics.set_pools(keypacks.available_by_product(db, self.clock.now()))

    # ---- running ----------------------------------------------------------------------------

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until `shutdown()`; report the bound address."""
        async with trio.open_nursery() as outer:
            await outer.start(self.store.run)
            outer.start_soon(self.sweeper)
            async with trio.open_nursery() as inner:
                try:
                    self.address = await inner.start(self.server.serve, host, port)
                except OSError as exc:
                    raise listen_error(host, port, exc) from None
                await self._announce_to_directory()
                event(LsEvent.STARTED, f"license server {self.config.name} started")
                task_status.started(self.address)
            outer.cancel_scope.cancel()

    def shutdown(self) -> None:
        self.server.shutdown()

    async def _announce_to_directory(self) -> None:
        cfg = self.config
        if not cfg.directory:
            return
        try:
            with trio.fail_after(cfg.remote_timeout):
                async with open_peer(
                    cfg.directory,
                    conversation=Conversation.DIRECTORY,
                    key=self.key,
                    clock=self.clock,
                    role=PeerRole.LICENSE_SERVER,
                    name=cfg.name,
                    version=int(cfg.version),
                ) as stream:
                    await stream.request(DirRegister(computer=cfg.name, address=self.address))
                    self.policies.directory_members = await self._read_group(stream)
                    if cfg.role is ServerRole.ENTERPRISE:
                        await stream.request(
                            DirPublish(
                                site=cfg.site,
                                computer=cfg.name,
                                credential=cfg.enterprise_credential,
                            )
                        )
                        event(LsEvent.PUBLISHED, f"{cfg.name} published in site {cfg.site}")
        except (TslicError, trio.TooSlowError) as exc:
            # Terminal servers can still be pointed at us directly; say why discovery fails.
            log.warning("could not register with the directory at %s: %s", cfg.directory, exc)

    async def _read_group(self, stream: PeerStream) -> frozenset[str]:
        """The License Server Security Group in the directory: local to this computer, or
        domain-local when it is a domain controller; either spelling (SEC-3). Read at start,
        as membership changes took effect only when the service restarted."""
        members: set[str] = set()
        for scope in (self.config.name, self.config.domain):
            for spelling in SECURITY_GROUP_NAMES:
                try:
                    reply = await stream.request(DirGroupMembers(group=f"{scope}\\{spelling}"))
                except ServiceError:
                    continue  # no such group in this scope: the other spelling may exist
                if isinstance(reply, DirGroup):
                    members.update(m.upper() for m in reply.members)
                    break
        return frozenset(members)

    async def sweeper(self) -> None:
        """Return expired leases to the pool, forever (virtual time)."""
        while True:
            now = self.clock.now()
            next_expiry = await self.sweep(now)
            wake = now + self.config.sweep_interval_ms
            if next_expiry:
                wake = min(wake, next_expiry)
            await self.clock.sleep_until(max(wake, now + 1))

    async def sweep(self, now: int) -> int:
        """Expire what has run out at `now`; return the next expiry (0: none)."""

        def op(db: sqlite3.Connection) -> tuple[int, dict[CalProduct, int]]:
            expired = licenses.expired_licenses(db, now)
            for lic in expired:
                if lic.kind is LicenseKind.PERMANENT and not lic.product.is_per_user:
                    keypacks.return_to_pool(db, lic.keypack_id)
                licenses.set_license_status(db, lic.license_id, LicenseStatus.EXPIRED)
            if expired:
                settings.audit(db, at=now, what="expired", actor="sweeper", count=len(expired))
            return licenses.next_expiry(db), keypacks.available_by_product(db, now)

        next_expiry, pools = await self.store.run_op(op)
        self.metrics.set_pools(pools)
        return next_expiry
