"""Discovery order and records of an agent (terminal server) target, with the suite playing
its license servers and its directory (docs/PROTOCOL.md §7.11, §7.12: DISC-1, DISC-3, DISC-7,
DISC-9, GRACE-5).

Contract: they need the manifest of `tslic conformance prepare --role agent` (the agent in the
suite's domain and site, `--directory` the suite's) and run after cases_agent_lic. Four
license servers are played: CONF-LS1 and CONF-LS2 (the configured sources: LicenseServers on
2003, CONF-LS1 as DefaultLicenseServer on 2000), CONF-ENT (published as the site's enterprise
license server) and CONF-DC (the domain controller, running a license server). A case makes
only some of them valid, moves the clock past re-discovery, and sees which one the agent asks
for a new client's license (the doubles count requests). The status cases read the target's
documented status (`--status-command`, the JSON of `tslic agent status --json`). The module
ends with CONF-LS1 valid, for the challenge cases of cases_agent.
"""

from __future__ import annotations

import json
import shlex
import subprocess

from tslic.protocol.codec import Unvalidated

from .cases_agent import Exchange
from .cases_agent_env import REDISCOVER, Unprepared, _need_peers, _outcome, _until, _version
from .context import Context
from .lsclient import move_clock
from .model import Case, Judgement, Role, Verdict, case
from .peers import LsMode

CASES: list[Case] = []
AGENT = frozenset({Role.AGENT})
HOW = {"policy": 0, "registry": 1, "workgroup": 2, "domain": 3, "enterprise": 4}


def status(ctx: Context) -> dict[str, Unvalidated]:
    """The target's status document (--status-command)."""
    command = ctx.config.status_command
    if not command:
        raise Unprepared("needs --status-command (the target's documented status interface)")
    try:
        out = subprocess.run(shlex.split(command), capture_output=True, text=True,
                             timeout=max(ctx.timeout, 10), check=True).stdout  # fmt: skip
        doc = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise Unprepared(f"--status-command failed: {exc}") from None
    if not isinstance(doc, dict):
        raise Unprepared("--status-command did not print a JSON object")
    ctx.transcript.event(f"status: {json.dumps(doc)[:400]}")
    return doc


def _how(value: object) -> int | None:
    if isinstance(value, int):
        return value
    return HOW.get(str(value).lower())


async def _through(ctx: Context, valid: tuple[str, ...], want: str) -> (
    tuple[Exchange, dict[str, int]]
):  # fmt: skip
    """Make only `valid` license servers valid, move past re-discovery, and ask as a new
    client until one is licensed through `want` (the agent re-discovers in the background,
    so an answer from the server in use before may come first) or --timeout runs out; return
    the last exchange and how many IssueLicense each double received for it."""
    _need_peers(ctx)
    assert ctx.peers is not None
    await ctx.open_raw()
    servers = ctx.peers.license_servers
    for name, double in servers.items():
        double.mode = LsMode.VALID if name in valid else LsMode.DENY
    await move_clock(ctx, REDISCOVER)
    before: dict[str, int] = {}

    def through_want(ex: Exchange, alert: object) -> bool:
        asked = {n: d.requests["IssueLicense"] - before.get(n, 0) for n, d in servers.items()}
        before.update({n: d.requests["IssueLicense"] for n, d in servers.items()})
        licensed = any(f.name == "NewLicense" for f in ex.frames)
        last.clear()
        last.update({n: k for n, k in asked.items() if k})
        return licensed and list(last) == [want]

    last: dict[str, int] = {}
    before.update({n: d.requests["IssueLicense"] for n, d in servers.items()})
    ex, _ = await _until(ctx, through_want)
    return ex, dict(last)


def _judge(ex: Exchange, asked: dict[str, int], want: str, why: str) -> Judgement | None:
    """None when the license came through `want` only; else the failing judgement."""
    if list(asked) == [want] and any(f.name == "NewLicense" for f in ex.frames):
        return None
    return Judgement(Verdict.FAIL, f"{why}: asked {asked or 'none'}; {_outcome(ex)}")


def _order_case(rule: str, version: int, steps: tuple[tuple[tuple[str, ...], str, str], ...],
                description: str) -> None:  # fmt: skip
    @case(CASES, rule, f"order-{version}", description,
          (f"a {version} agent: each license through the first valid source in order",
           "an agent of the other version: unsupported"), roles=AGENT)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        try:
            _need_peers(ctx)
            await ctx.open_raw()
            if _version(ctx) != version:
                return Judgement(Verdict.UNSUPPORTED, f"a rule for {version} terminal servers")
            done = []
            for valid, want, why in steps:
                ex, asked = await _through(ctx, valid, want)
                failed = _judge(ex, asked, want, why)
                if failed is not None:
                    return failed
                done.append(f"{'+'.join(valid)} valid: {want} used")
        except Unprepared as why:
            return Judgement(Verdict.UNSUPPORTED, str(why))
        return Judgement(Verdict.PASS, "; ".join(done))


_order_case("DISC-1", 2003, (
    (("CONF-ENT", "CONF-DC"), "CONF-ENT", "the site's enterprise server comes before the DC's"),
    (("CONF-LS2", "CONF-ENT"), "CONF-LS2", "LicenseServers come before the enterprise server"),
), "only CONF-ENT (enterprise, the agent's site) and CONF-DC (domain controller) are valid, "
   "then only CONF-LS2 (LicenseServers) and CONF-ENT; after re-discovery a new client asks "
   "each time")  # fmt: skip
