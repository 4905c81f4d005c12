"""`tslic conformance prepare`: the surroundings the suite plays for a target, written down.

Contract: `prepare(role, out_dir)` writes `out_dir/manifest.json` and a clock file
`out_dir/clock`, and returns the manifest. For an agent target it chooses loopback ports for
the license servers the suite will play during the run (`peers.LsDouble`: CONF-LS1, CONF-LS2,
CONF-ENT, CONF-DC, CONF-MEMBER, CONF-ALIEN) and the directory, and gives the command line to
start the agent with: the clock file (the suite moves time through it), the suite's
Clearinghouse root (`--trust-root` root.pem; its key ch-root.key is the manifest's
`root_key`, with which the run activates the license servers it plays, SEC-12), CONF-LS1
and CONF-LS2 as its LicenseServers entries (2003) or CONF-LS1 as DefaultLicenseServer (2000),
CONF-MEMBER as the subnet's answer to a broadcast (DISC-5) and CONF-ALIEN through a source
the version does not know (DISC-6); and `fresh_agent_command`, a second terminal server in a
workgroup that the suite starts itself (cases_agent_fresh). The run then reads the manifest
(`--manifest FILE`), binds the doubles to those ports and sets their behaviour case by case.
Other roles get what their section of docs/CONFORMANCE.md §2 says. `load_manifest(path)` reads
it back or raises ServiceError (INVALID_FIELD) naming the file.
The manifest's shape (`schema` "tslic-conformance/1/manifest") is documented in
docs/CONFORMANCE.md §2; fields are only added.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.clock import ClockSpec
from tslic.protocol.codec import Unvalidated
from tslic.protocol.codes import ALPHABET, make_retail_code
from tslic.protocol.pki import make_root
from tslic.runtime.clock import write_clock_file
from tslic.runtime.files import load_or_create_key, write_atomic, write_certs

from .basics import Role
from .manifest import Manifest, Purchases

SCHEMA = "tslic-conformance/1/manifest"
LICENSE_SERVERS = ("CONF-LS1", "CONF-LS2", "CONF-ENT", "CONF-DC", "CONF-MEMBER", "CONF-ALIEN")
DOMAIN, SITE, WORKGROUP = "CONFORMANCE", "CONF-SITE", "CONF-WORKGROUP"
# The second terminal server the suite starts itself for the cases that need a fresh one in a
# workgroup (DISC-2, DISC-4, GRACE-4); "{data}" is replaced by a fresh directory each start.
FRESH_NAME, DATA = "CONF-WG", "{data}"
CH_START = 1_072_915_200_000  # 2004-01-01: the transition offer is open (CH-5, CH-6)
_PORTS_FROM = 20000  # the loopback ports the suite may choose (above 20000)
_RANDOM = secrets.SystemRandom()


def _ephemeral_range() -> tuple[int, int]:
    """The range the system takes ports from for bind(port 0) and outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[:2]
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default; other systems use 49152-65535 (IANA)


def _free_port(taken: set[int]) -> int:
    """A loopback port free now that the run binds again later (prepare just before the run),
    and not one of `taken` (the ports this preparation chose already; it is added there).

    The port is chosen at random outside the system's ephemeral range: a port taken from
    that range (bind to port 0, then released) is soon handed out again as the local port of
    an outgoing connection or to another server binding port 0, and the run could then not
    bind it ("address in use" under load). Outside the range only another chooser like this
    one can take it, and the check below skips a port bound already.
    """
    low, high = _ephemeral_range()
    below = (max(_PORTS_FROM, 1024), low - 1)
    above = (high + 1, 65535)
    span = [r for r in (below, above) if r[1] - r[0] >= 1000] or [below]
    for _ in range(200):
        first, last = _RANDOM.choice(span)
        port = _RANDOM.randint(first, last)
        if port in taken:  # free now, but promised to another double of this run
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # every pick busy: let the
        s.bind(("127.0.0.1", 0))  # system choose (the former behaviour)
        chosen: int = s.getsockname()[1]
        taken.add(chosen)
        return chosen


