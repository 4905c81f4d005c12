"""The lab's catalogue, part 3: the administrator's rules (activation, Per User, the
security group, referral and failover) and, last because it moves the clock to 2007, the
Windows XP transition offer.

Contract: as in scenarios.py.
"""

from __future__ import annotations

import re

from tslic.protocol.clock import parse_date
from tslic.protocol.domain import ActivationMethod, CalProduct, ClientOS, Program
from tslic.protocol.messages.admin import (
    AdminGetStatus,
    AdminInstallKeyPack,
    AdminKeyPacks,
    AdminListKeyPacks,
    AdminListUsers,
    AdminSetPolicy,
    AdminStatus,
    AdminUsers,
)

from .clearinghouse import CODE, first_code
from .model import Context, scenario
from .scenarios import ready_2003_server
from .world import World

DEVICE = CalProduct.W2003_DEVICE_CAL


async def activation_state(world: World, ls: str) -> str:
    (reply,) = await world.admin(ls, AdminGetStatus())
    assert isinstance(reply, AdminStatus)
    return str(reply.status.activation)


async def license_server_id(world: World, ls: str) -> str:
    (reply,) = await world.admin(ls, AdminGetStatus())
    assert isinstance(reply, AdminStatus)
    return reply.status.license_server_id


@scenario(
    "activation",
    "Activation by each method, and what an unactivated server issues",
    rules=("ACT-1", "ACT-2", "ACT-3", "ACT-10", "ACT-11", "CAL-10"),
    source="TechNet cc740046; KB 823313; KB 814593",
)
async def activation(world: World, ctx: Context) -> None:
    await world.license_server("W3KLS10", version=2003, domain="NEWCORP", site="BRANCH")
    await world.agent(
        "W3KTS41",
        version=2003,
        domain="NEWCORP",
        site="BRANCH",
        registry=("W3KLS10",),
    )
    ctx.equal("unactivated", await activation_state(world, "W3KLS10"), "W3KLS10 installed")
    got = await world.connect_twice("W3KTS41", "PC41", ClientOS.XP_PRO)
    ctx.equal(
        "temporary",
        got.license.kind if got.license else got.status,
        "unactivated, a validated device still gets",
    )
    code = await world.activate("W3KLS10", ActivationMethod.TELEPHONE)
    ctx.say(f"by telephone, the Clearinghouse reads out the License Server ID {code}")
    ctx.equal("activated", await activation_state(world, "W3KLS10"), "after the telephone call")
    lsid = await license_server_id(world, "W3KLS10")
    results = await world.phone(
        ["4", lsid, "1", world.catalogue.retail["w2003-device-phone"], "2", "0"]
    )
    keypack_code = results[0]["keypack_code"] if results else ""
    ctx.say(f"licenses installed by telephone: key pack code {keypack_code}")
    await world.admin(
        "W3KLS10",
        AdminInstallKeyPack(
            program=Program.RETAIL,
            product=DEVICE,
            count=0,
            keypack_code=keypack_code,
            method=ActivationMethod.TELEPHONE,
        ),
    )
    after = await world.connect("W3KTS41", "PC41", ClientOS.XP_PRO)
    ctx.equal(
        "permanent",
        after.license.kind if after.license else after.status,
        "once activated, the next connection gets",
    )
    await world.license_server("W3KLS11", version=2003, domain="NEWCORP", site="BRANCH")
    web_code = await world.activate("W3KLS11", ActivationMethod.WEB)
    ctx.say(f"W3KLS11 by the web page: License Server ID {web_code}")
    ctx.equal("activated", await activation_state(world, "W3KLS11"), "after the web page")
    html = await world.web_post(
        "install",
        {
            "license_server_id": await license_server_id(world, "W3KLS11"),
            "program": "retail",
            "product": str(DEVICE),
            "count": "0",
            "retail_code": world.catalogue.retail["w2003-device-web"],
        },
    )
    web_pack = first_code(html, "the web install page")
    (installed,) = await world.admin(
        "W3KLS11",
        AdminInstallKeyPack(
            program=Program.RETAIL,
            product=DEVICE,
            count=0,
            keypack_code=web_pack,
            method=ActivationMethod.WEB,
        ),
    )
    count = getattr(getattr(installed, "keypack", None), "total", 0)
    ctx.equal(5, count, "CALs installed from the web page's key pack code")


