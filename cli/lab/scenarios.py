"""The lab's catalogue, part 1: deployment and version rules (KB 823313).

Contract: each scenario starts the daemons it needs (named after lab_topology.toml's computers
and its own terminal servers), acts as the administrator and the users would, and checks
what the documentation says should happen. Scenarios share the Clearinghouse, the directory
and the clock, which only moves forward, so they run in catalogue order.
"""

from __future__ import annotations

from tslic.protocol.domain import ActivationMethod, CalProduct, ClientOS
from tslic.protocol.messages.admin import AdminKeyPacks, AdminListKeyPacks, AdminSetPolicy
from tslic.protocol.messages.directory import DirSetComputer
from tslic.protocol.messages.records import ComputerInfo

from .model import Context, scenario
from .world import CREDENTIAL, World

W2003_DEVICE = CalProduct.W2003_DEVICE_CAL


async def ready_2003_server(
    world: World,
    computer: str,
    *,
    domain: str,
    site: str,
    role: str = "domain",
    packs: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    name: str = "",
    method: ActivationMethod = ActivationMethod.AUTOMATIC,
) -> None:
    """Start a 2003 license server, activate it and install retail packs."""
    daemon = name or computer
    await world.license_server(
        computer, version=2003, role=role, domain=domain, site=site, extra=extra, name=daemon
    )
    await world.activate(daemon, method)
    for label in packs:
        product = CalProduct.W2003_USER_CAL if "user" in label else W2003_DEVICE
        await world.install_retail(daemon, label, product)


def connectivity(world: World, agent: str) -> dict[str, str]:
    """Each discovered server's GetTStoLSConnectivityStatus text, by name."""
    return {s["name"]: s["connectivity"] for s in world.agent_status(agent)["servers"]}


async def demote_promote(world: World, computer: ComputerInfo) -> None:
    """Change a computer account, as an administrator with Active Directory tools would."""
    await world.directory_write(DirSetComputer(computer=computer, credential=CREDENTIAL))


@scenario(
    "kb823313-deploy",
    "Deploying 2003 terminal servers in a Windows 2000 domain, by the three options",
    rules=("COMPAT-1", "COMPAT-2", "COMPAT-3", "DISC-1", "DISC-5"),
    source="KB 823313, 'How to deploy Windows Server 2003 Terminal Services'",
)
async def kb823313_deploy(world: World, ctx: Context) -> None:
    # Option 1: upgrade the domain controller that hosts the license server.
    await world.license_server("W2KDC1", version=2000, domain="OLDCORP", site="HQ")
    await world.agent("W3KTS11", version=2003, domain="OLDCORP", site="HQ")
    before = await world.connect("W3KTS11", "PC11", ClientOS.XP_PRO)
    ctx.say(f"OLDCORP: W3KTS11 (2003) finds only the 2000 server on W2KDC1: {before.status}")
    ctx.equal("LOWER_VERSION", connectivity(world, "W3KTS11").get("W2KDC1"), "option 1, before")
    ctx.say("option 1: W2KDC1 is upgraded to Windows Server 2003, and its license server too")
    await world.stop("W2KDC1")
    await demote_promote(
        world,
        ComputerInfo(
            name="W2KDC1", domain="OLDCORP", site="HQ", is_domain_controller=True, os_version=2003
        ),
    )
    await ready_2003_server(
        world, "W2KDC1", domain="OLDCORP", site="HQ", packs=("w2003-device-10",), name="W2KDC1-2003"
    )
    await world.agent("W3KTS12", version=2003, domain="OLDCORP", site="HQ")
    after = await world.connect_twice("W3KTS12", "PC12", ClientOS.XP_PRO)
    ctx.equal("W2KDC1", after.license.issuer if after.license else None, "option 1, issuer")

    # Option 2: a 2003 license server on a member server, named in the registry.
    await world.license_server("W2KDC2", version=2000, domain="MEMBERCORP", site="HQ")
    await ready_2003_server(
        world, "W3KLS2", domain="MEMBERCORP", site="HQ", packs=("w2003-device-3",)
    )
    ctx.say("option 2: MEMBERCORP keeps its 2000 server on W2KDC2 and adds W3KLS2 (2003, member)")
    await world.agent(
        "W3KTS13",
        version=2003,
        domain="MEMBERCORP",
        site="HQ",
        registry=("W3KLS2",),
    )
    after = await world.connect_twice("W3KTS13", "PC13", ClientOS.XP_PRO)
    ctx.equal("W3KLS2", after.license.issuer if after.license else None, "option 2, issuer")

    # Option 3: demote the 2000 license server's DC, upgrade it, add it back as a DC.
    await world.license_server("W2KDC3", version=2000, domain="REBUILDCORP", site="HQ")
    ctx.say(
        "option 3: W2KDC3 is demoted, upgraded to 2003, given a 2003 license server, "
        "and promoted again"
    )
    await world.stop("W2KDC3")
    for dc, os_version in ((False, 2000), (False, 2003), (True, 2003)):
        await demote_promote(
            world,
            ComputerInfo(
                name="W2KDC3",
                domain="REBUILDCORP",
                site="HQ",
                is_domain_controller=dc,
                os_version=os_version,
            ),
        )
    await ready_2003_server(
        world,
        "W2KDC3",
        domain="REBUILDCORP",
        site="HQ",
        packs=("w2003-device-20",),
        name="W2KDC3-2003",
    )
    await world.agent("W3KTS15", version=2003, domain="REBUILDCORP", site="HQ")
    after = await world.connect_twice("W3KTS15", "PC15", ClientOS.XP_PRO)
    ctx.equal("W2KDC3", after.license.issuer if after.license else None, "option 3, issuer")


