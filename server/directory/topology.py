"""The emulated forest: a TOML topology file read into immutable values.

Contract:
- `parse_topology(text, source)` turns the text of a topology file (docs/DIRECTORY.md) into a
  `Topology`: the forest root DN, domains (DNS name, NetBIOS name, functional level 2000 or
  2003), sites, computers (name, domain, site, domain controller or not, OS 2000 or 2003) and
  groups (domain-local or local to one computer, with computer members).
- Every mistake raises `TopologyError` (a `ServiceError` with code INVALID_FIELD) whose
  message names the file, the line when it can be found, the entry and the key, and says what
  is allowed; `detail` carries "key" and, when known, "line". Nothing from tomllib escapes.
- Names compare case-insensitively (NetBIOS and DNS names are case-blind); the spelling in
  the file is kept for display. Computers are named NetBIOS-style and must be unique in the
  whole forest, because the directory's lookups are by name.
- Rules the file must keep (real Active Directory keeps them too): every domain has at least
  one domain controller; a domain at functional level 2003 has only Windows Server 2003
  domain controllers; the forest root DN is the DN of one of the domains.
- Pure: no I/O except `load_topology` (reads one file) and `sample_topology_text` (reads the
  packaged sample).
- The values and naming rules (`Topology`, `Domain`, `Computer`, `Group`, `TopologyError`,
  `check_*`, `is_ts_group`, `same_group`) live in forest.py and are re-exported here.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from tslic.protocol.codec import Unvalidated

from .forest import NETBIOS_NAME
from .forest import TS_GROUP_NAMES as TS_GROUP_NAMES
from .forest import VERSIONS as VERSIONS
from .forest import Computer as Computer
from .forest import Domain as Domain
from .forest import Group as Group
from .forest import Topology as Topology
from .forest import TopologyError as TopologyError
from .forest import check_computer_name as check_computer_name
from .forest import check_dc_rules as check_dc_rules
from .forest import check_version as check_version
from .forest import dns_to_dn as dns_to_dn
from .forest import is_ts_group as is_ts_group
from .forest import same_group as same_group

SAMPLE_FILE = "sample_topology.toml"

_DNS = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(\.(?!-)[A-Za-z0-9-]{1,63})*$")
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_ADDRESS = re.compile(r"^\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")
_DN = re.compile(r"^DC=[A-Za-z0-9-]+(,DC=[A-Za-z0-9-]+)*$", re.IGNORECASE)


def sample_topology_text() -> str:
    """The packaged sample topology (server/directory/sample_topology.toml)."""
    return resources.files(__package__).joinpath(SAMPLE_FILE).read_text(encoding="utf-8")


def load_topology(path: Path | None) -> Topology:
    """Read and check a topology file; None means the packaged sample.

    Raises:
        TopologyError: unreadable file, bad TOML or a broken rule.
    """
    if path is None:
        return parse_topology(sample_topology_text(), source=f"(built-in {SAMPLE_FILE})")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError(
            f"cannot read topology file {path}: {exc.strerror}", detail={"key": "file"}
        ) from None
    except UnicodeDecodeError:
        raise TopologyError(f"topology file {path} is not UTF-8 text") from None
    return parse_topology(text, source=str(path))


def parse_topology(text: str, source: str = "<topology>") -> Topology:
    """Parse and check the text of a topology file (see the module contract)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{source}: not valid TOML: {exc}") from None
    return _Reader(text, source).read(data)


_TOP_KEYS = {"forest", "domain", "site", "computer", "group"}
_KEYS = {
    "forest": ({"root_dn"}, set()),
    "domain": ({"name", "netbios", "functional_level"}, set()),
    "site": ({"name"}, {"description"}),
    "computer": ({"name", "domain", "site", "os_version"}, {"is_domain_controller", "address"}),
    "group": ({"name", "members"}, {"domain", "computer"}),
}