@scenario(
    "per-user",
    "Per User mode does not decrement User CALs; the per-user report shows who used them",
    rules=("CAL-7", "TEMP-9", "COMPAT-7"),
    source="KB 823313 'Management limitations for user CALs'; KB 822134; TechNet cc771021",
)
async def per_user(world: World, ctx: Context) -> None:
    if "W3KLS1" not in world.dep.daemons:
        await ready_2003_server(
            world,
            "W3KLS1",
            domain="NEWCORP",
            site="BRANCH",
            role="enterprise",
            packs=("w2003-user-10",),
        )
    await world.agent("W3KTS111", version=2003, domain="NEWCORP", site="BRANCH", mode="per-user")
    ctx.say("W3KTS111 (Per User) finds the enterprise server W3KLS1 published for BRANCH")
    products = []
    for n, user in enumerate(("alice", "bob", "carol"), 1):
        got = await world.connect("W3KTS111", f"PC111-{n}", ClientOS.XP_PRO, user=user)
        products.append(got.license.product if got.license else got.status)
    ctx.equal(["w2003-user-cal"] * 3, products, "three users get")
    (packs,) = await world.admin("W3KLS1", AdminListKeyPacks())
    assert isinstance(packs, AdminKeyPacks)
    issued = sum(p.issued for p in packs.keypacks if p.product is CalProduct.W2003_USER_CAL)
    ctx.equal(0, issued, "User CALs decremented")
    in_use = sum(p.in_use for p in packs.keypacks if p.product is CalProduct.W2003_USER_CAL)
    ctx.equal(3, in_use, "User CALs held from the installed packs")
    (report,) = await world.admin("W3KLS1", AdminListUsers())
    assert isinstance(report, AdminUsers)
    users = sorted({u.user for u in report.users})
    ctx.say(f"the per-user report lists {users}")
    ctx.expect("alice, bob and carol in the report", users, {"alice", "bob", "carol"} <= set(users))


@scenario(
    "security-group",
    "The License Server Security Group refuses an unlisted terminal server",
    rules=("SEC-1", "SEC-3", "SEC-4", "SEC-14", "EVT-7"),
    source="TechNet cc758063; termsrv.dll event 1043",
)
async def security_group(world: World, ctx: Context) -> None:
    await ready_2003_server(
        world, "W3KLS5", domain="NEWCORP", site="BRANCH", packs=("w2003-device-2b",)
    )
    (reply,) = await world.admin(
        "W3KLS5", AdminSetPolicy(security_group_enabled=True, add_members=("W3KTS12A",))
    )
    assert isinstance(reply, AdminStatus)
    ctx.say(
        "the administrator enables the policy and adds W3KTS12A to Terminal Services Computers;"
        " membership changes take effect only when the Terminal Server Licensing service"
        " restarts (TechNet cc758063)"
    )
    st = reply.status
    ctx.expect(
        "W3KTS12A pending, not yet enforced",
        f"enforced {list(st.security_group_members)}, pending {list(st.security_group_pending)}",
        "W3KTS12A" in st.security_group_pending and "W3KTS12A" not in st.security_group_members,
    )
    await world.stop("W3KLS5")
    await world.license_server("W3KLS5", version=2003, domain="NEWCORP", site="BRANCH")
    (after,) = await world.admin("W3KLS5", AdminGetStatus())
    assert isinstance(after, AdminStatus)
    ctx.say("the service restarts and reads the group again")
    ctx.expect(
        "W3KTS12A enforced after the restart",
        list(after.status.security_group_members),
        "W3KTS12A" in after.status.security_group_members,
    )
    ctx.say("W3KLS5 grants licenses only to its Terminal Services Computers: W3KTS12A")
    for ts in ("W3KTS12A", "W3KTS12B"):
        await world.agent(
            ts,
            version=2003,
            domain="NEWCORP",
            site="BRANCH",
            registry=("W3KLS5",),
        )
    member = await world.connect("W3KTS12A", "PC12A", ClientOS.XP_PRO)
    ctx.equal(
        "W3KLS5", member.license.issuer if member.license else member.status, "W3KTS12A licensed by"
    )
    await world.connect("W3KTS12B", "PC12B", ClientOS.XP_PRO)
    status = {s["name"]: s["connectivity"] for s in world.agent_status("W3KTS12B")["servers"]}
    ctx.equal("NOT_IN_TSCGROUP", status.get("W3KLS5"), "W3KTS12B records W3KLS5 as")
    ctx.expect("event 1043", world.agent_events("W3KTS12B"), 1043 in world.agent_events("W3KTS12B"))