_order_case("DISC-3", 2000, (
    (("CONF-ENT", "CONF-DC"), "CONF-DC", "the domain controllers come before the enterprise"),
    (("CONF-LS1", "CONF-DC"), "CONF-LS1", "DefaultLicenseServer comes first"),
), "only CONF-ENT (enterprise) and CONF-DC (domain controller) are valid, then only "
   "CONF-LS1 (DefaultLicenseServer) and CONF-DC; after re-discovery a new client asks each "
   "time")  # fmt: skip


def _servers(ctx: Context) -> list[dict[str, Unvalidated]]:
    rows = status(ctx).get("servers", [])
    return [r for r in rows if isinstance(r, dict)]


@case(CASES, "DISC-9", "how-discovered", "after DISC-1 or DISC-3 the agent has found every "
      "source; its status lists the license servers it found", ("registry (1) for CONF-LS1/2, "
      "domain (3) for CONF-DC, enterprise (4) for CONF-ENT",), roles=AGENT)  # fmt: skip
async def how_discovered(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
        rows = _servers(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    # CONF-LS2 is configured (registry) on 2003 agents; a 2000 one finds it only published
    # as an enterprise server (the conf-ls2 spelling of DISC-7)
    await ctx.open_raw()
    want = {"conf-ls1": 1, "conf-ls2": 1 if _version(ctx) == 2003 else 4, "conf-dc": 3,
            "conf-ent": 4}  # fmt: skip
    found = {str(r.get("name", "")).casefold(): _how(r.get("how")) for r in rows}
    wrong = [f"{n}: {found[n]} (expected {h})" for n, h in want.items()
             if n in found and found[n] != h]  # fmt: skip
    if wrong or not found:
        return Judgement(Verdict.FAIL, "; ".join(wrong) or "no license server listed")
    return Judgement(Verdict.PASS, ", ".join(f"{n}: {h}" for n, h in found.items()))


@case(CASES, "DISC-7", "case-insensitive-names", "CONF-LS2 (LicenseServers) is also published "
      "as the site's enterprise server under the spelling conf-ls2", ("one entry for it, found "
      "through the registry (its first source)",), roles=AGENT)  # fmt: skip
async def case_insensitive(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
        await ctx.open_raw()
        if _version(ctx) != 2003:
            return Judgement(Verdict.UNSUPPORTED, "CONF-LS2 is configured on 2003 agents only")
        rows = _servers(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    mine = [r for r in rows if str(r.get("name", "")).casefold() == "conf-ls2"]
    if len(mine) != 1 or _how(mine[0].get("how")) != 1:
        return Judgement(Verdict.FAIL, f"entries for CONF-LS2: {mine}")
    return Judgement(Verdict.PASS, "one entry, found through the registry")


@case(CASES, "GRACE-5", "days-left-rounded-up", "the agent's status once the grace period is "
      "over (after GRACE-1)", ("grace days left 0",), roles=AGENT)  # fmt: skip
async def days_left(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
        doc = status(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    left = (doc.get("grace") or {}).get("days_left")
    if left == 0:
        return Judgement(Verdict.PASS, "0 days left")
    return Judgement(Verdict.FAIL, f"{left} days left after the grace period")


@case(CASES, "CAL-12", "agent-follows-referral", "CONF-LS1 (first in order) has no CAL left "
      "and refers every license request to CONF-LS2, a valid server; after re-discovery a new "
      "client asks", ("a license through CONF-LS2, asked after CONF-LS1's Referral",),
      roles=AGENT)  # fmt: skip
async def follows_referral(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
        assert ctx.peers is not None
        servers = ctx.peers.license_servers
        ls1, ls2 = servers["CONF-LS1"], servers["CONF-LS2"]
        ls1.refer_to = (ls2.name, ctx.peers.addresses[ls2.name])
        await ctx.open_raw()
        for double in servers.values():
            double.mode = LsMode.DENY
        ls1.mode, ls2.mode = LsMode.REFER, LsMode.VALID
        await move_clock(ctx, REDISCOVER)
    except (Unprepared, KeyError) as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    referred, asked = ls1.requests["IssueLicense"], ls2.requests["IssueLicense"]

    def licensed(ex: Exchange, alert: object) -> bool:
        return any(f.name == "NewLicense" for f in ex.frames) and ls1.requests[
            "IssueLicense"] > referred  # fmt: skip

    ex, _ = await _until(ctx, licensed)
    if licensed(ex, None) and ls2.requests["IssueLicense"] > asked:
        return Judgement(Verdict.PASS, f"{_outcome(ex)}: referred by CONF-LS1, issued by CONF-LS2")
    return Judgement(Verdict.FAIL, f"{_outcome(ex)}; CONF-LS1 asked "
                     f"{ls1.requests['IssueLicense'] - referred}, CONF-LS2 asked "
                     f"{ls2.requests['IssueLicense'] - asked} time(s)")  # fmt: skip


@case(CASES, "DISC-8", "valid-server-for-the-challenge-cases", "CONF-LS1 is made valid for the "
      "cases that follow (cases_agent); a new client asks", ("a license through CONF-LS1",),
      roles=AGENT)  # fmt: skip
async def leave_valid(ctx: Context) -> Judgement:
    try:
        ex, asked = await _through(ctx, ("CONF-LS1",), "CONF-LS1")
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    failed = _judge(ex, asked, "CONF-LS1", "the only valid server")
    return failed or Judgement(Verdict.PASS, f"{_outcome(ex)} through CONF-LS1")
