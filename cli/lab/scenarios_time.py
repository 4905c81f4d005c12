"""The lab's catalogue, part 2: what time does (grace period, temporaries, leases).

Contract: as in scenarios.py. These scenarios move the shared clock forward by months; every
daemon follows it through the clock file.
"""

from __future__ import annotations

from tslic.protocol.clock import MS_PER_DAY, format_date
from tslic.protocol.domain import CalProduct, ClientOS
from tslic.protocol.messages.admin import AdminKeyPacks, AdminListKeyPacks

from .model import Context, scenario
from .scenarios import ready_2003_server
from .world import World

NO_SERVER_TEXT = "no Terminal Server License Servers available"


@scenario(
    "grace-expiry",
    "The grace period runs out with no license server",
    rules=("GRACE-1", "GRACE-3", "GRACE-6", "GRACE-7", "GRACE-8", "EVT-1", "EVT-2", "EVT-3"),
    source="KB 813052; TechNet hh553157; TechNet cc738708; termsrv.dll messages",
)
async def grace_expiry(world: World, ctx: Context) -> None:
    await world.agent("W3KTS81", version=2003, domain="LONELY", site="HQ")
    first = await world.connect("W3KTS81", "PC81", ClientOS.XP_PRO)
    ctx.say(f"W3KTS81 (2003) in LONELY, which has no license server: {first.status}")
    ctx.equal("valid-client", first.status, "first connection")
    ctx.equal(120, world.agent_status("W3KTS81")["grace"]["days_left"], "grace days left")
    await world.clock.jump(days=110)
    during = await world.connect("W3KTS81", "PC81", ClientOS.XP_PRO)
    ctx.say(f"110 days later: {during.status}; events so far {world.agent_events('W3KTS81')}")
    ctx.equal("valid-client", during.status, "day 110")
    ctx.expect(
        "event 1009 logged", world.agent_events("W3KTS81"), 1009 in world.agent_events("W3KTS81")
    )
    await world.clock.jump(days=11)
    after = await world.connect("W3KTS81", "PC81", ClientOS.XP_PRO)
    ctx.say(f"day 121: the user sees: {after.text}")
    ctx.equal("disconnected", after.status, "day 121")
    ctx.expect("the 'no license servers' text", after.text[:60], NO_SERVER_TEXT in after.text)
    events = world.agent_events("W3KTS81")
    ctx.expect("events 1008 and 1026", events, 1008 in events and 1026 in events)


@scenario(
    "temporary-to-permanent",
    "Temporary license, validation after logon, permanent on the next connection, "
    "renewal and lease expiry",
    rules=("TEMP-4", "TEMP-5", "TEMP-7", "LEASE-1", "LEASE-3", "LEASE-4", "LEASE-8"),
    source="KB 287687; TechNet cc727934; TS licensing FAQ; TechNet Revoke a Per Device CAL",
)
async def temporary_to_permanent(world: World, ctx: Context) -> None:
    await ready_2003_server(
        world, "W3KLS8", domain="NEWCORP", site="BRANCH", packs=("w2003-device-5b",)
    )
    await world.agent(
        "W3KTS91",
        version=2003,
        domain="NEWCORP",
        site="BRANCH",
        registry=("W3KLS8",),
    )
    first = await world.connect("W3KTS91", "PC91", ClientOS.XP_HOME)
    kind = first.license.kind if first.license else first.status
    ctx.say(f"PC91's first connection and logon: a {kind} license")
    ctx.equal("temporary", kind, "first connection")
    second = await world.connect("W3KTS91", "PC91", ClientOS.XP_HOME)
    lic = second.license
    ctx.equal("permanent", lic.kind if lic else second.status, "second connection")
    if lic is None:
        return
    days = (lic.expires_at - lic.issued_at) / MS_PER_DAY
    ctx.say(f"the permanent CAL is leased until {format_date(lic.expires_at)} ({days:.0f} days)")
    ctx.expect("a lease of 52 to 89 days", f"{days:.0f} days", 52 <= days <= 89)
    await world.clock.jump_to(lic.expires_at - 3 * MS_PER_DAY)
    renewed = await world.connect("W3KTS91", "PC91", ClientOS.XP_HOME)
    new = renewed.license
    ctx.say(f"3 days before expiry: renewed until {format_date(new.expires_at) if new else '-'}")
    ctx.expect(
        "renewed with a later expiry",
        new and format_date(new.expires_at),
        bool(new and new.expires_at > lic.expires_at),
    )
    # A device that never comes back: its lease runs out and the CAL returns to the pool.
    gone = await world.connect_twice("W3KTS91", "PC92", ClientOS.NT4)
    before = await _available(world, "W3KLS8")
    ctx.say(f"PC92 gets a permanent CAL and is never seen again; {before} left in the pool")
    if gone.license is not None:
        await world.clock.jump_to(gone.license.expires_at + MS_PER_DAY)
    await world.clock.jump(days=1)
    after = await _available(world, "W3KLS8")
    ctx.expect("the expired lease returns to the pool", f"{before} -> {after}", after > before)


async def _available(world: World, ls: str) -> int:
    (reply,) = await world.admin(ls, AdminListKeyPacks())
    assert isinstance(reply, AdminKeyPacks)
    return sum(p.available for p in reply.keypacks if p.product is CalProduct.W2003_DEVICE_CAL)


@scenario(
    "empty-pool",
    "An empty pool: a temporary license, then refusal after 90 days",
    rules=("TEMP-1", "TEMP-2", "TEMP-3", "CAL-13", "EVT-4", "EVT-9"),
    source="KB 813052; TechNet cc775305",
)
async def empty_pool(world: World, ctx: Context) -> None:
    await ready_2003_server(world, "W3KLS4", domain="NEWCORP", site="BRANCH")
    # With the default rule the terminal server would still be in its own 120-day grace
    # period and accept the client anyway; KB 813052's reading (grace ends once a license
    # server is found) is the documented switch that isolates the temporary license's 90 days.
    await world.agent(
        "W3KTS101",
        version=2003,
        domain="NEWCORP",
        site="BRANCH",
        extra=("--license-server", world.ref("W3KLS4"), "--grace-ends", "first-license-server"),
    )
    ctx.say("W3KLS4 is activated but has no CALs installed; W3KTS101's grace ends at discovery")
    first = await world.connect("W3KTS101", "PC101", ClientOS.XP_PRO)
    second = await world.connect("W3KTS101", "PC101", ClientOS.XP_PRO)
    ctx.equal("temporary", first.license.kind if first.license else first.status, "first")
    ctx.equal(
        "temporary",
        second.license.kind if second.license else second.status,
        "second, with no CAL left",
    )
    if first.license and second.license:
        ctx.equal(
            format_date(first.license.expires_at),
            format_date(second.license.expires_at),
            "the temporary keeps its expiry",
        )
    await world.clock.jump(days=91)
    late = await world.connect("W3KTS101", "PC101", ClientOS.XP_PRO)
    ctx.say(f"91 days later the user sees: {late.text}")
    ctx.equal("disconnected", late.status, "after 90 days")
    ctx.expect("event 1011", world.agent_events("W3KTS101"), 1011 in world.agent_events("W3KTS101"))
