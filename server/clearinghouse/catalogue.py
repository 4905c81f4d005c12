"""The Clearinghouse's database: purchases, activations, redemptions, grants and claim tickets.

Contract:
- One SQLite file (`clearinghouse.db` in the data directory), WAL mode, opened in autocommit
  mode; every change runs inside `transaction()` (BEGIN IMMEDIATE ... COMMIT), so a change is
  on disk before the caller acknowledges it, and a failure leaves nothing half done.
- Every `sqlite3` error is translated to `StorageError` with a message naming the file: no
  sqlite3 exception reaches a caller. The connection, transactions and that translation are
  `database.Database`'s, which `Catalogue` extends with the tables' queries.
- This module stores and fetches; it does not judge. The rules (who may redeem what, dates,
  counts) are in `core.py` and `installation.py`, which call these methods inside one
  transaction so that a check and its update cannot be separated.
- Times are virtual epoch-ms. Codes are stored normalized (no hyphens, upper case).
"""

from __future__ import annotations

import json
from typing import cast

from tslic.protocol.domain import ActivationMethod, ActivationState, CalProduct, Program
from tslic.protocol.messages.records import ContactInfo

from .database import Database
from .rows import (
    DB_NAME,
    Activation,
    Claim,
    ClaimPayload,
    Entitlement,
    EventRow,
    GrantRow,
    RevokedRow,
    TransitionToken,
    XpLicense,
)

__all__ = [
    "DB_NAME",
    "Activation",
    "Catalogue",
    "Claim",
    "Entitlement",
    "TransitionToken",
    "XpLicense",
]


