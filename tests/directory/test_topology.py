"""Tests of the topology file: the packaged sample and every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from tslic.protocol.errors import ErrorCode
from tslic.server.directory.topology import (
    TopologyError,
    is_ts_group,
    load_topology,
    parse_topology,
)

GOOD = """\
[forest]
root_dn = "DC=corp,DC=example"

[[domain]]
name = "corp.example"
netbios = "CORP"
functional_level = 2003

[[site]]
name = "Main"

[[computer]]
name = "DC1"
domain = "corp.example"
site = "main"
is_domain_controller = true
os_version = 2003

[[computer]]
name = "TS1"
domain = "CORP"
site = "Main"
os_version = 2003
address = "127.0.0.1:5000"

[[group]]
name = "Terminal Server Computers"
computer = "dc1"
members = ["ts1", "TS1"]
"""


def test_sample_topology_is_the_documented_forest() -> None:
    topo = load_topology(None)
    assert topo.forest_dn == "DC=oldcorp,DC=example"
    assert topo.forest_name == "oldcorp.example"
    assert [(d.netbios, d.functional_level) for d in topo.domains] == [
        ("OLDCORP", 2000),
        ("NEWCORP", 2003),
    ]
    assert topo.sites == ("HQ", "BRANCH")
    dcs = {c.name for c in topo.computers if c.is_domain_controller}
    assert dcs == {"W2KDC1", "W2KDC2", "W3KDC1"}
    by_name = {c.name: c for c in topo.computers}
    assert (by_name["W3KLS1"].domain, by_name["W3KLS1"].os_version) == ("NEWCORP", 2003)
    assert {c.os_version for c in topo.computers if "TS" in c.name} == {2000, 2003}
    assert any(is_ts_group(g.name) for g in topo.groups)
    assert topo.site_dn("HQ") == (
        "CN=TS-Enterprise-License-Server,CN=HQ,CN=Sites,CN=Configuration,DC=oldcorp,DC=example"
    )


def test_names_resolve_case_insensitively_and_keep_their_spelling() -> None:
    topo = parse_topology(GOOD)
    dc1, ts1 = topo.computers
    assert (dc1.domain, dc1.site) == ("CORP", "Main")
    assert ts1.address == "127.0.0.1:5000"
    assert topo.domain("CORP.EXAMPLE") is topo.domain("corp")
    (group,) = topo.groups
    assert (group.qualified, group.local, group.members) == (
        "DC1\\Terminal Server Computers",
        True,
        ("TS1",),
    )


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "forest.toml"
    path.write_text(GOOD)
    assert load_topology(path).forest_name == "corp.example"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(tmp_path / "nope.toml")
    assert info.value.code is ErrorCode.INVALID_FIELD
    assert "cannot read topology file" in info.value.message
    assert "nope.toml" in info.value.message


def test_bad_toml_names_the_line() -> None:
    with pytest.raises(TopologyError) as info:
        parse_topology(GOOD + "\n[[computer]\n", source="f.toml")
    assert info.value.message.startswith("f.toml: not valid TOML")
    assert "line 31" in info.value.message


def mutate(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        (
            mutate("os_version = 2003\n", "os_version = 1999\n"),
            17,
            "computer #1.os_version",
            "must be 2000 or 2003",
        ),
        (
            mutate("is_domain_controller = true", "is_domain_controler = true"),
            16,
            "computer #1.is_domain_controler",
            "unknown key",
        ),
        (
            mutate('site = "Main"\nos', 'site = "Mars"\nos'),
            22,
            "computer #2.site",
            "unknown site (known: Main)",
        ),
        (
            mutate('domain = "CORP"\n', 'domain = "OTHER"\n'),
            21,
            "computer #2.domain",
            "unknown domain",
        ),
        (mutate('name = "TS1"', 'name = "dc1"'), 20, "computer #2.name", "defined twice"),
        (
            mutate('name = "TS1"', 'name = "NAME-TOO-LONG-FOR-NETBIOS"'),
            20,
            "computer #2.name",
            "1 to 15",
        ),
        (
            mutate("true\nos_version = 2003", "true\nos_version = 2000"),
            17,
            "computer #1.os_version",
            "functional level is 2003",
        ),
        (
            mutate("functional_level = 2003", "functional_level = true"),
            7,
            "domain #1.functional_level",
            "must be 2000 or 2003",
        ),
        (mutate('netbios = "CORP"', 'netbios = ""'), 6, "domain #1.netbios", "non-empty"),
        (
            mutate('root_dn = "DC=corp,DC=example"', 'root_dn = "DC=other,DC=example"'),
            2,
            "forest.root_dn",
            "one of the domains",
        ),
        (
            mutate('root_dn = "DC=corp,DC=example"', 'root_dn = "corp.example"'),
            2,
            "forest.root_dn",
            "DC=example,DC=com",
        ),
        (
            mutate('members = ["ts1", "TS1"]', 'members = ["TS9"]'),
            29,
            "group #1.members",
            "unknown computer 'TS9'",
        ),
        (
            mutate('computer = "dc1"', 'computer = "dc1"\ndomain = "CORP"'),
            26,
            "group #1",
            "exactly one of domain",
        ),
        (mutate('name = "Main"', 'name = "Main Office"'), 10, "site #1.name", "letters"),
        (
            mutate('address = "127.0.0.1:5000"', 'address = "nowhere"'),
            24,
            "computer #2.address",
            "HOST:PORT",
        ),
    ],
)
def test_mistakes_name_line_and_key(text: str, line: int, key: str, words: str) -> None:
    with pytest.raises(TopologyError) as info:
        parse_topology(text, source="forest.toml")
    err = info.value
    assert err.code is ErrorCode.INVALID_FIELD
    assert err.message.startswith(f"forest.toml, line {line}: [{key}]"), err.message
    assert words in err.message
    assert err.detail == {"key": key, "line": line}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (GOOD.replace("[forest]", "[forrest]"), "unknown top-level key 'forrest'"),
        (GOOD.replace("is_domain_controller = true", ""), "domain CORP has no domain controller"),
        ("[forest]\nroot_dn = 'DC=x'\n", "at least one [[domain]]"),
        (GOOD.split("[[site]]")[0], "at least one [[site]]"),
        (GOOD.replace('[forest]\nroot_dn = "DC=corp,DC=example"\n', ""), "missing [forest]"),
    ],
)
def test_whole_file_mistakes(text: str, words: str) -> None:
    with pytest.raises(TopologyError) as info:
        parse_topology(text)
    assert words in info.value.message


def test_duplicate_group_in_either_spelling() -> None:
    text = GOOD + (
        '\n[[group]]\nname = "Terminal Services Computers"\ncomputer = "DC1"\nmembers = []\n'
    )
    with pytest.raises(TopologyError) as info:
        parse_topology(text)
    assert "line 32: [group #2.name] group DC1\\Terminal" in info.value.message
    assert "is defined twice" in info.value.message


def test_ts_group_spellings() -> None:
    assert is_ts_group("terminal services computers")
    assert is_ts_group(" Terminal Server Computers ")
    assert not is_ts_group("Terminal Servers")
