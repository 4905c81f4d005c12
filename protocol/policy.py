"""The licensing rules of Terminal Server Licensing as pure functions.

Contract:
- Sans-IO: no clock, no randomness. Time comes in as `now` (aware datetime); a random lease
  length comes in as an integer the caller drew.
- `choose_license` alone decides which license a device gets (`decide` is the same
  function, remembered, for the license server's every request). It never refers by itself: it
  reports `IssueDecision.missing`, and `should_refer` says whether another server could help;
  the license server finds that server and builds the Referral (TS licensing FAQ).
- Rules are tables where natural. Which versions work together, which key packs install and
  which CALs satisfy a terminal server (`_SERVES`, `_INSTALLABLE`, `PERMANENT_PREFERENCE`)
  live in compat.py and are re-exported here like the lease rules.

Uncertain choices, made switches (`GraceEnd`, `PolicyOptions`):
- `GraceEnd` (sources conflict): grace ends at the first permanent CAL (cc738708,
  hh553157; default) or at the first license server found (KB813052).
- `built_in_requires_activation` (Professor Windows 2001 vs TechNet cc740046 "an unactivated LS
  issues only temporary
  licenses"): default True, so built-in licenses also need an activated server.
- `w2000_post_logon_issuance` (KB 287687): W2000 SP3 / MS01-052 issue a temporary first and the CAL
  after a validated logon (default True); pre-SP3 issued the CAL on first connection.
- Per User (KB 823313, TechNet cc727934): "temporaries are not upgraded" is read as "no
  validation step": a User CAL
  whenever a User CAL pack is installed, else one temporary per device.
- License-server event ids are the 2008 numbers (TechNet cc775305: 18 not activated, 21
  TLS_W_NOPERMLICENSE); the 2003 numbers are not public.
- Lease lengths, expiries and renewal (KB 813052, TechNet Revoke a Per Device CAL) live in
  leases.py and are re-exported
  here (`import X as X`), so callers import every licensing rule from this module.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from .compat import PERMANENT_PREFERENCE
from .compat import accepted_as_is as accepted_as_is
from .compat import keypack_installable as keypack_installable
from .compat import ls_serves_ts as ls_serves_ts
from .compat import permanent_products as permanent_products
from .domain import ActivationState, CalProduct, ClientOS, LicensingMode, WindowsVersion
from .errors import ErrorCode
from .events import LsEvent
from .leases import LEASE_MAX_DAYS as LEASE_MAX_DAYS
from .leases import LEASE_MIN_DAYS as LEASE_MIN_DAYS
from .leases import RENEWAL_WINDOW_DAYS as RENEWAL_WINDOW_DAYS
from .leases import TEMPORARY_DAYS as TEMPORARY_DAYS
from .leases import ensure_aware as ensure_aware
from .leases import is_expired as is_expired
from .leases import lease_days as lease_days
from .leases import lease_expiry as lease_expiry
from .leases import needs_renewal as needs_renewal
from .leases import temporary_expiry as temporary_expiry

if TYPE_CHECKING:
    from collections.abc import Mapping

W2000 = WindowsVersion.W2000
W2003 = WindowsVersion.W2003


class GraceEnd(enum.StrEnum):
    """What ends a terminal server's grace period early (sources conflict, hence a switch)."""

    FIRST_PERMANENT_CAL = "first-permanent-cal"  # TechNet cc738708 / hh553157 (default)
    FIRST_LICENSE_SERVER = "first-license-server"  # KB813052


class DecisionKind(enum.StrEnum):
    """What the license server does with a license request."""

    BUILT_IN = "built-in"
    PERMANENT = "permanent"
    TEMPORARY = "temporary"
    REFUSE = "refuse"


@dataclass(frozen=True, kw_only=True, slots=True)
class PolicyOptions:
    """Switches for the rules the sources leave uncertain (see the module docstring)."""

    built_in_requires_activation: bool = True
    w2000_post_logon_issuance: bool = True


DEFAULT_OPTIONS = PolicyOptions()


