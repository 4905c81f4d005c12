"""`policy.decide` (the license server's remembered `choose_license`) gives what
`choose_license` gives for the same facts, whatever the CAL counts: its key holds only which
products have any CAL left, and that must be all the decision reads of the counts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tslic.protocol import policy
from tslic.protocol.domain import (
    ActivationState,
    CalProduct,
    ClientOS,
    LicensingMode,
    WindowsVersion,
)

PRODUCTS = list(CalProduct)
counts = st.dictionaries(st.sampled_from(PRODUCTS), st.integers(0, 5))
flags = st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans())


def _facts(
    versions: tuple[WindowsVersion, WindowsVersion],
    activation: ActivationState,
    mode: LicensingMode,
    client_os: ClientOS,
    available: dict[CalProduct, int],
    flag: tuple[bool, bool, bool, bool, bool],
) -> tuple[Any, ...]:
    prevent, had, validated, expired, holds = flag
    with_cals = frozenset(p for p, n in available.items() if n > 0)
    # IssueContext refuses a validated or expired temporary the device never had.
    return (
        versions[0], activation, versions[1], mode, client_os, with_cals, prevent, had,
        validated and had, expired and had, holds,
    )  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(
    versions=st.tuples(st.sampled_from(WindowsVersion), st.sampled_from(WindowsVersion)),
    activation=st.sampled_from(ActivationState),
    mode=st.sampled_from(LicensingMode),
    client_os=st.sampled_from(ClientOS),
    available=counts,
    flag=flags,
)
def test_decide_is_choose_license_with_any_counts(
    versions: tuple[WindowsVersion, WindowsVersion],
    activation: ActivationState,
    mode: LicensingMode,
    client_os: ClientOS,
    available: dict[CalProduct, int],
    flag: tuple[bool, bool, bool, bool, bool],
) -> None:
    facts = _facts(versions, activation, mode, client_os, available, flag)
    ctx = policy.context_for(*facts)
    with_counts = policy.IssueContext(
        ls_version=ctx.ls_version, ls_activation=ctx.ls_activation, ts_version=ctx.ts_version,
        ts_mode=ctx.ts_mode, client_os=ctx.client_os, available=available,
        prevent_upgrade=ctx.prevent_upgrade, had_temporary=ctx.had_temporary,
        temporary_validated=ctx.temporary_validated, temporary_expired=ctx.temporary_expired,
        holds_permanent=ctx.holds_permanent,
    )  # fmt: skip
    expected = policy.choose_license(with_counts)
    assert policy.choose_license(ctx) == expected
    assert policy.decide(*facts) == expected


def test_decide_remembers_and_refuses_what_the_context_refuses() -> None:
    facts = (
        WindowsVersion.W2003, ActivationState.ACTIVATED, WindowsVersion.W2003,
        LicensingMode.PER_DEVICE, ClientOS.XP_PRO, frozenset({CalProduct.W2003_DEVICE_CAL}),
        False, True, True, False, False,
    )  # fmt: skip
    first = policy.decide(*facts)
    assert first.kind is policy.DecisionKind.PERMANENT
    assert first.product is CalProduct.W2003_DEVICE_CAL
    assert policy.decide(*facts) is first
    # Validated without ever having had a temporary: IssueContext's own refusal.
    with pytest.raises(ValueError, match="had_temporary"):
        policy.decide(*facts[:7], False, True, False, False)
