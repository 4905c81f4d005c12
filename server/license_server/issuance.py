"""The licensing decisions: certificates for terminal servers and licenses for their clients.

Contract (KB 823313, KB 822134, KB 813052, KB 287687, TechNet cc740046):
- Every decision is `policy.choose_license` applied to what the database knows about the
  device (its one temporary license, its permanent lease) and the pools of this server; the
  decision and what it writes (pool decrement, license row, audit, usage) run as ONE store
  operation, so two terminal servers can never take the same last CAL.
- Leases: a permanent Device CAL lasts `lease_days(rng)` = 52..89 days from a seedable
  `random.Random`; a presented permanent CAL is renewed once it is within 7 days of expiry;
  the sweeper returns expired leases to their pool. Temporaries last 90 days, once per device;
  `mark` (post-logon validation) lets the next request upgrade it to a permanent CAL.
- Per User: a User CAL is issued while a User CAL pack is installed, without decrementing it;
  who used it is recorded for the per-user report.
- With no CAL of the needed type and a peer known to hold that type (`--peer`), the answer is
  a `Referral` to that peer instead of a temporary license; it says whether the presented
  temporary (ours) was validated by a logon. A request forwarded with that statement and
  another activated server's genuine, unexpired temporary for the same device is decided as
  for a validated temporary here, so the device gets a permanent CAL (CAL-12).
- Refusals are `ServiceError`s with the policy's code and reason; events are logged with
  their ids (18 not activated, 21 no permanent license) and written to the audit log, as
  is every renewal or re-issue (a new license's own row is its record).
"""

from __future__ import annotations

import random
import sqlite3

from tslic.protocol.clock import MS_PER_DAY, to_datetime
from tslic.protocol.codec import trusted_builder
from tslic.protocol.domain import (
    CalProduct,
    LicenseKind,
    LicenseStatus,
    LicensingMode,
)
from tslic.protocol.errors import ErrorCode, ProtocolError, ServiceError
from tslic.protocol.events import LsEvent
from tslic.protocol.licenses import (
    license_body_wire,
    open_license,
    sign_license_wire,
    verify_license,
)
from tslic.protocol.messages.licensing import LicenseGranted, Referral, UpgradeLicenseRequest
from tslic.protocol.messages.records import ServerRef
from tslic.protocol.policy import (
    TEMPORARY_DAYS,
    DecisionFacts,
    DecisionKind,
    decide,
    decide_whatever_the_pools,
    lease_days,
    needs_renewal,
    permanent_products,
    should_refer,
)

from .activation import Activation
from .config import Config, PeerServer, event
from .db import keypacks, licenses, settings
from .db.licenses import LicenseRow
from .policies import Policies
from .records import LicenseAsk, Outcome, TerminalServer

# The reply is built from values already validated (the request's decoded fields, this
# server's rows and names), without re-checking them; so is the license document's body
# (`license_body_wire`) (issue 19).
_license_granted = trusted_builder(LicenseGranted)
_NO_PRODUCTS: frozenset[CalProduct] = frozenset()