@dataclass(frozen=True, kw_only=True, slots=True)
class IssueContext:
    """Everything `choose_license` needs to know about one license request.

    `available` counts the free permanent CALs per product on this license server (for User
    CALs, which are never decremented, the installed count). `holds_permanent` means the device
    presents a permanent CAL from this server, suitable for this terminal server (see
    `permanent_products`), whose lease has not run out: the request is a renewal (LEASE-4).
    The three `temporary_*` flags describe the one temporary license the device may have had.
    """

    ls_version: WindowsVersion
    ls_activation: ActivationState
    ts_version: WindowsVersion
    ts_mode: LicensingMode
    client_os: ClientOS
    available: Mapping[CalProduct, int] = field(default_factory=dict)
    prevent_upgrade: bool = False
    had_temporary: bool = False
    temporary_validated: bool = False
    temporary_expired: bool = False
    holds_permanent: bool = False

    def __post_init__(self) -> None:
        if (self.temporary_validated or self.temporary_expired) and not self.had_temporary:
            raise ValueError("temporary_validated/temporary_expired require had_temporary")
        if any(count < 0 for count in self.available.values()):
            raise ValueError("available CAL counts cannot be negative")


@dataclass(frozen=True, kw_only=True, slots=True)
class IssueDecision:
    """The license server's answer to one license request.

    Attributes:
        kind: what to do.
        product: the product issued (for a temporary: the CAL it stands in for); None for a
            renewal (the product the device holds) and for most refusals.
        error: the wire error for REFUSE, else None.
        reason: one sentence for the administrator, citing the rule.
        event_id: license-server event to log (`LsEvent`), or None.
        consumes: True when a CAL leaves the pool (a new Per Device or Windows 2000 CAL).
        keeps_existing: True when no new license document is issued because the device goes on
            with what it holds (a temporary keeps its first expiry, KB 813052); for PERMANENT, the
            license it holds is re-leased (TechNet Revoke a Per Device CAL).
        missing: the permanent product the device qualified for but this server could not
            give (drives event 21 and `should_refer`).
    """

    kind: DecisionKind
    product: CalProduct | None
    reason: str
    error: ErrorCode | None = None
    event_id: int | None = None
    consumes: bool = False
    keeps_existing: bool = False
    missing: CalProduct | None = None