class Catalogue(Database):
    """The SQLite store. Use as a context manager or call `close()`."""

    # --- entitlements ---------------------------------------------------------------------

    def add_entitlement(
        self,
        *,
        program: Program,
        product: CalProduct,
        total: int,
        now: int,
        retail_code: str | None = None,
        license_number: str = "",
        authorization_number: str = "",
        agreement_number: str = "",
    ) -> Entitlement:
        cursor = self._run(
            "INSERT INTO entitlements (program, product, total, retail_code, license_number,"
            " authorization_number, agreement_number, created_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                str(program),
                str(product),
                total,
                retail_code,
                license_number,
                authorization_number,
                agreement_number,
                now,
            ),
        )
        assert cursor.lastrowid is not None
        found = self._entitlements("WHERE id = ?", (cursor.lastrowid,))
        return found[0]

    def _entitlements(self, where: str, args: tuple[object, ...]) -> list[Entitlement]:
        rows = self._rows(f"SELECT * FROM entitlements {where} ORDER BY id", args)
        return [
            Entitlement(
                id=r["id"],
                program=Program(r["program"]),
                product=CalProduct(r["product"]),
                total=r["total"],
                used=r["used"],
                retail_code=r["retail_code"] or "",
                license_number=r["license_number"],
                authorization_number=r["authorization_number"],
                agreement_number=r["agreement_number"],
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def entitlements(self) -> list[Entitlement]:
        return self._entitlements("", ())

    def retail(self, code: str) -> Entitlement | None:
        found = self._entitlements("WHERE retail_code = ?", (code,))
        return found[0] if found else None

    def open_license(self, number: str, authorization: str) -> list[Entitlement]:
        return self._entitlements(
            "WHERE program = ? AND license_number = ? AND authorization_number = ?",
            (str(Program.OPEN_LICENSE), number, authorization),
        )

    def agreement(self, number: str) -> list[Entitlement]:
        """Every entitlement under an agreement/enrollment number, whatever the program."""
        return self._entitlements(
            "WHERE agreement_number = ? AND agreement_number != ''", (number,)
        )

    def use(self, entitlement_id: int, count: int) -> None:
        self._run("UPDATE entitlements SET used = used + ? WHERE id = ?", (count, entitlement_id))

    # --- Windows XP licenses (transition offer) -------------------------------------------

    def add_xp(
        self, *, product_key: str, acquired_at: int, channel: str, program: str, numbers: str
    ) -> XpLicense:
        self._run(
            "INSERT INTO xp_licenses (product_key, acquired_at, channel, program, numbers)"
            " VALUES (?,?,?,?,?)",
            (product_key, acquired_at, channel, program, numbers),
        )
        found = self.xp(product_key)
        assert found is not None
        return found

    def _xps(self, where: str, args: tuple[object, ...]) -> list[XpLicense]:
        rows = self._rows(f"SELECT * FROM xp_licenses {where} ORDER BY acquired_at", args)
        return [
            XpLicense(
                product_key=r["product_key"],
                acquired_at=r["acquired_at"],
                channel=r["channel"],
                program=r["program"],
                numbers=r["numbers"],
                redeemed_at=r["redeemed_at"],
                redemption=r["redemption"],
            )
            for r in rows
        ]

    def xp(self, product_key: str) -> XpLicense | None:
        found = self._xps("WHERE product_key = ?", (product_key,))
        return found[0] if found else None

    def xp_licenses(self) -> list[XpLicense]:
        return self._xps("", ())

    def xp_volume(self, program: str, numbers: str) -> list[XpLicense]:
        """Unredeemed volume XP licenses bought under a program's numbers."""
        return self._xps(
            "WHERE channel = 'volume' AND program = ? AND numbers = ? AND redeemed_at IS NULL",
            (program, numbers),
        )

    def redeem_xp(self, product_key: str, now: int, redemption: str) -> None:
        self._run(
            "UPDATE xp_licenses SET redeemed_at = ?, redemption = ? WHERE product_key = ?",
            (now, redemption, product_key),
        )

    # --- activations ----------------------------------------------------------------------

    def put_activation(self, a: Activation) -> None:
        self._run(
            "INSERT OR REPLACE INTO activations VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                a.license_server_id,
                a.public_key,
                a.name,
                a.version,
                a.product_id,
                str(a.method),
                json.dumps({k: getattr(a.contact, k) for k in ContactInfo.__dataclass_fields__}),
                str(a.state),
                a.cert,
                a.cert_serial,
                a.activated_at,
                a.changed_at,
            ),
        )

    def _activations(self, where: str, args: tuple[object, ...]) -> list[Activation]:
        rows = self._rows(f"SELECT * FROM activations {where} ORDER BY activated_at", args)
        return [
            Activation(
                license_server_id=r["license_server_id"],
                public_key=r["public_key"],
                name=r["name"],
                version=r["version"],
                product_id=r["product_id"],
                method=ActivationMethod(r["method"]),
                contact=ContactInfo(**json.loads(r["contact"])),
                state=ActivationState(r["state"]),
                cert=r["cert"],
                cert_serial=r["cert_serial"],
                activated_at=r["activated_at"],
                changed_at=r["changed_at"],
            )
            for r in rows
        ]

    def activation(self, license_server_id: str) -> Activation | None:
        found = self._activations("WHERE license_server_id = ?", (license_server_id,))
        return found[0] if found else None

    def activation_by_key(self, public_key: bytes) -> Activation | None:
        """The live (activated or reactivated) activation of a public key, if any."""
        found = self._activations(
            "WHERE public_key = ? AND state IN (?, ?)",
            (public_key, str(ActivationState.ACTIVATED), str(ActivationState.REACTIVATED)),
        )
        return found[-1] if found else None

    def activations(self) -> list[Activation]:
        return self._activations("", ())

    def revoke(self, serial: str, license_server_id: str, now: int, reason: str) -> None:
        self._run(
            "INSERT OR IGNORE INTO revoked_certs VALUES (?,?,?,?)",
            (serial, license_server_id, now, reason),
        )

    def revoked(self) -> list[RevokedRow]:
        rows = self._rows("SELECT * FROM revoked_certs ORDER BY revoked_at")
        return [cast(RevokedRow, dict(r)) for r in rows]  # the columns are the TypedDict's

    def is_revoked(self, serial: str) -> bool:
        return bool(self._rows("SELECT 1 FROM revoked_certs WHERE serial = ?", (serial,)))

    def log(
        self, *, at: int, license_server_id: str, action: str, method: str, detail: str
    ) -> None:
        self._run(
            "INSERT INTO events (at, license_server_id, action, method, detail) VALUES (?,?,?,?,?)",
            (at, license_server_id, action, method, detail),
        )

    def events(self, license_server_id: str | None = None) -> list[EventRow]:
        if license_server_id is None:
            rows = self._rows("SELECT * FROM events ORDER BY id")
        else:
            rows = self._rows(
                "SELECT * FROM events WHERE license_server_id = ? ORDER BY id",
                (license_server_id,),
            )
        return [cast(EventRow, dict(r)) for r in rows]

    # --- claim tickets --------------------------------------------------------------------

    def add_claim(
        self,
        *,
        code: str,
        kind: str,
        license_server_id: str,
        payload: ClaimPayload,
        now: int,
        grant_blob: bytes | None = None,
    ) -> None:
        self._run(
            "INSERT INTO claims (code, kind, license_server_id, payload, grant_blob, created_at)"
            " VALUES (?,?,?,?,?,?)",
            (code, kind, license_server_id, json.dumps(payload), grant_blob, now),
        )

    def claim(self, code: str) -> Claim | None:
        rows = self._rows("SELECT * FROM claims WHERE code = ?", (code,))
        if not rows:
            return None
        r = rows[0]
        return Claim(
            code=r["code"],
            kind=r["kind"],
            license_server_id=r["license_server_id"],
            payload=cast(ClaimPayload, json.loads(r["payload"])),  # written by add_claim
            grant_blob=r["grant_blob"],
            created_at=r["created_at"],
            redeemed_at=r["redeemed_at"],
        )

    def redeem_claim(self, code: str, now: int, license_server_id: str) -> None:
        self._run(
            "UPDATE claims SET redeemed_at = ?, license_server_id = ? WHERE code = ?",
            (now, license_server_id, code),
        )

    # --- grants and transition tokens -----------------------------------------------------

    def next_grant(
        self,
        *,
        license_server_id: str,
        product: CalProduct,
        program: Program,
        count: int,
        source: str,
        now: int,
    ) -> int:
        cursor = self._run(
            "INSERT INTO grants (license_server_id, product, program, count, source, issued_at)"
            " VALUES (?,?,?,?,?,?)",
            (license_server_id, str(product), str(program), count, source, now),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def grants(self) -> list[GrantRow]:
        return [
            cast(GrantRow, dict(r)) for r in self._rows("SELECT * FROM grants ORDER BY grant_id")
        ]

    def last_grant(self, source: str) -> GrantRow | None:
        """The most recent grant made from one purchase source (e.g. `retail:<code>`)."""
        rows = self._rows(
            "SELECT * FROM grants WHERE source = ? ORDER BY grant_id DESC LIMIT 1", (source,)
        )
        return cast(GrantRow, dict(rows[0])) if rows else None

    def add_token(
        self, *, token: str, product: CalProduct, count: int, email: str, now: int
    ) -> None:
        self._run(
            "INSERT INTO transition_tokens (token, product, count, email, created_at)"
            " VALUES (?,?,?,?,?)",
            (token, str(product), count, email, now),
        )

    def token(self, token: str) -> TransitionToken | None:
        rows = self._rows("SELECT * FROM transition_tokens WHERE token = ?", (token,))
        if not rows:
            return None
        r = rows[0]
        return TransitionToken(
            token=r["token"],
            product=CalProduct(r["product"]),
            count=r["count"],
            email=r["email"],
            created_at=r["created_at"],
            redeemed_at=r["redeemed_at"],
            license_server_id=r["license_server_id"],
        )

    def redeem_token(self, token: str, now: int, license_server_id: str) -> None:
        self._run(
            "UPDATE transition_tokens SET redeemed_at = ?, license_server_id = ? WHERE token = ?",
            (now, license_server_id, token),
        )
