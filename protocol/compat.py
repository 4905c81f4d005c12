"""Which Windows versions and CAL products work together (KB 823313, KB 822134).

Contract:
- Sans-IO and pure: tables, and functions that look them up. `ls_serves_ts` says whether a
  license server can serve a terminal server, `keypack_installable` whether a key pack installs
  on a license server, `permanent_products` which permanent CALs satisfy a terminal server
  (most appropriate first) and `accepted_as_is` which it accepts without a new license.
- Re-exported by `tslic.protocol.policy`, where `choose_license` applies these tables and
  where callers import every licensing rule from.
"""

from __future__ import annotations

import functools

from .domain import CalProduct, LicensingMode, WindowsVersion

W2000 = WindowsVersion.W2000
W2003 = WindowsVersion.W2003


# KB 823313: (license server, terminal server) pairs that work together.
_SERVES: frozenset[tuple[WindowsVersion, WindowsVersion]] = frozenset(
    {(W2000, W2000), (W2003, W2000), (W2003, W2003)}
)

# KB 823313, KB 822134: key packs a license server accepts. Built-in licenses are a pool,
# never a key pack.
_INSTALLABLE: dict[WindowsVersion, frozenset[CalProduct]] = {
    W2000: frozenset({CalProduct.W2000_TS_CAL}),
    W2003: frozenset(
        {CalProduct.W2000_TS_CAL, CalProduct.W2003_DEVICE_CAL, CalProduct.W2003_USER_CAL}
    ),
}

# KB 823313, KB 822134: "most appropriate" permanent CALs per (terminal server, mode), best first. A
# product newer than the terminal server is a license upgrade (the Prevent License Upgrade policy).
PERMANENT_PREFERENCE: dict[tuple[WindowsVersion, LicensingMode], tuple[CalProduct, ...]] = {
    (W2000, LicensingMode.PER_DEVICE): (CalProduct.W2000_TS_CAL, CalProduct.W2003_DEVICE_CAL),
    (W2003, LicensingMode.PER_DEVICE): (CalProduct.W2003_DEVICE_CAL,),
    (W2003, LicensingMode.PER_USER): (CalProduct.W2003_USER_CAL,),
}
_ACCEPTED = {
    (ts, mode): frozenset(products) | ({CalProduct.W2000_BUILT_IN} if ts is W2000 else frozenset())
    for (ts, mode), products in PERMANENT_PREFERENCE.items()
}


def accepted_as_is(ts_version: WindowsVersion, mode: LicensingMode) -> frozenset[CalProduct]:
    """The permanent products a terminal server accepts without asking for a new license.

    Args:
        ts_version: the terminal server's version; mode: its licensing mode.

    Returns:
        Its preferred CALs (`permanent_products` before the license server's own limits),
        plus, on Windows 2000, the built-in license of Windows 2000 clients (KB 823313).
    """
    return _ACCEPTED.get((ts_version, mode), frozenset())


def ls_serves_ts(ls_version: WindowsVersion, ts_version: WindowsVersion) -> bool:
    """Whether a license server can serve a terminal server (KB 823313).

    Args:
        ls_version, ts_version: the license server's and terminal server's versions.

    Returns:
        False only for a Windows Server 2003 terminal server and a Windows 2000 license server.
    """
    return (ls_version, ts_version) in _SERVES


def keypack_installable(ls_version: WindowsVersion, product: CalProduct) -> bool:
    """Whether a key pack of `product` can be installed on a license server (KB 823313, KB 822134).

    Args:
        ls_version: the license server's version; product: the key pack's CAL product.

    Returns:
        False for 2003 CALs on a Windows 2000 server and for the built-in pool anywhere.
    """
    return product in _INSTALLABLE[ls_version]


def permanent_products(
    ls_version: WindowsVersion,
    ts_version: WindowsVersion,
    mode: LicensingMode,
    *,
    prevent_upgrade: bool = False,
) -> tuple[CalProduct, ...]:
    """The permanent CAL products that satisfy a terminal server, most appropriate first.

    Args:
        ls_version: the license server's version (a Windows 2000 server holds no 2003 CALs).
        ts_version: the terminal server's version.
        mode: the terminal server's licensing mode.
        prevent_upgrade: the Prevent License Upgrade policy: no 2003 CAL for a 2000 TS.

    Returns:
        The products in order of preference; empty when the combination is not supported.
    """
    return _permanent_products(ls_version, ts_version, mode, prevent_upgrade)


@functools.cache  # a pure function of four small enums: asked on every license request
def _permanent_products(
    ls_version: WindowsVersion, ts_version: WindowsVersion, mode: LicensingMode, no_upgrade: bool
) -> tuple[CalProduct, ...]:
    products = PERMANENT_PREFERENCE.get((ts_version, mode), ())
    return tuple(
        p
        for p in products
        if keypack_installable(ls_version, p) and not (no_upgrade and p.version > ts_version)
    )