def choose_license(
    request: IssueContext, options: PolicyOptions = DEFAULT_OPTIONS
) -> IssueDecision:
    """Choose the license a device gets (KB 823313, KB 822134, KB 813052, KB 287687, KB 814593).

    Args:
        request: the facts of the request.
        options: switches for the uncertain rules (module docstring).

    Returns:
        The decision (a referral is the caller's: see `should_refer`).
    """
    ctx = request
    if not ls_serves_ts(ctx.ls_version, ctx.ts_version):  # KB 823313
        return _refuse(
            ErrorCode.LOWER_VERSION,
            f"A {ctx.ls_version.label} license server cannot serve a {ctx.ts_version.label}"
            " terminal server; install a Windows Server 2003 license server (KB 823313).",
        )
    products = PERMANENT_PREFERENCE.get((ctx.ts_version, ctx.ts_mode))
    if products is None:  # KB 822134
        return _refuse(
            ErrorCode.MODE_NOT_SUPPORTED,
            f"{ctx.ts_version.label} terminal servers have no {ctx.ts_mode} licensing mode;"
            " Per User licensing exists only on Windows Server 2003 (KB 822134, KB 823313).",
        )
    activated = ctx.ls_activation.may_issue_permanent
    best = products[0]  # the most appropriate CAL; a temporary license stands in for it

    # KB 823313: OS equivalency, Windows 2000 terminal servers only.
    if ctx.ts_version is W2000 and ctx.client_os.has_w2000_built_in:
        if activated or not options.built_in_requires_activation:
            return IssueDecision(
                kind=DecisionKind.BUILT_IN,
                product=CalProduct.W2000_BUILT_IN,
                reason="Windows 2000 Professional and XP Professional clients of a Windows 2000"
                " terminal server get the built-in license (OS equivalency, KB 823313).",
            )
        built_in, why = CalProduct.W2000_BUILT_IN, _not_activated(ctx)
        return _without_permanent(ctx, best, built_in, LsEvent.NOT_ACTIVATED, why)

    # KB 823313: User CALs are handed out uncounted and without a validation step.
    if ctx.ts_mode is LicensingMode.PER_USER:
        if not activated:
            why = _not_activated(ctx)
            return _without_permanent(ctx, best, best, LsEvent.NOT_ACTIVATED, why)
        if ctx.available.get(best, 0) > 0:
            return IssueDecision(
                kind=DecisionKind.PERMANENT,
                product=best,
                reason="Per User mode: a TS User CAL is issued without decrementing the pool;"
                " counting users is the administrator's job under the EULA (KB 823313).",
            )
        why = "No TS User CAL pack is installed on this license server (event 21, KB 822134)."
        return _without_permanent(ctx, best, best, LsEvent.NO_PERMANENT_LICENSE, why)

    # Per Device (LEASE-4): a device presenting a valid permanent CAL is renewing its lease.
    if ctx.holds_permanent:
        if activated:
            return IssueDecision(
                kind=DecisionKind.PERMANENT,
                product=None,
                keeps_existing=True,
                reason="The device's permanent CAL is re-leased for a new 52-89 days (LEASE-4).",
            )
        return _refuse(
            ErrorCode.NOT_ACTIVATED,
            f"{_not_activated(ctx)} The lease is not renewed; the device keeps its current CAL"
            " until it runs out (MS-RDPELE 3.2.5.5).",
            event_id=LsEvent.NOT_ACTIVATED,
            keeps_existing=True,
        )

    # KB 287687: post-logon issuance; a device qualifies once a logon validated its temporary.
    post_logon = ctx.ts_version is W2003 or options.w2000_post_logon_issuance
    if post_logon and not (ctx.had_temporary and ctx.temporary_validated):
        why = (
            "No successful logon has validated this device's temporary license yet (KB 287687)."
            if ctx.had_temporary
            else "First connection of this device: a permanent CAL waits for a logon (KB 287687)."
        )
        return _without_permanent(ctx, best, None, None, why)
    if not activated:
        why = _not_activated(ctx)
        return _without_permanent(ctx, best, best, LsEvent.NOT_ACTIVATED, why)
    allowed = permanent_products(
        ctx.ls_version, ctx.ts_version, ctx.ts_mode, prevent_upgrade=ctx.prevent_upgrade
    )
    for product in allowed:
        if ctx.available.get(product, 0) > 0:
            how = (
                f"because no {best.label} is left (license upgrade, CAL-2)"
                if product is not best
                else "(most appropriate CAL, KB 822134, KB 287687)"
            )
            return IssueDecision(
                kind=DecisionKind.PERMANENT,
                product=product,
                consumes=True,
                reason=f"A {product.label} is issued {how}.",
            )
    blocked = allowed != permanent_products(ctx.ls_version, ctx.ts_version, ctx.ts_mode)
    why = (
        f"No {' or '.join(p.label for p in allowed)} is left on this license server"
        + (", and Prevent License Upgrade forbids a 2003 CAL" if blocked else "")
        + " (event 21, KB 813052)."
    )
    return _without_permanent(ctx, best, best, LsEvent.NO_PERMANENT_LICENSE, why)


class DecisionFacts(NamedTuple):
    """What `decide` decides on: IssueContext's fields, with `with_cals`, the products with
    any CAL left, in place of the counts. A tuple, so that `decide` can remember it."""

    ls_version: WindowsVersion
    ls_activation: ActivationState
    ts_version: WindowsVersion
    ts_mode: LicensingMode
    client_os: ClientOS
    with_cals: frozenset[CalProduct]
    prevent_upgrade: bool = False
    had_temporary: bool = False
    temporary_validated: bool = False
    temporary_expired: bool = False
    holds_permanent: bool = False

    def context(self) -> IssueContext:
        """The IssueContext of these facts (one CAL for each product that has any)."""
        return IssueContext(
            ls_version=self.ls_version,
            ls_activation=self.ls_activation,
            ts_version=self.ts_version,
            ts_mode=self.ts_mode,
            client_os=self.client_os,
            available=dict.fromkeys(self.with_cals, 1),
            prevent_upgrade=self.prevent_upgrade,
            had_temporary=self.had_temporary,
            temporary_validated=self.temporary_validated,
            temporary_expired=self.temporary_expired,
            holds_permanent=self.holds_permanent,
        )


