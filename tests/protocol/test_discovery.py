"""Tests of tslic.protocol.discovery: discovery order and license server selection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tslic.protocol.discovery import (
    Candidate,
    discovery_order,
    preferred_servers,
    select_server,
)
from tslic.protocol.domain import Connectivity, HowDiscovered, WindowsVersion

W2000, W2003 = WindowsVersion.W2000, WindowsVersion.W2003
POLICY, REGISTRY = HowDiscovered.POLICY, HowDiscovered.REGISTRY
WORKGROUP, DOMAIN, ENTERPRISE = (
    HowDiscovered.WORKGROUP,
    HowDiscovered.DOMAIN,
    HowDiscovered.ENTERPRISE,
)


def reverse(names: list[str]) -> list[str]:
    return names[::-1]


def full_order(version: WindowsVersion, *, in_domain: bool) -> tuple[Candidate, ...]:
    """Every source filled with distinct names, so the order shows which were consulted."""
    return discovery_order(
        ts_version=version,
        in_domain=in_domain,
        preferred=preferred_servers(policy=["POL1"], registry=["REG1", "REG2"]),
        default_license_server="DEFLS",
        enterprise=["ENT1", "ENT2"],
        domain_controllers=["DC1", "DC2", "DC3"],
        broadcast=["BC1", "BC2"],
        shuffle=reverse,
    )


def pairs(candidates: tuple[Candidate, ...]) -> list[tuple[str, HowDiscovered]]:
    return [(c.name, c.how) for c in candidates]


def test_preferred_servers_policy_first() -> None:
    assert pairs(preferred_servers(policy=["A"], registry=["B"])) == [
        ("A", POLICY),
        ("B", REGISTRY),
    ]


def test_2003_domain_order() -> None:
    order = full_order(W2003, in_domain=True)
    assert pairs(order) == [
        ("POL1", POLICY),
        ("REG1", REGISTRY),
        ("REG2", REGISTRY),
        ("ENT1", ENTERPRISE),
        ("ENT2", ENTERPRISE),
        ("DC1", DOMAIN),  # a 2003 TS is not said to pick at random: order kept
        ("DC2", DOMAIN),
        ("DC3", DOMAIN),
    ]


def test_2003_workgroup_order() -> None:
    order = full_order(W2003, in_domain=False)
    assert pairs(order) == [
        ("POL1", POLICY),
        ("REG1", REGISTRY),
        ("REG2", REGISTRY),
        ("BC2", WORKGROUP),  # broadcast answers are picked at random
        ("BC1", WORKGROUP),
    ]


def test_2000_domain_order() -> None:
    order = full_order(W2000, in_domain=True)
    assert pairs(order) == [
        ("DEFLS", REGISTRY),
        ("DC3", DOMAIN),  # shuffled by the caller
        ("DC2", DOMAIN),
        ("DC1", DOMAIN),
        ("ENT1", ENTERPRISE),
        ("ENT2", ENTERPRISE),
    ]


def test_2000_workgroup_order() -> None:
    order = full_order(W2000, in_domain=False)
    assert pairs(order) == [("DEFLS", REGISTRY), ("BC2", WORKGROUP), ("BC1", WORKGROUP)]


def test_2000_without_default_license_server() -> None:
    order = discovery_order(ts_version=W2000, in_domain=True, domain_controllers=["DC1"])
    assert pairs(order) == [("DC1", DOMAIN)]


def test_default_shuffle_keeps_order() -> None:
    order = discovery_order(ts_version=W2000, in_domain=True, domain_controllers=["B", "A"])
    assert [c.name for c in order] == ["B", "A"]


def test_2003_member_server_found_only_when_preferred() -> None:
    # A 2003 domain LS on a member server is neither on a DC nor published for the site.
    found = discovery_order(
        ts_version=W2003, in_domain=True, enterprise=["ENT1"], domain_controllers=["DC1"]
    )
    assert "MEMBER" not in [c.name for c in found]
    found = discovery_order(
        ts_version=W2003,
        in_domain=True,
        preferred=preferred_servers(registry=["MEMBER"]),
        domain_controllers=["DC1"],
    )
    assert pairs(found)[0] == ("MEMBER", REGISTRY)


def test_duplicates_keep_first_how_case_insensitively() -> None:
    order = discovery_order(
        ts_version=W2003,
        in_domain=True,
        preferred=preferred_servers(policy=["ls1"], registry=["LS1"]),
        enterprise=["Ls1", "LS2"],
        domain_controllers=["ls2", " ", ""],
    )
    assert pairs(order) == [("ls1", POLICY), ("LS2", ENTERPRISE)]


def test_preferred_must_be_tagged_policy_or_registry() -> None:
    with pytest.raises(ValueError, match="POLICY or REGISTRY"):
        discovery_order(
            ts_version=W2003, in_domain=True, preferred=[Candidate(name="X", how=DOMAIN)]
        )


names = st.lists(st.sampled_from(["A", "b", "B", "c", "D", "e"]), max_size=5)


@given(
    version=st.sampled_from(WindowsVersion),
    in_domain=st.booleans(),
    pref=names,
    ent=names,
    dcs=names,
    bc=names,
)
def test_order_is_unique_and_from_inputs(
    version: WindowsVersion,
    in_domain: bool,
    pref: list[str],
    ent: list[str],
    dcs: list[str],
    bc: list[str],
) -> None:
    order = discovery_order(
        ts_version=version,
        in_domain=in_domain,
        preferred=preferred_servers(registry=pref),
        enterprise=ent,
        domain_controllers=dcs,
        broadcast=bc,
        shuffle=reverse,
    )
    keys = [c.name.casefold() for c in order]
    assert len(keys) == len(set(keys))
    assert set(c.name for c in order) <= set(pref + ent + dcs + bc)
    if not in_domain:
        assert {c.how for c in order} <= {REGISTRY, WORKGROUP}
    if version is W2000:
        assert REGISTRY not in {c.how for c in order}  # no LicenseServers key on 2000


# --- select_server ------------------------------------------------------------------------


def cands(*names: str) -> tuple[Candidate, ...]:
    return tuple(Candidate(name=n, how=DOMAIN) for n in names)


def test_select_skips_unusable_and_takes_first_valid() -> None:
    probes = {
        "OLD": Connectivity.LOWER_VERSION,
        "DOWN": Connectivity.NOT_CONNECTABLE,
        "LOCKED": Connectivity.NOT_IN_TSCGROUP,
        "GOOD": Connectivity.VALID_LS,
        "ALSO": Connectivity.VALID_LS,
    }
    chosen, skipped = select_server(cands("OLD", "DOWN", "LOCKED", "GOOD", "ALSO"), probes)
    assert chosen == Candidate(name="GOOD", how=DOMAIN)
    assert skipped == (
        ("OLD", Connectivity.LOWER_VERSION),
        ("DOWN", Connectivity.NOT_CONNECTABLE),
        ("LOCKED", Connectivity.NOT_IN_TSCGROUP),
    )


def test_select_unprobed_is_unknown_and_none_found() -> None:
    result = select_server(cands("A", "B"), {"B": Connectivity.ACCESS_DENIED})
    assert result.chosen is None
    assert result.skipped == (("A", Connectivity.UNKNOWN), ("B", Connectivity.ACCESS_DENIED))
    assert select_server((), {}) == (None, ())
