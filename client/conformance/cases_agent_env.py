"""Grace period, events and the version skip of an agent (terminal server) target, with the
suite playing its license servers (docs/PROTOCOL.md §7.7, §7.11, §7.12, §7.18: GRACE-1, 3, 6,
7, 8; EVT-1, 2, 3; COMPAT-1; DISC-8).

Contract: these cases need the preparation of `tslic conformance prepare --role agent`: the
agent started with the manifest's clock file and license servers, and the run given
`--manifest` (without it they are `unsupported`). They run in order on one agent, moving its
clock forward only: the doubles first deny every terminal server (no license server found),
so the agent is in its grace period (GRACE-3); the clock then moves to two days before the
end of the version's grace period (90 days for 2000, 120 for 2003: the suite's own figures)
and one day past it (GRACE-1, GRACE-8); the events the agent reports through
`--events-command` are read (EVT-1, EVT-2, EVT-3, GRACE-6, GRACE-7); then the doubles play
a Windows 2000 license server that welcomes a 2003 terminal server anyway (COMPAT-1) and
finally one valid 2003 license server behind a denying one (DISC-8). After a change of the
doubles the clock moves past the agent's re-discovery interval (61 minutes, DISC-10) and the
case retries the client for up to `--timeout` while the agent re-discovers in the background.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from typing import Unpack

import trio
from tslic.protocol.codec import Unvalidated
from tslic.protocol.messages.rdp import RdpError, StateTransition

from .cases_agent import Exchange, ExchangeOptions, _alert, exchange
from .context import Context
from .lsclient import move_clock
from .model import Case, Judgement, Role, Verdict, case
from .peers import LsDouble, LsMode

CASES: list[Case] = []
AGENT = frozenset({Role.AGENT})
DAY = 86_400_000
GRACE_DAYS = {2000: 90, 2003: 120}  # GRACE-1 (the suite's figures, not the target's)
REDISCOVER = 61 * 60_000  # past the 60-minute re-discovery (DISC-10)
NO_LS = (int(RdpError.ERR_NO_LICENSE_SERVER), int(StateTransition.ST_TOTAL_ABORT), 0x101)
VALID = int(RdpError.STATUS_VALID_CLIENT)


class Unprepared(Exception):
    pass


def _need_peers(ctx: Context) -> None:
    if ctx.peers is None or not ctx.peers.license_servers:
        raise Unprepared("needs --manifest from `tslic conformance prepare --role agent`, with "
                         "the agent started as it says (docs/CONFORMANCE.md §2)")  # fmt: skip
    if ctx.config.clock_file is None:
        raise Unprepared("needs the manifest's clock file")


def _version(ctx: Context) -> int:
    """The agent's version from its LicenseRequest greeting (ProductInfo.version 5.0 / 5.2),
    remembered for the later cases of the run."""
    if ctx.greeting is None and "agent_version" in ctx.shared:
        return int(ctx.shared["agent_version"])
    body: dict[str, Unvalidated] = (ctx.greeting.body or {}) if ctx.greeting else {}
    product = body.get("product") or {}
    value = int(product.get("version", 0)) if isinstance(product, dict) else 0
    version = 2000 if value and value & 0xFFFF == 0 else 2003
    ctx.shared["agent_version"] = version
    return version


def pair(ctx: Context) -> tuple[LsDouble, LsDouble]:
    """The agent's first two configured or found license servers, in its discovery order:
    CONF-LS1 and CONF-LS2 (LicenseServers) for 2003; CONF-LS1 (DefaultLicenseServer) and
    CONF-DC (a domain controller) for 2000. The other doubles are left as they are."""
    _need_peers(ctx)
    assert ctx.peers is not None
    servers = ctx.peers.license_servers
    second = "CONF-LS2" if _version(ctx) == 2003 else "CONF-DC"
    if "CONF-LS1" not in servers or second not in servers:
        raise Unprepared("the manifest lacks CONF-LS1 or " + second)
    return servers["CONF-LS1"], servers[second]


def _outcome(ex: Exchange) -> str:
    return ex.names()


async def _client(
    ctx: Context, **kw: Unpack[ExchangeOptions]
) -> tuple[Exchange, tuple[int, int, int] | None]:
    ex = await exchange(ctx, **kw)
    if ex.client is not None:
        await ex.client.aclose()
    return ex, _alert(ex.last)


async def _until(
    ctx: Context,
    want: Callable[[Exchange, tuple[int, int, int] | None], bool],
    **kw: Unpack[ExchangeOptions],
) -> (
    tuple[Exchange, tuple[int, int, int] | None]
):  # fmt: skip
    """Ask as a new client (`kw` as for `exchange`) until `want(exchange, alert)` holds or
    --timeout runs out (the agent re-discovers in the background after the clock moved)."""
    ex, alert = await _client(ctx, **kw)
    with trio.move_on_after(ctx.timeout * 2):
        while not want(ex, alert):
            await trio.sleep(0.05)
            ex, alert = await _client(ctx, **kw)
    return ex, alert


def _valid_client(ex: Exchange, alert: tuple[int, int, int] | None) -> bool:
    return alert is not None and alert[0] == VALID


@case(CASES, "GRACE-3", "grace-valid-client", "every license server the agent knows denies it; "
      "a new client asks for a license", ("ErrorAlert STATUS_VALID_CLIENT / ST_NO_TRANSITION "
      "without any license request reaching a license server",), roles=AGENT)  # fmt: skip
async def grace_valid(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    assert ctx.peers is not None
    ctx.peers.set_all(LsMode.DENY)
    before = ctx.peers.issued()
    ex, alert = await _client(ctx)
    if not _valid_client(ex, alert):
        return Judgement(Verdict.FAIL, f"in its grace period the agent answered {_outcome(ex)}")
    if ctx.peers.issued() != before:
        return Judgement(Verdict.FAIL, "a license server was asked for a license in grace")
    return Judgement(Verdict.PASS, _outcome(ex))


@case(CASES, "GRACE-1", "grace-length", "with no license server, the suite moves the agent's "
      "clock to 2 days before the end of its grace period (90 days for 2000, 120 for 2003 from "
      "the first client), then 1 day past it, asking as a new client each time",
      ("STATUS_VALID_CLIENT before the end; not after it",), roles=AGENT)  # fmt: skip
async def grace_length(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    await ctx.open_raw()  # the greeting says the agent's version
    days = GRACE_DAYS[_version(ctx)]
    await move_clock(ctx, max(0, ctx.origin + (days - 2) * DAY - ctx.now()))
    ex, alert = await _client(ctx)
    if not _valid_client(ex, alert):
        return Judgement(Verdict.FAIL, f"{days - 2} days after the first client the grace "
                         f"period is over already: {_outcome(ex)}")  # fmt: skip
    await move_clock(ctx, max(0, ctx.origin + (days + 1) * DAY - ctx.now()))
    ex, alert = await _client(ctx)
    if _valid_client(ex, alert):
        return Judgement(Verdict.FAIL, f"{days + 1} days after the first client the agent "
                         f"still answers STATUS_VALID_CLIENT: grace over {days} days")  # fmt: skip
    return Judgement(Verdict.PASS, f"valid at day {days - 2}, {_outcome(ex)} at day {days + 1}")


@case(CASES, "GRACE-8", "after-grace-no-license-server", "after the grace period (GRACE-1 moved "
      "the clock), with no license server, a new client asks for a license",
      ("ErrorAlert ERR_NO_LICENSE_SERVER / ST_TOTAL_ABORT, disconnect reason 0x101",),
      roles=AGENT)  # fmt: skip
async def after_grace(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    await ctx.open_raw()
    if ctx.now() < ctx.origin + GRACE_DAYS[_version(ctx)] * DAY:
        return Judgement(Verdict.UNSUPPORTED, "the grace period is not over (run GRACE-1 first)")
    ex, alert = await _client(ctx)
    if alert == NO_LS:
        return Judgement(Verdict.PASS, _outcome(ex))
    return Judgement(Verdict.FAIL, f"answered {_outcome(ex)}")


def _events(ctx: Context) -> list[int]:
    """The ids of the events the target reports (--events-command), oldest first."""
    command = ctx.config.events_command
    if not command:
        raise Unprepared("needs --events-command (the target's documented event interface)")
    try:
        out = subprocess.run(shlex.split(command), capture_output=True, text=True,
                             timeout=max(ctx.timeout, 10), check=True).stdout  # fmt: skip
        rows = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise Unprepared(f"--events-command failed: {exc}") from None
    ctx.transcript.event(f"events reported: {[r.get('id') for r in rows]}")
    return [int(r["id"]) for r in rows if isinstance(r, dict) and "id" in r]


def _events_case(rule: str, slug: str, what: str, wanted: tuple[int, ...], *, once: bool) -> None:
    @case(CASES, rule, slug, f"after the grace period ran out with no license server: {what}",
          (f"event {' or '.join(map(str, wanted))} reported" + (" exactly once" if once else ""),),
          roles=AGENT)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        try:
            _need_peers(ctx)
            events = _events(ctx)
        except Unprepared as why:
            return Judgement(Verdict.UNSUPPORTED, str(why))
        count = sum(e in wanted for e in events)
        if count == 0 or (once and count > 1):
            return Judgement(Verdict.FAIL, f"event {wanted} reported {count} times: {events}")
        return Judgement(Verdict.PASS, f"event {wanted} reported {count} time(s)")


_events_case("EVT-1", "event-1008", "the grace period expired", (1008,), once=False)
_events_case("GRACE-7", "event-1008-once", "1008 once when it ran out", (1008,), once=True)
_events_case("EVT-2", "event-1009", "the warning before its end", (1009,), once=False)
_events_case("GRACE-6", "event-1009-once", "1009 once in the last 15 days", (1009,), once=True)
_events_case("EVT-3", "event-no-license-server", "no license server located",
             (1010, 1026, 1027), once=False)  # fmt: skip


@case(CASES, "COMPAT-1", "agent-refuses-2000-ls", "after the grace period, the only license "
      "servers are Windows 2000 ones that welcome a 2003 terminal server anyway and issue "
      "Windows 2000 TS CALs; the clock moves past re-discovery and a new client asks",
      ("a 2003 agent: no license from them (ErrorAlert ERR_NO_LICENSE_SERVER)",
       "a 2000 agent: unsupported"), roles=AGENT)  # fmt: skip
async def refuses_2000(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    assert ctx.peers is not None
    await ctx.open_raw()
    if _version(ctx) != 2003:
        return Judgement(Verdict.UNSUPPORTED, "a rule for 2003 terminal servers")
    ctx.peers.set_all(LsMode.LAX_2000)
    await move_clock(ctx, REDISCOVER)

    def licensed(ex: Exchange, alert: tuple[int, int, int] | None) -> bool:
        return any(f.name in ("NewLicense", "PlatformChallenge") for f in ex.frames)

    ex, _ = await _until(ctx, licensed)
    if any(f.name == "NewLicense" for f in ex.frames):
        return Judgement(Verdict.FAIL, f"a license from a Windows 2000 license server was "
                         f"passed on: {_outcome(ex)}")  # fmt: skip
    return Judgement(Verdict.PASS, _outcome(ex))


@case(CASES, "DISC-8", "first-valid-candidate", "after the grace period, CONF-LS1 denies "
      "access and CONF-LS2 is a valid 2003 license server; the clock moves past re-discovery "
      "and a new client asks", ("NewLicense issued through CONF-LS2",), roles=AGENT)  # fmt: skip
async def first_valid(ctx: Context) -> Judgement:
    try:
        _need_peers(ctx)
    except Unprepared as why:
        return Judgement(Verdict.UNSUPPORTED, str(why))
    assert ctx.peers is not None
    await ctx.open_raw()
    ctx.peers.set_all(LsMode.DENY)
    _, second = pair(ctx)
    second.mode = LsMode.VALID
    await move_clock(ctx, REDISCOVER)

    def licensed(ex: Exchange, alert: tuple[int, int, int] | None) -> bool:
        return any(f.name == "NewLicense" for f in ex.frames)

    ex, _ = await _until(ctx, licensed)
    asked = second.requests["IssueLicense"]
    if licensed(ex, None) and asked:
        return Judgement(Verdict.PASS, f"{_outcome(ex)} ({asked} request(s) to {second.name})")
    return Judgement(Verdict.FAIL, f"answered {_outcome(ex)}; {second.name} was asked "
                     f"{asked} time(s)")  # fmt: skip