@functools.cache  # a finite domain: enums, flags and a subset of four products
def decide(facts: DecisionFacts) -> IssueDecision:
    """`choose_license(facts.context())` with the default options, remembered: the license
    server asks it on every request, and building the context and the decision cost more
    than the rest of the decision's Python (issue 19). Keying on `with_cals` rather than
    counts is exact: `choose_license` reads `available` only as "more than none", which
    tests/protocol/test_policy_cache.py checks on contexts drawn across every enum, flag and
    count (0 to 5) of each product. Same errors as IssueContext."""
    return choose_license(facts.context())


# Every set of products that could have CALs left: what `decide_whatever_the_pools` tries.
_EVERY_WITH_CALS = tuple(
    frozenset(p for bit, p in enumerate(CalProduct) if mask >> bit & 1)
    for mask in range(2 ** len(CalProduct))
)


@functools.cache
def decide_whatever_the_pools(facts: DecisionFacts) -> IssueDecision | None:
    """`decide(facts)` if it is the same whichever products have CALs left, else None;
    `facts.with_cals` is not read (pass an empty set: it is part of the key). Then the
    license server need not read its pools for the decision: an unactivated server, a
    device that keeps its temporary or renews its lease (issue 19)."""
    decisions = {decide(facts._replace(with_cals=cals)) for cals in _EVERY_WITH_CALS}
    return decisions.pop() if len(decisions) == 1 else None


def _not_activated(ctx: IssueContext) -> str:
    # Built where it is said, not on every decision: formatting an enum is not free.
    return (
        f"The license server is {ctx.ls_activation}, so it issues only temporary licenses"
        " (TechNet cc740046, KB 814593)."
    )


def _refuse(
    error: ErrorCode,
    reason: str,
    *,
    missing: CalProduct | None = None,
    event_id: LsEvent | None = None,
    keeps_existing: bool = False,
) -> IssueDecision:
    return IssueDecision(
        kind=DecisionKind.REFUSE,
        product=None,
        error=error,
        reason=reason,
        missing=missing,
        event_id=event_id,
        keeps_existing=keeps_existing,
    )


def _without_permanent(
    ctx: IssueContext,
    stand_in: CalProduct,
    missing: CalProduct | None,
    event: LsEvent | None,
    why: str,
) -> IssueDecision:
    """KB 813052: no permanent license now. A device gets one temporary license, ever; it keeps it
    until it expires and is refused afterwards (termsrv event 1011)."""
    if ctx.had_temporary and ctx.temporary_expired:
        return _refuse(
            ErrorCode.NO_LICENSE_AVAILABLE,
            f"{why} The device's temporary license has expired and a device gets only one"
            " (KB 813052).",
            missing=missing,
            event_id=event,
        )
    then = (
        "The device keeps its temporary license until it expires (KB 813052)."
        if ctx.had_temporary
        else f"The device gets a {TEMPORARY_DAYS}-day temporary license (KB 813052)."
    )
    return IssueDecision(
        kind=DecisionKind.TEMPORARY,
        product=stand_in,
        missing=missing,
        event_id=event,
        keeps_existing=ctx.had_temporary,
        reason=f"{why} {then}",
    )


def should_refer(decision: IssueDecision) -> bool:
    """Whether asking another license server could give this device a permanent license.

    Args:
        decision: a decision from `choose_license`.

    Returns:
        True when the device qualified for a permanent license that this server could not give
        (no CAL of the product left, or the server not activated) (TS licensing FAQ).
    """
    return decision.missing is not None and decision.kind in (
        DecisionKind.TEMPORARY,
        DecisionKind.REFUSE,
    )