class _Reader:
    """Checks one parsed file; knows the text so that errors can name lines."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    # -- locating and reporting --------------------------------------------------------------
    def _line(self, table: str, index: int | None, key: str | None) -> int | None:
        """Best-effort line number of `[[table]]` number `index` (or `[table]`) and its key."""
        header = re.compile(rf"^\s*\[\[?\s*{re.escape(table)}\s*\]\]?\s*(#.*)?$")
        starts = [i for i, line in enumerate(self.lines) if header.match(line)]
        if index is None:
            index = 0
        if index >= len(starts):
            return None
        start = starts[index]
        if key is None:
            return start + 1
        key_re = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start + 1, len(self.lines)):
            if self.lines[i].lstrip().startswith("["):
                break
            if key_re.match(self.lines[i]):
                return i + 1
        return start + 1

    def fail(self, table: str, index: int | None, key: str | None, message: str) -> TopologyError:
        line = self._line(table, index, key)
        where = self.source + (f", line {line}" if line else "")
        entry = table if index is None else f"{table} #{index + 1}"
        path = f"{entry}.{key}" if key else entry
        detail: dict[str, object] = {"key": path}
        if line:
            detail["line"] = line
        return TopologyError(f"{where}: [{path}] {message}", detail=detail)

    # -- typed access -----------------------------------------------------------------------
    def _entries(self, data: dict[str, Unvalidated], table: str) -> list[dict[str, Unvalidated]]:
        value = data.get(table, [])
        if table == "forest":
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(table, None, None, f"write it as [[{table}]] tables")
        required, optional = _KEYS[table]
        for i, entry in enumerate(value):
            idx = None if table == "forest" else i
            for key in sorted(set(entry) - required - optional):
                known = ", ".join(sorted(required | optional))
                raise self.fail(table, idx, key, f"unknown key (allowed: {known})")
            for key in sorted(required - set(entry)):
                raise self.fail(table, idx, None, f"missing key '{key}'")
        return value

    def _str(self, table: str, i: int | None, entry: dict[str, Unvalidated], key: str) -> str:
        value = entry.get(key, "")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(table, i, key, f"must be a non-empty string, got {value!r}")
        return value.strip()

    # -- the whole file ---------------------------------------------------------------------
    def read(self, data: dict[str, Unvalidated]) -> Topology:
        for key in sorted(set(data) - _TOP_KEYS):
            known = ", ".join(sorted(_TOP_KEYS))
            raise TopologyError(
                f"{self.source}: unknown top-level key '{key}' (allowed: {known})",
                detail={"key": key},
            )
        if "forest" not in data:
            raise TopologyError(f"{self.source}: missing [forest] table with root_dn")
        if not isinstance(data["forest"], dict):
            raise self.fail("forest", None, None, "write it as a [forest] table")
        forest = self._entries(data, "forest")[0]
        domains = self._domains(self._entries(data, "domain"))
        sites = self._sites(self._entries(data, "site"))
        forest_dn = self._str("forest", None, forest, "root_dn")
        if not _DN.match(forest_dn):
            raise self.fail("forest", None, "root_dn", "must look like DC=example,DC=com")
        root = next((d for d in domains if d.dn.casefold() == forest_dn.casefold()), None)
        if root is None:
            names = ", ".join(f"{d.dn} ({d.dns_name})" for d in domains)
            raise self.fail(
                "forest", None, "root_dn", f"must be the DN of one of the domains: {names}"
            )
        topo = Topology(forest_dn=root.dn, domains=domains, sites=sites, computers=(), groups=())
        computers = self._computers(topo, self._entries(data, "computer"))
        topo = Topology(
            forest_dn=root.dn, domains=domains, sites=sites, computers=computers, groups=()
        )
        groups = self._groups(topo, self._entries(data, "group"))
        return Topology(
            forest_dn=root.dn, domains=domains, sites=sites, computers=computers, groups=groups
        )

    def _domains(self, entries: list[dict[str, Unvalidated]]) -> tuple[Domain, ...]:
        if not entries:
            raise TopologyError(f"{self.source}: at least one [[domain]] is needed")
        out: list[Domain] = []
        for i, e in enumerate(entries):
            name = self._str("domain", i, e, "name")
            if not _DNS.match(name):
                raise self.fail(
                    "domain", i, "name", f"{name!r} is not a DNS name like corp.example"
                )
            netbios = self._str("domain", i, e, "netbios")
            if not NETBIOS_NAME.match(netbios):
                raise self.fail(
                    "domain", i, "netbios", f"{netbios!r}: use 1 to 15 letters, digits, - or _"
                )
            try:
                level = check_version(e["functional_level"], "functional_level")
            except TopologyError as exc:
                raise self.fail("domain", i, "functional_level", exc.message) from None
            for other in out:
                if {name.casefold(), netbios.casefold()} & {
                    other.dns_name.casefold(),
                    other.netbios.casefold(),
                }:
                    raise self.fail("domain", i, "name", f"domain {netbios} is defined twice")
            out.append(Domain(dns_name=name, netbios=netbios, functional_level=level))
        return tuple(out)

    def _sites(self, entries: list[dict[str, Unvalidated]]) -> tuple[str, ...]:
        if not entries:
            raise TopologyError(f"{self.source}: at least one [[site]] is needed")
        out: list[str] = []
        for i, e in enumerate(entries):
            name = self._str("site", i, e, "name")
            if not _SITE.match(name):
                raise self.fail("site", i, "name", f"{name!r}: use letters, digits, - or _")
            if name.casefold() in {s.casefold() for s in out}:
                raise self.fail("site", i, "name", f"site {name} is defined twice")
            out.append(name)
        return tuple(out)

    def _computers(
        self, topo: Topology, entries: list[dict[str, Unvalidated]]
    ) -> tuple[Computer, ...]:
        out: dict[str, Computer] = {}
        for i, e in enumerate(entries):
            name = self._str("computer", i, e, "name")
            try:
                check_computer_name(name)
            except TopologyError as exc:
                raise self.fail("computer", i, "name", exc.message) from None
            if name.casefold() in out:
                raise self.fail("computer", i, "name", f"computer {name} is defined twice")
            domain = topo.domain(self._str("computer", i, e, "domain"))
            if domain is None:
                known = ", ".join(d.netbios for d in topo.domains)
                raise self.fail("computer", i, "domain", f"unknown domain (known: {known})")
            site = topo.site(self._str("computer", i, e, "site"))
            if site is None:
                raise self.fail(
                    "computer", i, "site", f"unknown site (known: {', '.join(topo.sites)})"
                )
            dc = e.get("is_domain_controller", False)
            if not isinstance(dc, bool):
                raise self.fail("computer", i, "is_domain_controller", "must be true or false")
            try:
                os_version = check_version(e["os_version"], "os_version")
            except TopologyError as exc:
                raise self.fail("computer", i, "os_version", exc.message) from None
            address = e.get("address", "")
            if not isinstance(address, str) or (address and not _ADDRESS.match(address)):
                raise self.fail("computer", i, "address", "must be HOST:PORT, e.g. 10.0.0.5:4000")
            computer = Computer(
                name=name,
                domain=domain.netbios,
                site=site,
                is_domain_controller=dc,
                os_version=os_version,
                address=address.strip(),
            )
            try:
                check_dc_rules(domain, computer)
            except TopologyError as exc:
                raise self.fail("computer", i, "os_version", exc.message) from None
            out[name.casefold()] = computer
        for d in topo.domains:
            if not any(c.is_domain_controller and c.domain == d.netbios for c in out.values()):
                raise TopologyError(
                    f"{self.source}: domain {d.netbios} has no domain controller; mark one of "
                    "its computers is_domain_controller = true",
                    detail={"key": "computer.is_domain_controller"},
                )
        return tuple(out.values())

    def _groups(self, topo: Topology, entries: list[dict[str, Unvalidated]]) -> tuple[Group, ...]:
        names = {c.name.casefold(): c.name for c in topo.computers}
        out: list[Group] = []
        for i, e in enumerate(entries):
            name = self._str("group", i, e, "name")
            if "\\" in name or len(name) > 64:
                raise self.fail("group", i, "name", "at most 64 characters and no backslash")
            if ("domain" in e) == ("computer" in e):
                raise self.fail(
                    "group",
                    i,
                    None,
                    "give exactly one of domain (a domain-local group) or "
                    "computer (a group local to that computer)",
                )
            if "domain" in e:
                domain = topo.domain(self._str("group", i, e, "domain"))
                if domain is None:
                    raise self.fail("group", i, "domain", "unknown domain")
                scope, local = domain.netbios, False
            else:
                owner = names.get(self._str("group", i, e, "computer").casefold())
                if owner is None:
                    raise self.fail("group", i, "computer", "unknown computer")
                scope, local = owner, True
            members = e["members"]
            if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
                raise self.fail("group", i, "members", "must be a list of computer names")
            resolved = []
            for m in members:
                if m.strip().casefold() not in names:
                    raise self.fail("group", i, "members", f"unknown computer {m!r}")
                resolved.append(names[m.strip().casefold()])
            group = Group(name=name, scope=scope, local=local, members=tuple(_unique(resolved)))
            if any(same_group(g, scope, name) for g in out):
                raise self.fail("group", i, "name", f"group {group.qualified} is defined twice")
            out.append(group)
        return tuple(out)


def _unique(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for n in names:
        if n.casefold() not in seen:
            seen.add(n.casefold())
            out.append(n)
    return out