@scenario(
    "referral-failover",
    "Referral to another license server, and failover when one stops",
    rules=("CAL-11", "CAL-12", "DISC-8"),
    source="TS licensing FAQ (high availability); KB 232520",
)
async def referral_failover(world: World, ctx: Context) -> None:
    for name in ("W3KLS3", "W3KLS8"):
        if name not in world.dep.daemons:
            await ready_2003_server(
                world,
                name,
                domain="NEWCORP",
                site="BRANCH",
                packs=(f"w2003-device-{'5' if name == 'W3KLS3' else '10b'}",),
            )
    await ready_2003_server(
        world, "W3KLS7", domain="NEWCORP", site="BRANCH", extra=("--peer", world.ref("W3KLS3"))
    )
    ctx.say("W3KLS7 has no CALs; it knows W3KLS3, which has some")
    await world.agent(
        "W3KTS131",
        version=2003,
        domain="NEWCORP",
        site="BRANCH",
        registry=("W3KLS7",),
    )
    got = await world.connect_twice("W3KTS131", "PC131", ClientOS.XP_PRO)
    ctx.equal("W3KLS3", got.license.issuer if got.license else got.status, "referred; issuer")
    await world.agent(
        "W3KTS132",
        version=2003,
        domain="NEWCORP",
        site="BRANCH",
        registry=("W3KLS8", "W3KLS3"),
    )
    await world.connect("W3KTS132", "PC132", ClientOS.XP_PRO)
    ctx.equal("W3KLS8", world.agent_status("W3KTS132")["license_server_in_use"], "in use")
    ctx.say("W3KLS8 stops answering (its process is killed)")
    await world.stop("W3KLS8", kill=True)
    got = await world.connect_twice("W3KTS132", "PC133", ClientOS.XP_PRO)
    ctx.equal("W3KLS3", got.license.issuer if got.license else got.status, "after failover")


XP_ELIGIBLE = "BCDFG-HJKMP-QRTVW-XY234-6789B"
XP_LATE = "CDFGH-JKMPQ-RTVWX-Y2346-789BC"
XP_VOLUME = "DFGHJ-KMPQR-TVWXY-23467-89BCD"
XP_AFTER = "FGHJK-MPQRT-VWXY2-34678-9BCDF"


async def transition_request(world: World, key: str) -> str:
    return await world.web_post(
        "transition",
        {
            "license_type": str(DEVICE),
            "email": "pat@contoso.example",
            "confirm_email": "pat@contoso.example",
            "product_keys": key,
        },
    )


@scenario(
    "transition-offer",
    "The Windows XP transition offer by both methods, within its dates",
    rules=("CH-5", "CH-6", "CH-7"),
    source="KB 823313 'Transitional CALs for Windows XP Professional-based client computers'",
)
async def transition_offer(world: World, ctx: Context) -> None:
    if "W3KLS3" not in world.dep.daemons:
        await ready_2003_server(world, "W3KLS3", domain="NEWCORP", site="BRANCH")
    world.add_xp_license(XP_ELIGIBLE, parse_date("2003-03-01"), "retail")
    world.add_xp_license(XP_LATE, parse_date("2003-04-24"), "oem")
    world.add_xp_license(XP_AFTER, parse_date("2003-02-01"), "retail")
    world.add_xp_license(
        XP_VOLUME,
        parse_date("2003-01-15"),
        "volume",
        program=Program.SELECT,
        agreement_number=world.catalogue.agreement,
    )
    ctx.say("method 1: the Select agreement's XP licenses are installed with its number")
    (pack,) = await world.admin(
        "W3KLS3",
        AdminInstallKeyPack(
            program=Program.SELECT,
            product=DEVICE,
            count=1,
            agreement_number=world.catalogue.agreement,
        ),
    )
    ctx.equal(1, getattr(getattr(pack, "keypack", None), "total", 0), "method 1 CALs")
    late = await transition_request(world, XP_LATE)
    ctx.expect(
        "an XP key acquired on 24 April 2003 refused",
        _refusal(late),
        "TRANSITION_NOT_ELIGIBLE" in late,
    )
    page = await transition_request(world, XP_ELIGIBLE)
    ctx.expect(
        "License Code Request Successfully Processed",
        _refusal(page) or "processed",
        "Successfully Processed" in page,
    )
    token = _token_from_outbox(world)
    ctx.say(f"method 2: the e-mail in the outbox carries the license token {token}")
    (pack,) = await world.admin(
        "W3KLS3",
        AdminInstallKeyPack(
            program=Program.RETAIL, product=DEVICE, count=0, transition_token=token
        ),
    )
    ctx.equal(1, getattr(getattr(pack, "keypack", None), "total", 0), "method 2 CALs")
    await world.clock.jump_to(parse_date("2007-07-01"))
    ended = await transition_request(world, XP_AFTER)
    ctx.expect(
        "a redemption on 1 July 2007 refused", _refusal(ended), "TRANSITION_OFFER_ENDED" in ended
    )


def _refusal(html: str) -> str:
    match = re.search(r"\[([A-Z_]+) \d+\]|\b([A-Z]+_[A-Z_]+)\b", html)
    return (match.group(1) or match.group(2)) if match else ""


def _token_from_outbox(world: World) -> str:
    for path in sorted((world.data / "clearinghouse" / "outbox").glob("*.eml"), reverse=True):
        match = CODE.search(path.read_text(errors="replace"))
        if match:
            return match.group(0)
    return ""