@scenario(
    "version-skip",
    "A 2003 terminal server skips a 2000 license server and finds a 2003 one",
    rules=("COMPAT-1", "COMPAT-2", "DISC-8"),
    source="KB 823313; KB 301932",
)
async def version_skip(world: World, ctx: Context) -> None:
    await world.license_server("W2KLS6", version=2000, domain="NEWCORP", site="BRANCH")
    await ready_2003_server(
        world, "W3KLS3", domain="NEWCORP", site="BRANCH", packs=("w2003-device-5",)
    )
    ctx.say("W3KTS21 (2003) lists the 2000 server W2KLS6 first, then W3KLS3 (2003)")
    await world.agent(
        "W3KTS21",
        version=2003,
        domain="NEWCORP",
        site="BRANCH",
        registry=("W2KLS6", "W3KLS3"),
    )
    outcome = await world.connect("W3KTS21", "XP-PC21", ClientOS.XP_PRO)
    held = outcome.license
    ctx.say(
        f"an XP Professional client connects: {outcome.status}"
        + (f", a {held.kind} {held.product} from {held.issuer}" if held else "")
    )
    status = connectivity(world, "W3KTS21")
    ctx.equal("LOWER_VERSION", status.get("W2KLS6"), "W2KLS6 recorded as")
    ctx.equal("W3KLS3", world.agent_status("W3KTS21")["license_server_in_use"], "server in use")
    issuer = outcome.license.issuer if outcome.license else None
    ctx.equal("W3KLS3", issuer, "license issued by")


@scenario(
    "w2000-ts-on-2003-ls",
    "A Windows 2000 terminal server served by a 2003 license server",
    rules=("COMPAT-3", "CAL-1", "CAL-2", "CAL-3", "CAL-4"),
    source="KB 823313; Professor Windows 2001; Group Policy Prevent License Upgrade",
)
async def w2000_on_2003(world: World, ctx: Context) -> None:
    await ready_2003_server(
        world, "W3KLS9", domain="NEWCORP", site="BRANCH", extra=(), packs=("w2003-device-2",)
    )
    await world.install_retail("W3KLS9", "w2000-cal-1", CalProduct.W2000_TS_CAL)
    await world.agent(
        "W2KTS31",
        version=2000,
        domain="NEWCORP",
        site="BRANCH",
        extra=("--default-license-server", world.ref("W3KLS9")),
    )
    for device, os in (("PRO31", ClientOS.W2000_PRO), ("XPPRO31", ClientOS.XP_PRO)):
        got = await world.connect("W2KTS31", device, os)
        ctx.equal(
            "w2000-built-in", got.license.product if got.license else got.status, f"{os.value} gets"
        )
    for device, os, want in (
        ("W98-31", ClientOS.WIN98, "w2000-ts-cal"),
        ("NT4-31", ClientOS.NT4, "w2003-device-cal"),
    ):
        await world.connect("W2KTS31", device, os)  # temporary, then validated at logon
        got = await world.connect("W2KTS31", device, os)
        ctx.equal(want, got.license.product if got.license else got.status, f"{os.value} gets")
    ctx.say("the administrator enables Prevent License Upgrade on W3KLS9")
    await world.admin("W3KLS9", AdminSetPolicy(prevent_upgrade=True))
    got = await world.connect_twice("W2KTS31", "HOME31", ClientOS.XP_HOME)
    ctx.equal(
        "temporary",
        got.license.kind if got.license else got.status,
        "with the policy, an XP Home client keeps",
    )


