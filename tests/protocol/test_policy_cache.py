"""`policy.decide` (the license server's remembered `choose_license`) gives what
`choose_license` gives for the same facts, whatever the CAL counts: its key holds only which
products have any CAL left, and that must be all the decision reads of the counts."""

from __future__ import annotations

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


@st.composite
def facts_and_counts(draw: st.DrawFn) -> tuple[policy.DecisionFacts, dict[CalProduct, int]]:
    """Facts across every enum and flag, and CAL counts (0 to 5) they stand for."""
    available = draw(st.dictionaries(st.sampled_from(list(CalProduct)), st.integers(0, 5)))
    had = draw(st.booleans())
    facts = policy.DecisionFacts(
        ls_version=draw(st.sampled_from(WindowsVersion)),
        ls_activation=draw(st.sampled_from(ActivationState)),
        ts_version=draw(st.sampled_from(WindowsVersion)),
        ts_mode=draw(st.sampled_from(LicensingMode)),
        client_os=draw(st.sampled_from(ClientOS)),
        with_cals=frozenset(p for p, n in available.items() if n > 0),
        prevent_upgrade=draw(st.booleans()),
        had_temporary=had,
        # IssueContext refuses a validated or expired temporary the device never had.
        temporary_validated=draw(st.booleans()) and had,
        temporary_expired=draw(st.booleans()) and had,
        holds_permanent=draw(st.booleans()),
    )
    return facts, available


@settings(max_examples=600, deadline=None)
@given(drawn=facts_and_counts())
def test_decide_is_choose_license_with_any_counts(
    drawn: tuple[policy.DecisionFacts, dict[CalProduct, int]],
) -> None:
    facts, available = drawn
    ctx = facts.context()
    with_counts = policy.IssueContext(
        ls_version=ctx.ls_version, ls_activation=ctx.ls_activation, ts_version=ctx.ts_version,
        ts_mode=ctx.ts_mode, client_os=ctx.client_os, available=available,
        prevent_upgrade=ctx.prevent_upgrade, had_temporary=ctx.had_temporary,
        temporary_validated=ctx.temporary_validated, temporary_expired=ctx.temporary_expired,
        holds_permanent=ctx.holds_permanent,
    )  # fmt: skip
    expected = policy.choose_license(with_counts)
    assert policy.choose_license(ctx) == expected
    assert policy.decide(facts) == expected


def test_decide_remembers_and_refuses_what_the_context_refuses() -> None:
    facts = policy.DecisionFacts(
        WindowsVersion.W2003, ActivationState.ACTIVATED, WindowsVersion.W2003,
        LicensingMode.PER_DEVICE, ClientOS.XP_PRO, frozenset({CalProduct.W2003_DEVICE_CAL}),
        False, True, True, False, False,
    )  # fmt: skip
    first = policy.decide(facts)
    assert first.kind is policy.DecisionKind.PERMANENT
    assert first.product is CalProduct.W2003_DEVICE_CAL
    assert policy.decide(facts) is first
    # Validated without ever having had a temporary: IssueContext's own refusal.
    with pytest.raises(ValueError, match="had_temporary"):
        policy.decide(facts._replace(had_temporary=False))


@settings(max_examples=300, deadline=None)
@given(drawn=facts_and_counts())
def test_a_decision_made_without_the_pools_is_the_one_any_pools_give(
    drawn: tuple[policy.DecisionFacts, dict[CalProduct, int]],
) -> None:
    facts, _ = drawn
    without = policy.decide_whatever_the_pools(facts._replace(with_cals=frozenset()))
    if without is not None:
        assert policy.decide(facts) == without


def test_an_unactivated_server_decides_without_its_pools_an_activated_one_reads_them() -> None:
    new_device = policy.DecisionFacts(
        ls_version=WindowsVersion.W2003,
        ls_activation=ActivationState.UNACTIVATED,
        ts_version=WindowsVersion.W2003,
        ts_mode=LicensingMode.PER_DEVICE,
        client_os=ClientOS.XP_PRO,
        with_cals=frozenset(),
    )
    decision = policy.decide_whatever_the_pools(new_device)
    assert decision is not None
    assert decision.kind is policy.DecisionKind.TEMPORARY
    # Activated, a new device gets a temporary first whatever the pools hold, too; a
    # validated temporary is upgraded to a permanent CAL only if one is left.
    activated = new_device._replace(ls_activation=ActivationState.ACTIVATED)
    assert policy.decide_whatever_the_pools(activated) == policy.decide(activated)
    validated = activated._replace(had_temporary=True, temporary_validated=True)
    assert policy.decide_whatever_the_pools(validated) is None
