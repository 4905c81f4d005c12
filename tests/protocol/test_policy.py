"""Tests of tslic.protocol.policy: compatibility, which CAL a device gets, leases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tslic.protocol.domain import (
    ActivationState,
    CalProduct,
    ClientOS,
    LicensingMode,
    WindowsVersion,
)
from tslic.protocol.errors import ErrorCode
from tslic.protocol.events import LsEvent
from tslic.protocol.policy import (
    LEASE_MAX_DAYS,
    LEASE_MIN_DAYS,
    RENEWAL_WINDOW_DAYS,
    TEMPORARY_DAYS,
    DecisionKind,
    IssueContext,
    PolicyOptions,
    choose_license,
    is_expired,
    keypack_installable,
    lease_days,
    lease_expiry,
    ls_serves_ts,
    needs_renewal,
    permanent_products,
    should_refer,
    temporary_expiry,
)

W2000, W2003 = WindowsVersion.W2000, WindowsVersion.W2003
DEVICE, USER = LicensingMode.PER_DEVICE, LicensingMode.PER_USER
TS_CAL = CalProduct.W2000_TS_CAL
DEVICE_CAL = CalProduct.W2003_DEVICE_CAL
USER_CAL = CalProduct.W2003_USER_CAL
ALL_CALS = {TS_CAL: 5, DEVICE_CAL: 5, USER_CAL: 5}
NOW = datetime(2004, 3, 1, 12, 0, tzinfo=UTC)
VALIDATED = {"had_temporary": True, "temporary_validated": True}


def ctx(**overrides: Any) -> IssueContext:
    """An activated 2003 license server and a 2003 Per Device terminal server, by default."""
    fields: dict[str, Any] = {
        "ls_version": W2003,
        "ls_activation": ActivationState.ACTIVATED,
        "ts_version": W2003,
        "ts_mode": DEVICE,
        "client_os": ClientOS.XP_HOME,
        "available": ALL_CALS,
    }
    fields.update(overrides)
    return IssueContext(**fields)


# --- compatibility tables (KB 823313, KB 822134) ---------------------------------------------


@pytest.mark.parametrize(
    ("ls", "ts", "ok"),
    [(W2000, W2000, True), (W2000, W2003, False), (W2003, W2000, True), (W2003, W2003, True)],
)
def test_ls_serves_ts(ls: WindowsVersion, ts: WindowsVersion, ok: bool) -> None:
    assert ls_serves_ts(ls, ts) is ok


@pytest.mark.parametrize(
    ("ls", "product", "ok"),
    [
        (W2000, TS_CAL, True),
        (W2000, DEVICE_CAL, False),
        (W2000, USER_CAL, False),
        (W2000, CalProduct.W2000_BUILT_IN, False),
        (W2003, TS_CAL, True),
        (W2003, DEVICE_CAL, True),
        (W2003, USER_CAL, True),
        (W2003, CalProduct.W2000_BUILT_IN, False),
    ],
)
def test_keypack_installable(ls: WindowsVersion, product: CalProduct, ok: bool) -> None:
    assert keypack_installable(ls, product) is ok


def test_permanent_products_order_and_filters() -> None:
    assert permanent_products(W2003, W2000, DEVICE) == (TS_CAL, DEVICE_CAL)
    assert permanent_products(W2003, W2000, DEVICE, prevent_upgrade=True) == (TS_CAL,)
    assert permanent_products(W2000, W2000, DEVICE) == (TS_CAL,)
    assert permanent_products(W2003, W2003, DEVICE) == (DEVICE_CAL,)
    assert permanent_products(W2003, W2003, USER) == (USER_CAL,)
    assert permanent_products(W2003, W2000, USER) == ()


# --- refusals before any CAL is considered ------------------------------------------------


@pytest.mark.parametrize("mode", [DEVICE, USER])
def test_2000_ls_refuses_2003_ts(mode: LicensingMode) -> None:
    d = choose_license(ctx(ls_version=W2000, ts_mode=mode, **VALIDATED))
    assert d.kind is DecisionKind.REFUSE
    assert d.error is ErrorCode.LOWER_VERSION
    assert not should_refer(d)


@pytest.mark.parametrize("ls", [W2000, W2003])
def test_per_user_on_2000_ts_refused(ls: WindowsVersion) -> None:
    d = choose_license(ctx(ls_version=ls, ts_version=W2000, ts_mode=USER))
    assert d.kind is DecisionKind.REFUSE
    assert d.error is ErrorCode.MODE_NOT_SUPPORTED


# --- built-in licenses (KB 823313) -----------------------------------------------------------


@pytest.mark.parametrize("ls", [W2000, W2003])
@pytest.mark.parametrize("client", [ClientOS.W2000_PRO, ClientOS.XP_PRO])
def test_built_in_for_2000_ts(ls: WindowsVersion, client: ClientOS) -> None:
    d = choose_license(ctx(ls_version=ls, ts_version=W2000, client_os=client, available={}))
    assert d.kind is DecisionKind.BUILT_IN
    assert d.product is CalProduct.W2000_BUILT_IN
    assert not d.consumes


@pytest.mark.parametrize("client", list(ClientOS))
def test_2003_ts_ignores_os_equivalency(client: ClientOS) -> None:
    d = choose_license(ctx(client_os=client, **VALIDATED))
    assert d.kind is DecisionKind.PERMANENT
    assert d.product is DEVICE_CAL
    assert d.consumes


def test_built_in_needs_activation_switch() -> None:
    request = ctx(
        ts_version=W2000, client_os=ClientOS.W2000_PRO, ls_activation=ActivationState.UNACTIVATED
    )
    d = choose_license(request)
    assert d.kind is DecisionKind.TEMPORARY
    assert d.event_id == LsEvent.NOT_ACTIVATED
    assert d.missing is CalProduct.W2000_BUILT_IN
    lenient = PolicyOptions(built_in_requires_activation=False)
    assert choose_license(request, lenient).kind is DecisionKind.BUILT_IN


# --- Windows 2000 terminal servers, other clients (KB 822134) --------------------------------


def test_2000_ts_gets_2000_cal_first() -> None:
    d = choose_license(ctx(ts_version=W2000, **VALIDATED))
    assert (d.kind, d.product, d.consumes) == (DecisionKind.PERMANENT, TS_CAL, True)


def test_2000_ts_upgraded_to_2003_cal_when_2000_cals_run_out() -> None:
    d = choose_license(ctx(ts_version=W2000, available={DEVICE_CAL: 1}, **VALIDATED))
    assert (d.kind, d.product) == (DecisionKind.PERMANENT, DEVICE_CAL)
    assert "upgrade" in d.reason
    assert "(license upgrade, CAL-2)" in d.reason  # every reason cites its rule or source


def test_prevent_license_upgrade_gives_temporary() -> None:
    request = ctx(ts_version=W2000, available={DEVICE_CAL: 1}, prevent_upgrade=True, **VALIDATED)
    d = choose_license(request)
    assert d.kind is DecisionKind.TEMPORARY
    assert d.keeps_existing
    assert d.event_id == LsEvent.NO_PERMANENT_LICENSE
    assert d.missing is TS_CAL
    assert "Prevent License Upgrade" in d.reason
    assert should_refer(d)


def test_2000_ls_never_issues_2003_cals() -> None:
    # Even if the caller's counts were wrong: a 2000 server cannot hold 2003 CALs (KB 823313).
    d = choose_license(
        ctx(ls_version=W2000, ts_version=W2000, available={DEVICE_CAL: 9}, **VALIDATED)
    )
    assert d.kind is DecisionKind.TEMPORARY
    assert d.missing is TS_CAL


def test_2000_pre_sp3_switch_issues_cal_on_first_connection() -> None:
    pre_sp3 = PolicyOptions(w2000_post_logon_issuance=False)
    d = choose_license(ctx(ts_version=W2000), pre_sp3)
    assert (d.kind, d.product) == (DecisionKind.PERMANENT, TS_CAL)
    # ... and when none is left the first connection qualifies for a referral.
    d = choose_license(ctx(ts_version=W2000, available={}), pre_sp3)
    assert d.kind is DecisionKind.TEMPORARY
    assert not d.keeps_existing
    assert should_refer(d)
    # The switch does not touch 2003 terminal servers.
    assert choose_license(ctx(), pre_sp3).kind is DecisionKind.TEMPORARY


# --- post-logon issuance and temporaries (KB 813052, KB 287687) ------------------------------


def test_first_connection_gets_new_temporary_even_with_cals() -> None:
    d = choose_license(ctx())
    assert d.kind is DecisionKind.TEMPORARY
    assert d.product is DEVICE_CAL
    assert not d.keeps_existing
    assert d.event_id is None
    assert not d.consumes
    assert not should_refer(d)


def test_unvalidated_temporary_is_kept() -> None:
    d = choose_license(ctx(had_temporary=True))
    assert d.kind is DecisionKind.TEMPORARY
    assert d.keeps_existing
    assert not should_refer(d)


def test_unvalidated_expired_temporary_is_refused() -> None:
    d = choose_license(ctx(had_temporary=True, temporary_expired=True))
    assert d.kind is DecisionKind.REFUSE
    assert d.error is ErrorCode.NO_LICENSE_AVAILABLE
    assert d.event_id is None  # the pool is not empty: no event 21


def test_validated_temporary_upgraded() -> None:
    d = choose_license(ctx(**VALIDATED))
    assert (d.kind, d.product, d.consumes) == (DecisionKind.PERMANENT, DEVICE_CAL, True)


def test_validated_expired_temporary_upgraded_when_cal_free() -> None:
    d = choose_license(ctx(temporary_expired=True, **VALIDATED))
    assert d.kind is DecisionKind.PERMANENT


def test_validated_no_cal_keeps_temporary_and_logs_21() -> None:
    d = choose_license(ctx(available={DEVICE_CAL: 0}, **VALIDATED))
    assert d.kind is DecisionKind.TEMPORARY
    assert d.keeps_existing
    assert d.event_id == 21
    assert d.missing is DEVICE_CAL
    assert should_refer(d)


def test_expired_temporary_no_cal_refused_with_21() -> None:
    d = choose_license(ctx(available={}, temporary_expired=True, **VALIDATED))
    assert d.kind is DecisionKind.REFUSE
    assert d.error is ErrorCode.NO_LICENSE_AVAILABLE
    assert d.event_id == 21
    assert should_refer(d)


def test_per_device_with_only_user_cals_gets_temporary() -> None:
    d = choose_license(ctx(available={USER_CAL: 50}, **VALIDATED))
    assert d.kind is DecisionKind.TEMPORARY
    assert d.missing is DEVICE_CAL


@pytest.mark.parametrize("state", [ActivationState.UNACTIVATED, ActivationState.DEACTIVATED])
def test_unactivated_server_issues_only_temporaries(state: ActivationState) -> None:
    first = choose_license(ctx(ls_activation=state))
    assert first.kind is DecisionKind.TEMPORARY
    assert not first.keeps_existing
    later = choose_license(ctx(ls_activation=state, **VALIDATED))
    assert later.kind is DecisionKind.TEMPORARY
    assert later.keeps_existing
    assert later.event_id == LsEvent.NOT_ACTIVATED
    assert should_refer(later)
    user = choose_license(ctx(ls_activation=state, ts_mode=USER))
    assert user.kind is DecisionKind.TEMPORARY


def test_reactivated_server_issues_permanent() -> None:
    d = choose_license(ctx(ls_activation=ActivationState.REACTIVATED, **VALIDATED))
    assert d.kind is DecisionKind.PERMANENT


# --- renewal (LEASE-3, LEASE-4) --------------------------------------------------------------


def test_holder_of_permanent_is_re_leased() -> None:
    d = choose_license(ctx(holds_permanent=True, available={}))
    assert d.kind is DecisionKind.PERMANENT
    assert d.keeps_existing
    assert not d.consumes


def test_deactivated_server_does_not_renew() -> None:
    d = choose_license(ctx(holds_permanent=True, ls_activation=ActivationState.DEACTIVATED))
    assert d.kind is DecisionKind.REFUSE
    assert d.error is ErrorCode.NOT_ACTIVATED
    assert d.keeps_existing
    assert not should_refer(d)


# --- Per User (KB 823313, TechNet cc727934) --------------------------------------------------


def test_per_user_issues_user_cal_without_consuming() -> None:
    d = choose_license(ctx(ts_mode=USER, available={USER_CAL: 1}))
    assert (d.kind, d.product) == (DecisionKind.PERMANENT, USER_CAL)
    assert not d.consumes
    assert not d.keeps_existing


def test_per_user_without_user_pack_gets_temporary_never_device_cal() -> None:
    first = choose_license(ctx(ts_mode=USER, available={DEVICE_CAL: 10}))
    assert (first.kind, first.product) == (DecisionKind.TEMPORARY, USER_CAL)
    assert first.event_id == 21
    again = choose_license(ctx(ts_mode=USER, available={DEVICE_CAL: 10}, **VALIDATED))
    assert again.kind is DecisionKind.TEMPORARY
    assert again.keeps_existing
    expired = choose_license(ctx(ts_mode=USER, available={}, temporary_expired=True, **VALIDATED))
    assert expired.kind is DecisionKind.REFUSE
    assert expired.error is ErrorCode.NO_LICENSE_AVAILABLE


# --- referral and input checks ------------------------------------------------------------------


def test_context_rejects_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="had_temporary"):
        ctx(temporary_validated=True)
    with pytest.raises(ValueError, match="had_temporary"):
        ctx(temporary_expired=True)
    with pytest.raises(ValueError, match="negative"):
        ctx(available={DEVICE_CAL: -1})


@st.composite
def contexts(draw: st.DrawFn) -> IssueContext:
    had = draw(st.booleans())
    return IssueContext(
        ls_version=draw(st.sampled_from(WindowsVersion)),
        ls_activation=draw(st.sampled_from(ActivationState)),
        ts_version=draw(st.sampled_from(WindowsVersion)),
        ts_mode=draw(st.sampled_from(LicensingMode)),
        client_os=draw(st.sampled_from(ClientOS)),
        available=draw(
            st.dictionaries(
                st.sampled_from([TS_CAL, DEVICE_CAL, USER_CAL]), st.integers(0, 3), max_size=3
            )
        ),
        prevent_upgrade=draw(st.booleans()),
        had_temporary=had,
        temporary_validated=had and draw(st.booleans()),
        temporary_expired=had and draw(st.booleans()),
        holds_permanent=draw(st.booleans()),
    )


@given(contexts(), st.booleans(), st.booleans())
def test_decision_invariants(c: IssueContext, strict_built_in: bool, post_logon: bool) -> None:
    options = PolicyOptions(
        built_in_requires_activation=strict_built_in, w2000_post_logon_issuance=post_logon
    )
    d = choose_license(c, options)
    assert re.search(r"\((?:[^()]*(?:KB \d+|TechNet|[A-Z]+-\d+))", d.reason), d.reason
    assert (d.error is not None) == (d.kind is DecisionKind.REFUSE)
    if d.kind is DecisionKind.PERMANENT and not d.keeps_existing:
        assert d.product is not None
        assert c.available.get(d.product, 0) > 0
        assert keypack_installable(c.ls_version, d.product)
        assert d.consumes == (d.product is not USER_CAL)
    if d.kind in (DecisionKind.PERMANENT, DecisionKind.BUILT_IN):
        assert c.ls_activation.may_issue_permanent or not strict_built_in
    if d.kind is DecisionKind.PERMANENT:
        assert c.ls_activation.may_issue_permanent
    if c.ts_version is W2003:
        assert d.kind is not DecisionKind.BUILT_IN
        assert d.product not in (TS_CAL, CalProduct.W2000_BUILT_IN)
    if d.kind is DecisionKind.TEMPORARY:
        assert not d.consumes
        assert d.keeps_existing == c.had_temporary
        assert not (c.had_temporary and c.temporary_expired)


# --- leases (LEASE-1) ------------------------------------------------------------------------


def test_lease_constants() -> None:
    assert (LEASE_MIN_DAYS, LEASE_MAX_DAYS, RENEWAL_WINDOW_DAYS, TEMPORARY_DAYS) == (52, 89, 7, 90)


def test_lease_days_boundaries_and_uniformity() -> None:
    assert lease_days(0) == 52
    assert lease_days(37) == 89
    assert lease_days(38) == 52
    assert lease_days(-1) == 89
    counts = {n: 0 for n in range(52, 90)}
    for draw in range(38 * 4):
        counts[lease_days(draw)] += 1
    assert set(counts.values()) == {4}


@given(st.integers())
def test_lease_days_in_range(draw: int) -> None:
    assert LEASE_MIN_DAYS <= lease_days(draw) <= LEASE_MAX_DAYS
    assert lease_expiry(NOW, draw) - NOW == timedelta(days=lease_days(draw))


def test_renewal_window_boundary() -> None:
    expires = NOW + timedelta(days=7)
    assert needs_renewal(expires, NOW)
    assert not needs_renewal(expires + timedelta(microseconds=1), NOW)
    assert needs_renewal(expires, expires + timedelta(days=1))  # already expired


def test_expiry_boundary() -> None:
    assert not is_expired(NOW, NOW - timedelta(microseconds=1))
    assert is_expired(NOW, NOW)
    assert temporary_expiry(NOW) == NOW + timedelta(days=90)


def test_naive_datetimes_rejected() -> None:
    naive = datetime(2004, 3, 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_expired(NOW, naive)
    with pytest.raises(ValueError, match="expires_at"):
        needs_renewal(naive, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        temporary_expiry(naive)