class Issuer:
    """Licensing decisions of one license server."""

    def __init__(
        self, config: Config, activation: Activation, policies: Policies, rng: random.Random
    ) -> None:
        self.config = config
        self.activation = activation
        self.policies = policies  # prevent_upgrade, as the administrator sets it
        self.rng = rng
        # The next new license row's id (MAX(id) + 1, what SQLite would choose), known before
        # the INSERT so the row is written whole, signed blob included, in one statement.
        # Only this class inserts licenses; a refused or failed operation leaves a gap.
        self._next_license_id: int | None = None

    # ---- the store operation ----------------------------------------------------------------

    def decide(
        self, db: sqlite3.Connection, ts: TerminalServer, req: LicenseAsk, now: int
    ) -> Outcome:
        """Decide and record one license request (runs inside a store transaction)."""
        if isinstance(req, UpgradeLicenseRequest):  # the client presented a license
            shown, had_temporary, forwarded = req.license, False, req.temporary_validated
        else:
            shown, had_temporary, forwarded = b"", req.had_temporary, False
        # A device that holds no license of ours asks with IssueLicense and no temporary:
        # most often a new device, which has no rows to read.
        new = not (shown or had_temporary) and not licenses.device_known(db, req.hwid)
        rows = [] if new else licenses.licenses_of_device(db, req.hwid)
        # The guards below only skip calls that would return None / False at once: a new
        # device presents nothing and has no rows (most requests under load).
        presented = self._presented(req, shown, rows) if shown else None
        referred = presented is None and forwarded and self._referred_validated(req, shown, now)
        suitable = permanent_products(self.config.version, ts.version, req.mode)
        temp = lease = None
        if rows:
            temp = next((r for r in reversed(rows) if r.kind is LicenseKind.TEMPORARY), None)
            lease = next(
                (
                    r
                    for r in reversed(rows)
                    if r.kind is LicenseKind.PERMANENT
                    and r.status is LicenseStatus.ACTIVE
                    and r.product in suitable
                    and r.expires_at > now
                    and not r.product.is_per_user
                ),
                None,
            )
        # The pools are read below only if the decision depends on them; then the free CALs
        # are also the pool figures (metrics) unless this decision takes one.
        out = Outcome({})
        # A presented lease far from expiry: nothing to do (the client keeps it).
        if (
            presented is not None
            and presented is lease
            and lease.blob
            and not needs_renewal(to_datetime(lease.expires_at), to_datetime(now))
        ):
            out.reply = self._granted(lease, upgraded=False)
            return out
        per_user = req.mode is LicensingMode.PER_USER
        expired_temp = temp is not None and now >= temp.expires_at
        facts = DecisionFacts(
            ls_version=self.config.version,
            ls_activation=self.activation.state,
            ts_version=ts.version,
            ts_mode=req.mode,
            client_os=req.client_os,
            with_cals=_NO_PRODUCTS,
            prevent_upgrade=self.policies.prevent_upgrade,
            had_temporary=temp is not None or had_temporary or referred,
            temporary_validated=(temp is not None and temp.validated) or referred,
            temporary_expired=expired_temp or (temp is None and had_temporary),
            holds_permanent=lease is not None,
        )
        # choose_license, remembered (it is pure); without reading the pools where no pool
        # could change it (an unactivated server: issue 19).
        decision = decide_whatever_the_pools(facts)
        if decision is None:
            out.available = free = keypacks.available_by_product(db, now)
            pools = keypacks.installed_by_product(db, now) if per_user else free
            cals = frozenset([p for p, count in pools.items() if count > 0])
            decision = decide(facts._replace(with_cals=cals))
        events: tuple[int, ...] = ()  # named in the reply
        if decision.event_id is not None:
            events = (int(decision.event_id),)
            out.events = ((events[0], self._event_text(decision.event_id, ts, req)),)
        peer = self._peer_for(decision.missing) if should_refer(decision) else None
        if peer is not None and decision.missing is not None:
            out.reply = Referral(
                product=decision.missing,
                servers=(ServerRef(name=peer.name, address=peer.address),),
                reason=f"This license server has no {decision.missing.label} left; license"
                f" server {peer.name} has them (TS licensing FAQ).",
                # The target cannot know that a logon validated our temporary: say so.
                temporary_validated=(
                    presented is not None
                    and presented is temp
                    and temp.validated
                    and now < temp.expires_at
                ),
            )
        elif decision.kind is DecisionKind.REFUSE:
            code = decision.error or ErrorCode.NO_LICENSE_AVAILABLE
            out.refusal = ServiceError(decision.reason, code=code)
        elif decision.kind is DecisionKind.TEMPORARY:
            if decision.keeps_existing and temp is not None and temp.blob:
                out.reply = self._granted(temp, upgraded=False, event_ids=events)
            else:
                product = decision.product or suitable[0]
                expiry = now + TEMPORARY_DAYS * MS_PER_DAY
                row = self._insert(db, ts, req, now, LicenseKind.TEMPORARY, product, expiry, 0)
                out.reply = self._granted(row, upgraded=False, event_ids=events)
                out.issued = (product, LicenseKind.TEMPORARY)
        elif decision.kind is DecisionKind.BUILT_IN:
            product = CalProduct.W2000_BUILT_IN
            old = next((r for r in rows if r.kind is LicenseKind.BUILT_IN), None)
            row = self._write(db, ts, req, now, LicenseKind.BUILT_IN, product, 0, 0, old)
            out.reply = self._granted(
                row, upgraded=presented is not None and old is None, event_ids=events
            )
            out.issued = (product, LicenseKind.BUILT_IN)
        elif decision.product is None and lease is not None:  # renewal of the lease (LEASE-4)
            expiry = now + self._lease_ms()
            row = self._write(
                db, ts, req, now, LicenseKind.PERMANENT, lease.product, expiry, 0, lease
            )
            out.reply = self._granted(row, upgraded=True, event_ids=events)
        elif decision.product is not None:
            self._permanent(db, ts, req, now, decision.product, temp, events, out)
        else:  # choose_license never returns this combination
            out.refusal = ServiceError(decision.reason, code=ErrorCode.INTERNAL_ERROR)
        for event_id, text in out.events:
            settings.audit(db, at=now, what="event", actor=ts.name, event_id=event_id, text=text)
        return out

    def _permanent(
        self,
        db: sqlite3.Connection,
        ts: TerminalServer,
        req: LicenseAsk,
        now: int,
        product: CalProduct,
        temp: LicenseRow | None,
        events: tuple[int, ...],
        out: Outcome,
    ) -> None:
        """Issue a permanent CAL of `product` into `out` (its reply, what was issued and,
        when a CAL left a pool, the pools after it)."""
        if product.is_per_user:  # KB 823313: not decremented; usage recorded
            licenses.record_usage(db, req.user, product, now)
            previous = licenses.latest_user_cal(db, product, req.user)
            keypack = keypacks.first_keypack_of(db, product)
            expiry = now + self._lease_ms()
            row = self._write(
                db, ts, req, now, LicenseKind.PERMANENT, product, expiry, keypack, previous
            )
            out.reply = self._granted(
                row, upgraded=isinstance(req, UpgradeLicenseRequest), event_ids=events
            )
            out.issued = (product, row.kind)
            return
        keypack = keypacks.take_from_pool(db, product, now)
        if not keypack:  # available_by_product said otherwise: a bug, refuse loudly
            raise ServiceError(f"no {product.label} left in any key pack")
        # One CAL of `product` left the unexpired key packs that `out.available` (read in
        # this operation, at this `now`) sums: the pools after the decision, without a second
        # query (issue 19). (A decision that takes a CAL depends on the pools, so they were
        # read; should they not have been, they are read now.)
        free = out.available
        out.available = (
            {**free, product: free[product] - 1}
            if product in free
            else keypacks.available_by_product(db, now)
        )
        expiry = now + self._lease_ms()
        row = self._insert(db, ts, req, now, LicenseKind.PERMANENT, product, expiry, keypack)
        if temp is not None:
            licenses.set_license_status(db, temp.id, LicenseStatus.UPGRADED)
        out.reply = self._granted(row, upgraded=temp is not None, event_ids=events)
        out.issued = (product, LicenseKind.PERMANENT)

    # ---- rows and documents -----------------------------------------------------------------

    def _lease_ms(self) -> int:
        return lease_days(self.rng.getrandbits(32)) * MS_PER_DAY

    def _insert(
        self,
        db: sqlite3.Connection,
        ts: TerminalServer,
        req: LicenseAsk,
        now: int,
        kind: LicenseKind,
        product: CalProduct,
        expiry: int,
        keypack: int,
    ) -> LicenseRow:
        return self._write(db, ts, req, now, kind, product, expiry, keypack, None)

    def _write(
        self,
        db: sqlite3.Connection,
        ts: TerminalServer,
        req: LicenseAsk,
        now: int,
        kind: LicenseKind,
        product: CalProduct,
        expiry: int,
        keypack: int,
        old: LicenseRow | None,
    ) -> LicenseRow:
        status = LicenseStatus.TEMPORARY if kind is LicenseKind.TEMPORARY else LicenseStatus.ACTIVE
        row = LicenseRow(
            0, keypack, product, kind, status, req.hwid, req.machine, req.user, ts.name, now,
            expiry, False, b"", req.client_os, req.mode,
        )  # fmt: skip
        if old is not None:  # renewed or re-issued: same id, pool and issue date
            row.id, row.keypack_id, row.issued_at = old.id, old.keypack_id or keypack, old.issued_at
            row.blob = self._sign(req, row)
            licenses.update_license(db, row)
            # A new license's own row (who, what, when, through which terminal server) is
            # its record; a renewal or re-issue rewrites a row, so the audit log keeps that.
            settings.audit(
                db, at=now, what=f"reissued {kind}", actor=ts.name, product=product.value,
                license=row.id, machine=req.machine, user=req.user,
            )  # fmt: skip
            return row
        for retry in (False, True):
            row.id = self._new_license_id(db)
            row.blob = self._sign(req, row)
            try:
                licenses.insert_license(db, row)
                break
            except sqlite3.IntegrityError:
                # The id was taken behind our back (not by this class): read MAX(id) again.
                self._next_license_id = None
                if retry:
                    raise
        return row

    def _sign(self, req: LicenseAsk, row: LicenseRow) -> bytes:
        activation = self.activation
        body = license_body_wire(
            row.id, row.kind, row.product, req.hwid, req.machine, req.user, req.client_os,
            req.mode, self.config.name, activation.license_server_id, row.issued_at,
            row.expires_at,
        )  # fmt: skip
        return sign_license_wire(activation.key, activation.chain, body)

    def _new_license_id(self, db: sqlite3.Connection) -> int:
        """The id for a new license row: read once, then counted here."""
        if self._next_license_id is None:
            self._next_license_id = licenses.next_license_id(db)
        license_id = self._next_license_id
        self._next_license_id = license_id + 1
        return license_id

    @staticmethod
    def _granted(
        row: LicenseRow, *, upgraded: bool, event_ids: tuple[int, ...] = ()
    ) -> LicenseGranted:
        return _license_granted(
            license=row.blob,
            license_id=row.id,
            kind=row.kind,
            product=row.product,
            expires_at=row.expires_at,
            upgraded=upgraded,
            event_ids=event_ids,
        )

    def _presented(
        self, req: LicenseAsk, shown: bytes, rows: list[LicenseRow]
    ) -> LicenseRow | None:
        """The database row of the license the client presented (`shown`), if this server
        issued it."""
        try:
            signed = open_license(shown)
        except ProtocolError as exc:
            raise ServiceError(
                f"the client's license is not valid: {exc.message}", code=ErrorCode.INVALID_LICENSE
            ) from None
        if signed.body.hwid != req.hwid:
            raise ServiceError(
                "the license was issued to another device (its hardware id differs)",
                code=ErrorCode.HWID_MISMATCH,
            )
        if signed.issuer.public_key != self.activation.public_key:
            return None  # another server's license: decide as for a new request
        return next((r for r in rows if r.id == signed.body.license_id), None)

    def _referred_validated(self, req: LicenseAsk, shown: bytes, now: int) -> bool:
        """CAL-12: the presented license is another license server's temporary, which that
        server (through the Referral the terminal server forwards) says a logon validated.
        It counts as this device's validated temporary if it is genuine (its issuer chains
        to the Clearinghouse root), unexpired and for this device. The terminal server's word
        is trusted as for MarkLicense, which also rests on it alone (KB 287687)."""
        root = self.activation.trusted_root
        if root is None:
            return False
        try:
            signed = verify_license(shown, root, to_datetime(now))
        except ProtocolError:
            return False  # not genuine here: decide as for a new request
        body = signed.body
        return (
            body.kind is LicenseKind.TEMPORARY
            and body.hwid == req.hwid
            and body.issuer.casefold() != self.config.name.casefold()
            and body.expires_at > now
        )

    def _peer_for(self, product: CalProduct | None) -> PeerServer | None:
        return next((p for p in self.config.peers if product in p.products), None)

    def _event_text(self, event_id: int, ts: TerminalServer, req: LicenseAsk) -> str:
        if event_id == LsEvent.NOT_ACTIVATED:
            text = (
                f"The Terminal Services license server {self.config.name} has not been"
                " activated; it issues only temporary licenses."
            )
        elif event_id == LsEvent.NO_PERMANENT_LICENSE:
            wanted = permanent_products(self.config.version, ts.version, req.mode)
            label = wanted[0].label if wanted else "?"
            text = (
                f"The Terminal Services license server {self.config.name} does not have any"
                f' remaining permanent licenses of the type "{label}"; it cannot issue a'
                f' permanent license to the terminal server "{ts.name}".'
            )
        else:
            text = f"license server event {event_id}"
        event(event_id, text, terminal_server=ts.name, machine=req.machine)
        return text