def prepare(
    role: Role, out_dir: Path, *, start_ms: int | None = None, version: int = 2003
) -> Manifest:
    """Write the manifest and clock file for a run against a target of `role`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clock = out_dir / "clock"
    default = CH_START if role is Role.CLEARINGHOUSE else int(time.time() * 1000)
    start = start_ms if start_ms is not None else default
    write_clock_file(str(clock), ClockSpec(start=start, anchor=time.time(), speed=1.0))
    manifest: Manifest = {"schema": SCHEMA, "role": str(role), "clock_file": str(clock)}
    start_target = ["--clock-file", str(clock)]
    if role is Role.AGENT:
        # SEC-12: the agent trusts the suite's Clearinghouse root; the license servers the
        # suite plays are activated under it (their chains end in it), as the Clearinghouse
        # would have done, so the agent validates every license and certificate they give it.
        _root(out_dir)
        manifest["trust_root"] = str(out_dir / "root.pem")
        manifest["root_key"] = str(out_dir / "ch-root.key")
        start_target += ["--trust-root", manifest["trust_root"]]
        taken: set[int] = set()
        servers = {name: f"127.0.0.1:{_free_port(taken)}" for name in LICENSE_SERVERS}
        manifest["license_servers"] = servers
        manifest["directory"] = {"address": f"127.0.0.1:{_free_port(taken)}", "domain": DOMAIN,
                                 "site": SITE}  # fmt: skip
        start_target += ["--domain", DOMAIN, "--site", SITE, "--directory",
                         manifest["directory"]["address"]]  # fmt: skip
        # The configured sources: LicenseServers (2003) or DefaultLicenseServer (2000); the
        # enterprise and domain-controller servers are found through the directory.
        if version == 2003:
            for name in LICENSE_SERVERS[:2]:
                start_target += ["--license-server", f"{name}={servers[name]}"]
        else:
            start_target += ["--default-license-server", f"CONF-LS1={servers['CONF-LS1']}"]
        # DISC-5: CONF-MEMBER, a domain license server on a member server, would answer a
        # broadcast (in a domain nothing should broadcast); DISC-6: CONF-ALIEN configured
        # through a source the agent's version does not know.
        alien = f"CONF-ALIEN={servers['CONF-ALIEN']}"
        start_target += [
            "--subnet-license-server",
            f"CONF-MEMBER={servers['CONF-MEMBER']}",
            *(
                ["--default-license-server", alien]
                if version == 2003
                else ["--license-server", alien, "--policy-license-server", alien]
            ),
        ]
        data = out_dir / "agent"
        manifest["target_command"] = ["tslic", "agent", "--version", str(version), "--name",
                                      "CONF-TS", "--data", str(data), "--listen",
                                      "127.0.0.1:0", *start_target]  # fmt: skip
        manifest["fresh_agent_command"] = _fresh_agent(servers, clock, version)
        # status judged on the deployment's clock (docs/CLOCK.md), not the one of start-up
        manifest["status_command"] = (f"tslic agent status --data {data} --json"
                                      f" --clock-file {clock}")  # fmt: skip
        manifest["events_command"] = f"tslic agent events --data {data} --json"
    elif role is Role.LICENSE_SERVER:
        _license_server(manifest, out_dir, start_target)
    elif role is Role.CLEARINGHOUSE:
        _clearinghouse(manifest, out_dir, start_target)
    else:
        manifest["target_command"] = ["...", *start_target]
    path = str(out_dir / "manifest.json")
    manifest["suite_command"] = ["tslic", "conformance", "--role", str(role), "--target",
                                 "TARGET", "--manifest", path]  # fmt: skip
    if "admin_credential" in manifest:
        manifest["suite_command"] += ["--admin-credential", manifest["admin_credential"]]
    if "events_command" in manifest:
        manifest["suite_command"] += ["--events-command", manifest["events_command"],
                                      "--status-command", manifest["status_command"]]  # fmt: skip
    write_atomic(out_dir / "manifest.json", json.dumps(manifest, indent=1).encode())
    return manifest


def _fresh_agent(servers: dict[str, str], clock: Path, version: int) -> list[str]:
    """A second terminal server of the same version in a workgroup, with CONF-LS1 as its
    preferred server (LicenseServers on 2003, DefaultLicenseServer on 2000) and CONF-LS2,
    CONF-ENT, CONF-DC and CONF-MEMBER answering its broadcast; the suite starts it itself."""
    preferred = "--license-server" if version == 2003 else "--default-license-server"
    subnet = [arg for name in ("CONF-LS2", "CONF-ENT", "CONF-DC", "CONF-MEMBER")
              for arg in ("--subnet-license-server", f"{name}={servers[name]}")]  # fmt: skip
    return ["tslic", "agent", "--version", str(version), "--name", FRESH_NAME, "--data", DATA,
            "--listen", "127.0.0.1:0", "--clock-file", str(clock), "--workgroup", WORKGROUP,
            "--trust-root", str(clock.parent / "root.pem"), preferred,
            f"CONF-LS1={servers['CONF-LS1']}", *subnet]  # fmt: skip


def _root(out_dir: Path) -> None:
    """The Clearinghouse root the suite plays: `ch-root.key` and `root.pem` in `out_dir`."""
    key = load_or_create_key(out_dir / "ch-root.key")
    now = datetime.now(UTC)
    until = max(now, datetime(2030, 1, 1, tzinfo=UTC)) + timedelta(days=3650)
    root = make_root(key, name="tslic conformance Clearinghouse", serial=1,
                     not_before=datetime(2000, 1, 1, tzinfo=UTC), not_after=until)  # fmt: skip
    write_certs(out_dir / "root.pem", [root])


def _license_server(manifest: Manifest, out_dir: Path, start_target: list[str]) -> None:
    """The Clearinghouse the suite plays: its root (key and certificate), its address, and
    two retail codes it will grant (30 Per Device CALs, 5 User CALs)."""
    _root(out_dir)
    address = f"127.0.0.1:{_free_port(set())}"  # the only port of this preparation
    codes = {make_retail_code(secrets.token_bytes(16)): ("w2003-device-cal", 30),
             make_retail_code(secrets.token_bytes(16)): ("w2003-user-cal", 5)}  # fmt: skip
    manifest["clearinghouse"] = {
        "address": address,
        "root_key": str(out_dir / "ch-root.key"),
        "retail_codes": {c: list(v) for c, v in codes.items()},
    }
    manifest["trust_root"] = str(out_dir / "root.pem")
    data = out_dir / "ls"
    manifest["target_command"] = ["tslic", "server", "--version", "2003", "--name", "CONF-LS",
                                  "--data", str(data), "--listen", "127.0.0.1:0", *start_target,
                                  "--clearinghouse", address, "--trust-root",
                                  str(out_dir / "root.pem")]  # fmt: skip
    manifest["admin_credential"] = str(data / "admin.key")


def _clearinghouse(manifest: Manifest, out_dir: Path, start_target: list[str]) -> None:
    """Purchases for the Clearinghouse cases, with the commands that register them: an Open
    License (8 digits, 15 characters), a Select agreement (7 digits), a retail pack, and three
    Windows XP Professional keys, two bought before 24 April 2003 and one on that day."""
    rng = secrets.SystemRandom()
    digits = "".join(rng.choice("0123456789") for _ in range(15))
    letters = "".join(rng.choice(ALPHABET) for _ in range(100))
    purchases: Purchases = {
        "product": "w2003-device-cal",
        "open_license": {"license_number": "1" + digits[:7], "authorization_number":
                         letters[:15], "count": 5},
        "agreement": {"program": "select", "number": "2" + digits[7:13], "count": 5},
        "retail": {"code": make_retail_code(secrets.token_bytes(16)), "count": 3},
        "xp_eligible": [letters[15:40], letters[40:65]],  # acquired 2003-04-23
        "xp_ineligible": letters[65:90],  # acquired 2003-04-24: not eligible (CH-5)
    }  # fmt: skip
    manifest["purchases"] = purchases
    data = str(out_dir / "ch")
    product = ["--product", purchases["product"]]
    op, ag = purchases["open_license"], purchases["agreement"]
    setup = [
        ["tslic", "clearinghouse", "add-open", "--data", data, *product, "--count",
         str(op["count"]), "--license-number", op["license_number"],
         "--authorization-number", op["authorization_number"]],
        ["tslic", "clearinghouse", "add-agreement", "--data", data, *product, "--count",
         str(ag["count"]), "--program", ag["program"], "--number", ag["number"]],
        ["tslic", "clearinghouse", "add-retail", "--data", data, *product, "--count",
         str(purchases["retail"]["count"]), "--code", purchases["retail"]["code"]],
        *(["tslic", "clearinghouse", "add-xp", "--data", data, "--key", key, "--acquired",
           "2003-04-23", "--channel", "retail"] for key in purchases["xp_eligible"]),
        ["tslic", "clearinghouse", "add-xp", "--data", data, "--key",
         purchases["xp_ineligible"], "--acquired", "2003-04-24", "--channel", "retail"],
    ]  # fmt: skip
    manifest["target_setup"] = setup
    manifest["target_command"] = ["tslic", "clearinghouse", "serve", "--data", data,
                                  "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0",
                                  *start_target]  # fmt: skip
    manifest["web"] = 'WEB (the readiness line\'s "web"): give it to the run as --web'


def load_manifest(path: Path) -> dict[str, Unvalidated]:
    """The manifest `prepare` wrote.

    Raises:
        ServiceError: INVALID_FIELD if it cannot be read or is not a manifest.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ServiceError(f"cannot read the manifest {path}: {exc}",
                           code=ErrorCode.INVALID_FIELD) from None  # fmt: skip
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ServiceError(f"{path} is not a tslic conformance manifest (run `tslic conformance"
                           " prepare`)", code=ErrorCode.INVALID_FIELD)  # fmt: skip
    return data
