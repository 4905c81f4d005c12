"""Fill a license server's data directory with synthetic licenses and users, fast.

Contract: `fill(data_dir, licenses=N, users=U, user_cals=C)` creates (or extends) the
database of `data_dir` through the data-access layer, in ONE transaction with `executemany`:
N temporary Per Device licenses for N devices (one a second of virtual time from `start`,
2003-05-01 by default),
and, when U > 0, a User CAL key pack of C CALs, U users with their usage line and an active
permanent User CAL recorded against that pack. For tests and bench/listing.py, which need a
server holding 100,000 licenses or 10,000 users in seconds rather than after 100,000
license requests; the server started on the directory afterwards serves them as its own.
Rows carry no signed blob (listings never send it).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from tslic.protocol.clock import MS_PER_DAY
from tslic.protocol.domain import (
    CalProduct,
    ClientOS,
    LicenseKind,
    LicenseStatus,
    LicensingMode,
    Program,
)
from tslic.protocol.messages.records import UserUsage

from ..store import Store
from . import keypacks, licenses

START = 1_051_747_200_000  # 2003-05-01T00:00:00Z, the lab's first day


def _hwid(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


def fill(
    data_dir: Path, *, licenses_count: int, users: int = 0, user_cals: int = 0, start: int = START
) -> None:
    """Add the synthetic rows (see the module docstring) to the database in `data_dir`,
    issued from virtual time `start` on (a server sweeps what has expired by its clock)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir, threaded=False)
    try:
        store.run_now(lambda db: _fill(db, licenses_count, users, user_cals, start))
    finally:
        store.close()


def _fill(db: sqlite3.Connection, count: int, users: int, user_cals: int, start: int) -> None:
    first = licenses.next_license_id(db)
    device, temporary = LicenseKind.TEMPORARY, LicenseStatus.TEMPORARY
    licenses.load_licenses(
        db,
        (
            licenses.LicenseRow(
                first + i,
                0,
                CalProduct.W2003_DEVICE_CAL,
                device,
                temporary,
                _hwid(first + i),
                f"PC{i:06d}",
                f"user{i % 5000:05d}",
                "TS01",
                start + i * 1000,
                start + i * 1000 + 90 * MS_PER_DAY,
                False,
                b"",
                ClientOS.XP_PRO.value,
                LicensingMode.PER_DEVICE.value,
            )
            for i in range(count)
        ),
    )
    if not users:
        return
    pack = keypacks.install_keypack(
        db, product=CalProduct.W2003_USER_CAL, program=Program.SELECT,
        keypack_type=Program.SELECT.keypack_type, description=CalProduct.W2003_USER_CAL.label,
        total=user_cals, installed_at=start, expires_at=0, grant_id=None,
        keypack_code="", grant_blob=b"",
    )  # fmt: skip
    base = first + count
    names = [f"user{n:06d}" for n in range(users)]
    licenses.load_licenses(
        db,
        (
            licenses.LicenseRow(
                base + n,
                pack,
                CalProduct.W2003_USER_CAL,
                LicenseKind.PERMANENT,
                LicenseStatus.ACTIVE,
                _hwid(base + n),
                f"UPC{n:06d}",
                name,
                "TS01",
                start + n * 1000,
                start + n * 1000 + 60 * MS_PER_DAY,
                True,
                b"",
                ClientOS.XP_PRO.value,
                LicensingMode.PER_USER.value,
            )
            for n, name in enumerate(names)
        ),
    )
    licenses.load_usage(
        db,
        (
            UserUsage(user=name, product=CalProduct.W2003_USER_CAL, connections=1 + n % 9,
                      first_seen=start + n * 1000, last_seen=start + n * 1000 + MS_PER_DAY)
            for n, name in enumerate(names)
        ),
    )  # fmt: skip