@scenario(
    "keypack-2003-on-2000",
    "A Windows Server 2003 CAL pack is refused by a Windows 2000 license server",
    rules=("COMPAT-4", "EVT-10"),
    source="KB 839878; KB 823313",
)
async def keypack_on_2000(world: World, ctx: Context) -> None:
    if "W2KLS6" not in world.dep.daemons:
        await world.license_server("W2KLS6", version=2000, domain="NEWCORP", site="BRANCH")
    try:
        await world.install_retail("W2KLS6", "w2003-device-1", W2003_DEVICE)
        ctx.expect("refused with 0x13A7", "installed", False)
    except Exception as exc:
        text = str(exc)
        ctx.say(f"the licensing wizard says: {text}")
        code = getattr(exc, "code", None)
        ctx.equal("KEYPACK_NOT_SUPPORTED", getattr(code, "name", code), "refusal code")
        ctx.expect(
            "Message Number 0x13A7", "0x13A7 shown" if "0x13A7" in text else text, "0x13A7" in text
        )
        ctx.expect("event 41", "event 41 cited" if "event 41" in text else text, "event 41" in text)
    (packs,) = await world.admin("W2KLS6", AdminListKeyPacks())
    assert isinstance(packs, AdminKeyPacks)
    ctx.equal(0, sum(p.product is W2003_DEVICE for p in packs.keypacks), "2003 packs on W2KLS6")


@scenario(
    "registry-discovery",
    "A domain license server on a member server is found only through the registry",
    rules=("DISC-1", "DISC-5", "DISC-9"),
    source="KB 823313; KB 301932; Group Policy TS_LICENSE_SERVERS",
)
async def registry_discovery(world: World, ctx: Context) -> None:
    if "W3KLS2" not in world.dep.daemons:
        await ready_2003_server(
            world, "W3KLS2", domain="MEMBERCORP", site="HQ", packs=("w2003-device-3",)
        )
    await world.agent("W3KTS71", version=2003, domain="MEMBERCORP", site="HQ")
    got = await world.connect("W3KTS71", "PC71", ClientOS.XP_PRO)
    found = connectivity(world, "W3KTS71")
    ctx.say(f"without the registry key W3KTS71 finds {sorted(found) or 'nothing'}: {got.status}")
    ctx.expect("W3KLS2 not discovered", sorted(found), "W3KLS2" not in found)
    ctx.say("the administrator adds LicenseServers\\W3KLS2 to W3KTS72's registry")
    await world.agent(
        "W3KTS72",
        version=2003,
        domain="MEMBERCORP",
        site="HQ",
        registry=("W3KLS2",),
    )
    await world.connect("W3KTS72", "PC72", ClientOS.XP_PRO)
    how = next(
        (s["how"] for s in world.agent_status("W3KTS72")["servers"] if s["name"] == "W3KLS2"), None
    )
    ctx.expect("W3KLS2 found by the registry", how, str(how).upper().startswith("REGISTRY"))


async def standing_deployment(world: World) -> None:
    """What `tslic lab up` leaves running: one server and agent of each version."""
    await ready_2003_server(
        world,
        "W3KLS1",
        domain="NEWCORP",
        site="BRANCH",
        role="enterprise",
        packs=("w2003-device-25", "w2003-user-10"),
    )
    await world.license_server("W2KDC1", version=2000, domain="OLDCORP", site="HQ")
    await world.agent(
        "W3KTS2",
        version=2003,
        domain="NEWCORP",
        site="BRANCH",
        extra=("--rdp-listen", "127.0.0.1:0"),  # real RDP clients too (docs/RDP.md)
    )
    await world.agent("W3KTS4", version=2003, domain="NEWCORP", site="BRANCH", mode="per-user")
    await world.agent(
        "W2KTS1",
        version=2000,
        domain="OLDCORP",
        site="HQ",
        extra=("--default-license-server", world.ref("W3KLS1")),
    )


def _rdp_commands(address: object) -> list[str]:
    """Real RDP clients against the agent's RDP listener (docs/RDP.md); they need X (or
    `xvfb-run -a` in front)."""
    if not address:
        return []
    return [
        f"  xfreerdp /v:{address} /sec:tls /cert:ignore /u:alice /p:secret "
        "/client-hostname:LINUXPC",
        f"  rdesktop -u bob -p secret -n RDPC {address}",
    ]


def try_commands(world: World) -> str:
    d = world.dep.daemons
    ls = d["W3KLS1"]
    return "\n".join(
        [
            "",
            "Every daemon follows one clock file; so does every tslic command given it."
            " In your shell:",
            f"  export TSLIC_CLOCK_FILE={world.clock.path}",
            "",
            "Try:",
            "  tslic clock show",
            f"  tslic admin --server {ls.address} --credential {ls.info['admin_credential']} "
            "keypacks",
            f"  tslic connect --agent {d['W3KTS2'].address} --device PC1 --user alice "
            f"--os windows-xp-professional --store {world.data / 'clients' / 'PC1'} "
            f"--trust-root {world.root_pem}",
            f"  tslic agent status --data {world.data / 'agents' / 'W3KTS2'}",
            *_rdp_commands(d["W3KTS2"].info.get("rdp_address")),
            f"  tslic directory query-site --server {d['directory'].address} BRANCH",
            "  tslic clock advance 121d    (then the status commands again: day 121)",
        ]
    )
