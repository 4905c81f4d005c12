"""One device past its grace period, and the sources an agent (terminal server) target must not
use, with the suite playing its license servers (docs/PROTOCOL.md §7.11, §7.12: GRACE-9,
DISC-5, DISC-6).

Contract: they need the manifest of `tslic conformance prepare --role agent` and run after
cases_agent_env (the grace period is over; GRACE-9 moves past it itself if run alone) and
before cases_agent_lic, whose first case sets CONF-LS1 and CONF-LS2 again; they leave
CONF-MEMBER and CONF-ALIEN denying.
- GRACE-9 follows the agent's first client (GRACE-2 keeps its key, which is its hardware id):
  after the grace period a valid license server issues it a temporary license; one day after
  that license expired, with the license server refusing it (NO_LICENSE_AVAILABLE, as a
  correct one refuses a device whose one temporary ran out, TEMP-2), the device must be
  refused both presenting its expired temporary and asking as a new client.
- DISC-5: the agent was started with CONF-MEMBER (a domain license server on a member server
  of its domain: the directory knows the computer, not as a domain controller, and does not
  publish it) as the subnet's answer to a broadcast. A terminal server in a domain does not
  broadcast, so nothing leads a correct one to it. First only CONF-ENT (the site's
  enterprise server, also on a member server) is valid: the agent must license through it;
  then only CONF-MEMBER: no client may be licensed and CONF-MEMBER must never have been
  contacted by the agent.
- DISC-6: the agent was started with CONF-ALIEN configured through a source its version does
  not know (2003: DefaultLicenseServer; 2000: LicenseServers and the SP1 policy). Only
  CONF-ALIEN is valid: no client may be licensed, and CONF-ALIEN must never have been
  contacted in the whole run (every discovery of the run before this case counts).
Contacts are judged from the doubles' log (peers.Peers.contacts), leaving out the second
terminal server the suite starts later (cases_agent_fresh, prepare.FRESH_NAME).
"""

from __future__ import annotations

from tslic.protocol.licenses import open_license
from tslic.protocol.messages.rdp import StateTransition

from .cases_agent import Exchange, _alert
from .cases_agent_disc import _judge, _through
from .cases_agent_env import (
    DAY,
    GRACE_DAYS,
    REDISCOVER,
    Unprepared,
    _client,
    _need_peers,
    _outcome,
    _until,
    _version,
    pair,
)
from .context import Context
from .lsclient import move_clock
from .model import Case, Judgement, Role, Verdict, case
from .peers import LsMode
from .prepare import FRESH_NAME

CASES: list[Case] = []
AGENT = frozenset({Role.AGENT})
ABORT = int(StateTransition.ST_TOTAL_ABORT)


def _licensed(ex: Exchange) -> bool:
    return any(f.name in ("NewLicense", "UpgradeLicense") for f in ex.frames)


def _refused(ex: Exchange) -> bool:
    alert = _alert(ex.last)
    return alert is not None and alert[1] == ABORT


@case(CASES, "GRACE-9", "grace-plus-one-temporary", "the agent's first client (GRACE-2's, a "
      "device that worked from the start of the grace period) asks after the grace period, "
      "when CONF-LS2 (2003) or CONF-DC (2000) issues 90-day temporary licenses; the clock moves "
      "one day past the expiry of the temporary it got, the license server now refuses it "
      "(NO_LICENSE_AVAILABLE, TEMP-2), and the device presents its expired temporary, then "
      "asks as a new client", ("a temporary license after the grace period, then ErrorAlert "
      "ST_TOTAL_ABORT both times: no work past the grace period plus one temporary license "
      "(210 days on 2003, 180 on 2000)",), roles=AGENT)  # fmt: skip
async def grace_plus_temporary(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
        assert ctx.peers is not None
        key = ctx.shared.get("first_device")
        if key is None:
            raise Unprepared("needs the first client of GRACE-2 (run GRACE-2 first)")
        await ctx.open_raw()
        days = GRACE_DAYS[_version(ctx)]
        _, issuer = pair(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    if ctx.now() < ctx.origin + days * DAY:
        await move_clock(ctx, ctx.origin + (days + 1) * DAY - ctx.now())
    ctx.peers.set_all(LsMode.DENY)
    issuer.mode = LsMode.VALID
    await move_clock(ctx, REDISCOVER)

    def temporary(ex: Exchange, alert: object) -> bool:
        return ex.last is not None and ex.last.name == "NewLicense"

    ex, _ = await _until(ctx, temporary, key=key)
    if not temporary(ex, None) or ex.last is None or ex.last.body is None:
        return Judgement(Verdict.FAIL, f"after the grace period the device got {_outcome(ex)} "
                         f"with {issuer.name} valid")  # fmt: skip
    blob = bytes(ex.last.body["license"])
    body = open_license(blob).body
    issued_day = (ctx.now() - ctx.origin) / DAY
    await move_clock(ctx, max(0, body.expires_at + DAY - ctx.now()))
    issuer.mode = LsMode.REFUSE
    day = (ctx.now() - ctx.origin) / DAY
    presented, _ = await _client(ctx, key=key, license=blob)
    anew, _ = await _client(ctx, key=key)
    issuer.mode = LsMode.VALID
    history = (
        f"grace from day 0, a {body.kind} license at day {issued_day:.0f} expiring "
        f"{(body.expires_at - body.issued_at) / DAY:.0f} days later; at day {day:.0f}: "
        f"presenting it: {_outcome(presented)}; asking anew: {_outcome(anew)}"
    )
    if _refused(presented) and _refused(anew):
        return Judgement(Verdict.PASS, history)
    return Judgement(Verdict.FAIL, f"the device still works after its grace period and one "
                     f"temporary license: {history}")  # fmt: skip


def _configured(ctx: Context, name: str, why: str) -> None:
    """The double `name` exists and the agent was started with it (the manifest's command)."""
    _need_peers(ctx)
    assert ctx.peers is not None
    if name not in ctx.peers.license_servers:
        raise Unprepared(f"the manifest lacks {name} (run `tslic conformance prepare` again)")
    if not any(name in arg for arg in ctx.manifest.get("target_command", [])):
        raise Unprepared(f"the agent was not started with {name} {why} (the manifest's "
                         "target_command)")  # fmt: skip


async def _only_valid(ctx: Context, name: str) -> tuple[Exchange, Exchange]:
    """Only `name` valid, the clock past re-discovery; two new clients ask (the first may be
    answered from what the agent knew before)."""
    assert ctx.peers is not None
    ctx.peers.set_all(LsMode.DENY)
    ctx.peers.license_servers[name].mode = LsMode.VALID
    await ctx.open_raw()
    await move_clock(ctx, REDISCOVER)
    first, _ = await _client(ctx)
    second, _ = await _client(ctx)
    return first, second


def _contacts(ctx: Context, name: str) -> list[str]:
    assert ctx.peers is not None
    return [f"{who}: {what}" for who, double, what in ctx.peers.contacts
            if double == name and who != FRESH_NAME]  # fmt: skip


def _never_used(ctx: Context, name: str, clients: tuple[Exchange, Exchange], done: str) -> (
    Judgement
):  # fmt: skip
    contacted = _contacts(ctx, name)
    got = "; ".join(_outcome(ex) for ex in clients)
    if contacted or any(_licensed(ex) for ex in clients):
        return Judgement(Verdict.FAIL, f"{name} was contacted: {contacted[:6] or 'no'}; "
                         f"clients got: {got}")  # fmt: skip
    return Judgement(Verdict.PASS, f"{done}{name} never contacted; clients got: {got}")


@case(CASES, "DISC-5", "member-server-not-found", "CONF-MEMBER, a domain license server on a "
      "member server (known to the directory, not a domain controller, not published), would "
      "answer a broadcast; first only CONF-ENT (the site's enterprise server, on a member "
      "server) is valid, then only CONF-MEMBER; after re-discovery new clients ask",
      ("a license through CONF-ENT; then no license, and CONF-MEMBER never contacted",),
      roles=AGENT)  # fmt: skip
async def member_server(ctx: Context) -> Judgement:
    try:
        _configured(ctx, "CONF-MEMBER", "as the subnet's answer to a broadcast")
        assert ctx.peers is not None
        ex, asked = await _through(ctx, ("CONF-ENT",), "CONF-ENT")
        failed = _judge(ex, asked, "CONF-ENT", "an enterprise server on a member server is "
                        "found through its site publication")  # fmt: skip
        if failed is not None:
            return failed
        clients = await _only_valid(ctx, "CONF-MEMBER")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    finally:
        if ctx.peers is not None and "CONF-MEMBER" in ctx.peers.license_servers:
            ctx.peers.license_servers["CONF-MEMBER"].mode = LsMode.DENY
    return _never_used(ctx, "CONF-MEMBER", clients, "licensed through CONF-ENT; ")


@case(CASES, "DISC-6", "foreign-source-ignored", "the agent was started with CONF-ALIEN "
      "configured through a source its version does not know (2003: DefaultLicenseServer; "
      "2000: LicenseServers and the SP1 policy); only CONF-ALIEN is valid; after re-discovery "
      "new clients ask", ("no license, and CONF-ALIEN never contacted in the whole run",),
      roles=AGENT)  # fmt: skip
async def foreign_source(ctx: Context) -> Judgement:
    try:
        _configured(ctx, "CONF-ALIEN", "through a source of the other version")
        clients = await _only_valid(ctx, "CONF-ALIEN")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    finally:
        if ctx.peers is not None and "CONF-ALIEN" in ctx.peers.license_servers:
            ctx.peers.license_servers["CONF-ALIEN"].mode = LsMode.DENY
    return _never_used(ctx, "CONF-ALIEN", clients, "")
